"""Looks classes up by name for a flag: the model zoo (`--model`), the losses (`--label_loss`)
and the reader formats (`--frame_features`) are each one `Registry`.

    MODELS = registry.Registry.of_subclasses("--model", BaseModel, [frame_level_models, ...])
    MODELS.get("HierarchicalTeacherModel")      # the class
    MODELS.get("Nope")  # UserInputError: --model=Nope is not known; choose one of ...
"""

import utils


class Registry:
    """Named classes for one flag; an unknown name is a `utils.UserInputError` naming the flag
    and listing the names that exist."""

    def __init__(self, flag_name, classes_by_name):
        """Args:
        flag_name: the flag the names come from, e.g. "--model" (for error messages).
        classes_by_name: dict {name: class}.
        """
        self.flag_name = flag_name
        self._classes = dict(classes_by_name)

    @classmethod
    def of_subclasses(cls, flag_name, base_class, modules):
        """The concrete subclasses of `base_class` that `modules` define, by class name (the
        starter's `find_class_by_name` over the same modules finds the same classes)."""
        classes = {}
        for module in modules:
            for name, value in vars(module).items():
                defined_here = getattr(value, "__module__", None) == module.__name__
                if (
                    isinstance(value, type)
                    and issubclass(value, base_class)
                    and value is not base_class
                    and defined_here
                ):
                    classes.setdefault(name, value)
        return cls(flag_name, classes)

    def names(self):
        """The registered names, sorted."""
        return sorted(self._classes)

    def __contains__(self, name):
        return name in self._classes

    def get(self, name):
        """The class registered as `name`.

        Raises:
          utils.UserInputError: for an unknown name, naming the flag and the choices.
        """
        if name not in self._classes:
            raise utils.UserInputError(
                f"{self.flag_name}={name} is not known; choose one of {', '.join(self.names())}."
            )
        return self._classes[name]
