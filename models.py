"""The model contract shared by every model in the zoo, its typed config, and the zoo lookup.

A model is a `tf.keras.Model` built from one `ModelConfig` (plain values, no absl FLAGS, so a
teacher and a student of different sizes can live in one process). It is called as

    outputs = model(video_matrix, num_frames=num_frames, training=False)

with `video_matrix` `[batch, frames, features]` (frame-level; uint8 quantized or float32) or
`[batch, features]` (video-level), and `num_frames` `[batch]` int32. It returns a dict with at
least `predictions [batch, num_classes]` (sigmoid probabilities), `logits [batch, num_classes]`
and `representation [batch, hidden]` (the video encoding fed to the output layer).
"""

import dataclasses

import tensorflow as tf

import utils


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved in `train_dir/model_flags.json`."""

    num_classes: int = 3862
    feature_size: int = 1024 + 128  # D: width of the concatenated features
    lstm_cells: int = 1024
    lstm_layers: int = 2
    dropout: float = 0.5
    block_size: int = 20  # m: frames per block of the hierarchical model
    l2_penalty: float = 1e-8  # on the output layer's weights, as the starter's logistic layers

    def validate(self):
        """Raises utils.UserInputError naming the flag of the first bad value."""
        checks = [
            ("num_classes", self.num_classes >= 1),
            ("lstm_cells", self.lstm_cells >= 1),
            ("lstm_layers", self.lstm_layers >= 1),
            ("block_size", self.block_size >= 1),
            ("dropout", 0.0 <= self.dropout < 1.0),
            ("l2_penalty", self.l2_penalty >= 0.0),
        ]
        for name, is_valid in checks:
            if not is_valid:
                raise utils.UserInputError(f"--{name}={getattr(self, name)} is out of range.")
        return self

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a dict, ignoring keys that are not config fields."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


def frame_mask(num_frames, max_length):
    """`[batch, max_length]` bool: True where the frame index is below the video's frame count."""
    return tf.sequence_mask(num_frames, maxlen=max_length)


class BaseModel(tf.keras.Model):
    """Common pieces: dequantizing the reader's uint8 frames and the sigmoid output layer."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config.validate()
        self.classifier = tf.keras.layers.Dense(
            config.num_classes,
            kernel_regularizer=tf.keras.regularizers.L2(config.l2_penalty),
            dtype="float32",  # probabilities stay float32 under mixed precision
            name="classifier",
        )

    def prepare_frames(self, video_matrix, num_frames):
        """Dequantizes uint8 input and zeroes padding frames.

        Args:
          video_matrix: `[batch, frames, features]` uint8 or float.
          num_frames: `[batch]` int; counts above `frames` are taken as `frames`.

        Returns:
          (frames `[batch, max(frames, 1), features]` float32, mask `[batch, frames]` bool,
          num_frames `[batch]` int32 clamped to the frames given).
        """
        if video_matrix.dtype == tf.uint8:
            video_matrix = utils.dequantize(video_matrix)
        video_matrix = tf.cast(video_matrix, tf.float32)
        # A batch of only empty videos has 0 steps, which an LSTM cannot run: pad to 1 (masked).
        missing_steps = tf.maximum(1 - tf.shape(video_matrix)[1], 0)
        video_matrix = tf.pad(video_matrix, [[0, 0], [0, missing_steps], [0, 0]])
        num_input_frames = tf.shape(video_matrix)[1]
        num_frames = tf.minimum(tf.cast(num_frames, tf.int32), num_input_frames)
        mask = frame_mask(num_frames, num_input_frames)
        return video_matrix * tf.cast(mask, tf.float32)[:, :, tf.newaxis], mask, num_frames

    def classify(self, representation):
        """`[batch, hidden]` -> dict with `logits` and `predictions`, `[batch, num_classes]`."""
        logits = self.classifier(representation)
        return {"logits": logits, "predictions": tf.sigmoid(logits)}


def build_model(model_name, config, modules=None):
    """Looks `model_name` up in the zoo and builds it from `config`.

    Raises:
      utils.UserInputError: for an unknown name; the message lists the models that exist.
    """
    if modules is None:
        modules = zoo_modules()
    try:
        model_class = utils.find_class_by_name(model_name, modules)
    except utils.UserInputError:
        raise utils.UserInputError(
            f"--model={model_name} is not a known model; choose one of {', '.join(model_names())}."
        ) from None
    return model_class(config)


def zoo_modules():
    """The modules searched for `--model`, in order."""
    import frame_level_models
    import student_models
    import video_level_models

    return [frame_level_models, student_models, video_level_models]


def model_names():
    """Names of all models in the zoo, sorted."""
    names = []
    for module in zoo_modules():
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
                if value.__module__ == module.__name__:
                    names.append(name)
    return sorted(names)


def is_frame_level(model_name):
    """True for models that read frame-level features."""
    import video_level_models

    return not hasattr(video_level_models, model_name)


def config_from_model_flags(model_flags):
    """The `ModelConfig` described by a model_flags dict (as saved in model_flags.json)."""
    values = dict(model_flags)
    values["feature_size"] = sum(int(size) for size in model_flags["feature_sizes"])
    return ModelConfig.from_dict(values)


def build_from_model_flags(model_flags):
    """Builds the model described by a model_flags dict and creates its variables.

    The variables are created by one call on a dummy input, so that a checkpoint restores into
    them at once.
    """
    config = config_from_model_flags(model_flags)
    model = build_model(model_flags["model"], config)
    if model_flags["frame_features"]:
        dummy = tf.zeros([1, config.block_size, config.feature_size], tf.uint8)
    else:
        dummy = tf.zeros([1, config.feature_size], tf.float32)
    model(dummy, num_frames=tf.ones([1], tf.int32), training=False)
    return model
