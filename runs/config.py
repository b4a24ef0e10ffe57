"""The typed configuration of a run: the only schema of every setting train, eval, inference,
export, reproduce and benchmark share.

- `RunConfig`: what the model is and which frames it reads (the model flags). Saved as
  `train_dir/model_flags.json`, from which eval.py, inference.py and export_model.py rebuild the
  same model. Versioned: files written before the version field (version 1) still load, flags
  they lack take their defaults.
- `TrainOptions`: how to train it (optimizer, epochs, checkpoints, input, tf.data service,
  strategy).
- `DistillOptions`: the two phases of distilling a DistilledStudentModel.

A student's defaults come from its recipe (runs/recipes.py) and its teacher (runs/students.py).

Each is a frozen dataclass, validated when it is built (`utils.UserInputError` names the flag),
with `from_flags` (absl flags of the same names); RunConfig also has `from_json`/`to_json` and
`load`/`save` on a train_dir.
"""

import dataclasses
import json
import os

import tensorflow as tf

import losses
import model_zoo
import utils
from layers import classifiers
from pipeline import corrupt_records, data_service_input, frame_selection
from runs import distribution
from runs.recipes import RECIPES

CONFIG_VERSION = 2
MODEL_FLAGS_FILE = "model_flags.json"
# A student's first phase checkpoints here, under its train_dir (with the teacher).
DISTILL_DIR = "distill"
DISTILL_MODES = ("final", "intermediate")
STUDENT_MODEL = "DistilledStudentModel"
TEACHER_MODEL = "HierarchicalTeacherModel"
# A serial student's own teacher, trained first when no --teacher_train_dir is given.
TEACHER_DIR = "teacher"
DBOF_POOLINGS = ("max", "average")
# The model families by name: what a DistilledStudentModel can be built as (its
# --student_architecture), and the names the grid and reports use for them.
FAMILIES = {
    "hierarchical": TEACHER_MODEL,
    "netvlad": "NetVLADModel",
    "nextvlad": "NeXtVLADModel",
    "dbof": "DbofModel",
}
STUDENT_ARCHITECTURES = tuple(FAMILIES.values())
# The families whose pooling adds up over frames, so that they can read a video in stages.
STAGED_FAMILIES = ("netvlad", "nextvlad", "dbof")


def family_of(model_name):
    """The family name of a model class name ("" for a model outside FAMILIES)."""
    for family, name in FAMILIES.items():
        if name == model_name:
            return family
    return ""


# The paper's block size for the student (m = 5), used when --block_size is not given.
STUDENT_BLOCK_SIZE = 5


def check_ranges(config, checks):
    """Raises utils.UserInputError naming the first `(field, is_valid)` that is not valid."""
    for name, is_valid in checks:
        if not is_valid:
            raise utils.UserInputError(f"--{name}={getattr(config, name)} is out of range.")


def check_choice(flag_name, value, choices):
    if value not in choices:
        raise utils.UserInputError(f"--{flag_name}={value}: choose one of {', '.join(choices)}.")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides a model and its input: model_flags.json.

    Field names are the flag names of train.py. Frame selection (`frame_stride` or
    `frames_per_video`, `frame_sampling`) is part of the model, so train, eval and inference
    select the same frames.
    """

    model: str = "HierarchicalTeacherModel"
    frame_features: bool = True
    feature_names: tuple = ("rgb", "audio")
    feature_sizes: tuple = (1024, 128)
    num_classes: int = 3862
    max_frames: int = 300
    frame_stride: int = 1  # j: read 1 frame in j
    frame_sampling: str = "uniform"  # one of frame_selection.FRAME_SAMPLINGS (uniform: 0, j, 2j)
    frame_sampling_seed: int = 0  # random sampling at eval/inference is a function of this
    frames_per_video: int = 0  # k: read k frames of each video (0: 1 in frame_stride)
    random_frame_offset: bool = False  # training: uniform frames from a random offset per video
    lstm_cells: int = 1024
    lstm_layers: int = 2
    dropout: float = 0.5
    block_size: int = 20  # m: frames per block of the hierarchical model
    l2_penalty: float = 1e-8  # on the output layer's weights
    # The output layer (classifiers.CLASSIFIERS); "": the model's published one (its
    # `published_defaults`: moe for NetVLAD, NeXtVLAD, DBoF and MoeModel, logistic otherwise).
    classifier: str = ""
    moe_num_mixtures: int = 2  # experts per class of the moe classifier
    # Sizes of the cluster-and-aggregate models (NetVLAD, NeXtVLAD, DBoF); 0: the model's
    # published value (`published_defaults`).
    cluster_size: int = 0
    hidden_size: int = 0
    groups: int = 8  # NeXtVLAD: groups per frame
    expansion: int = 2  # NeXtVLAD: width multiplier of a frame before it is grouped
    gating_reduction: int = 8  # NeXtVLAD: the context gating's bottleneck factor
    dbof_pooling: str = "max"  # DbofModel: max or average over the frames
    # The frame-level model a DistilledStudentModel is built as (a `distillable` zoo model).
    student_architecture: str = TEACHER_MODEL
    # Coarse-to-fine stages of the frames a cluster-and-aggregate model reads, with an output
    # after each (frame_selection.exit_stages_of; eval and inference may stop a video after
    # any of them: --exit_threshold). 1: one pass over the frames.
    exit_stages: int = 1
    label_loss: str = "CrossEntropyLoss"
    distill_mode: str = "final"  # DistilledStudentModel: final or intermediate
    distill_weight: float = 10.0  # weight of ||E_T - E_S||^2
    intermediate_weight: float = 1.0  # weight of the intermediate term
    prediction_weight: float = 0.0  # weight of the student matching the teacher's sigmoids
    student_label_weight: float = 0.0  # weight of the student's own label loss in phase 1
    teacher_block_size: int = 20  # block size of the joint teacher (and of a student's own)
    # How a DistilledStudentModel was distilled (RECIPES). A file without it was written before
    # recipes existed, by the paper's; train.py's flag defaults to DEFAULT_RECIPE.
    distill_recipe: str = "paper"
    version: int = CONFIG_VERSION

    def __post_init__(self):
        names, sizes = utils.get_list_of_feature_names_and_sizes(
            self.feature_names, self.feature_sizes
        )
        object.__setattr__(self, "feature_names", tuple(names))
        object.__setattr__(self, "feature_sizes", tuple(sizes))
        self.check_student_architecture()
        published = model_zoo.MODELS.get(self.architecture).published_defaults
        for name, value in published.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if not self.classifier:
            object.__setattr__(self, "classifier", "logistic")
        self.validate()

    @property
    def architecture(self):
        """The model class name the network is built as: `student_architecture` for a
        DistilledStudentModel, `model` otherwise."""
        return self.student_architecture if self.is_student else self.model

    @property
    def family(self):
        """The architecture's family name, e.g. "hierarchical", "nextvlad" (FAMILIES)."""
        return family_of(self.architecture)

    def check_student_architecture(self):
        """Raises utils.UserInputError unless --student_architecture names a model a student
        can be built as (STUDENT_ARCHITECTURES)."""
        if self.student_architecture not in STUDENT_ARCHITECTURES:
            raise utils.UserInputError(
                f"--student_architecture={self.student_architecture}: a DistilledStudentModel "
                f"is built as one of {', '.join(STUDENT_ARCHITECTURES)}."
            )

    def validate(self):
        """Raises utils.UserInputError naming the flag of the first bad value."""
        if self.version != CONFIG_VERSION:
            raise utils.UserInputError(f"Unsupported model_flags version {self.version}.")
        check_ranges(
            self,
            [
                ("num_classes", self.num_classes >= 1),
                ("max_frames", self.max_frames >= 1),
                ("frame_stride", self.frame_stride >= 1),
                ("frames_per_video", self.frames_per_video >= 0),
                ("lstm_cells", self.lstm_cells >= 1),
                ("lstm_layers", self.lstm_layers >= 1),
                ("block_size", self.block_size >= 1),
                ("dropout", 0.0 <= self.dropout < 1.0),
                ("l2_penalty", self.l2_penalty >= 0.0),
                ("distill_weight", self.distill_weight >= 0.0),
                ("intermediate_weight", self.intermediate_weight >= 0.0),
                ("prediction_weight", self.prediction_weight >= 0.0),
                ("student_label_weight", self.student_label_weight >= 0.0),
                ("teacher_block_size", self.teacher_block_size >= 1),
                ("moe_num_mixtures", self.moe_num_mixtures >= 1),
                ("cluster_size", self.cluster_size >= 0),
                ("hidden_size", self.hidden_size >= 0),
                ("groups", self.groups >= 1),
                ("expansion", self.expansion >= 1),
                ("gating_reduction", self.gating_reduction >= 1),
            ],
        )
        classifiers.check_classifier(self.classifier, self.moe_num_mixtures)
        check_choice("dbof_pooling", self.dbof_pooling, DBOF_POOLINGS)
        self.check_family_sizes()
        if self.frame_stride > self.max_frames:
            raise utils.UserInputError(
                f"--frame_stride={self.frame_stride} is larger than --max_frames="
                f"{self.max_frames}: the model would read only each video's first frame."
            )
        check_choice("frame_sampling", self.frame_sampling, frame_selection.FRAME_SAMPLINGS)
        frame_selection.check_frame_selection(
            self.frame_stride, self.frame_sampling, self.frames_per_video, self.max_frames
        )
        frame_selection.check_random_frame_offset(
            self.random_frame_offset,
            self.frame_stride,
            self.frame_sampling,
            self.frames_per_video,
            self.max_frames,
        )
        check_choice("distill_mode", self.distill_mode, DISTILL_MODES)
        if (
            self.is_student
            and self.distill_mode == "intermediate"
            and self.family != "hierarchical"
        ):
            raise utils.UserInputError(
                "--distill_mode=intermediate matches the hierarchical model's lower-level "
                f"outputs; --student_architecture={self.student_architecture} has none: use "
                "--distill_mode=final."
            )
        check_choice("distill_recipe", self.distill_recipe, tuple(RECIPES))
        self.check_exit_stages()
        losses.LOSSES.get(self.label_loss)
        input_kind = model_zoo.MODELS.get(self.model).input_kind
        if (input_kind == utils.FRAME_INPUT) != bool(self.frame_features):
            frame_level = input_kind == utils.FRAME_INPUT
            kind = "frame-level" if frame_level else "video-level"
            raise utils.UserInputError(
                f"--model={self.model} is a {kind} model: set "
                f"--frame_features={str(frame_level).lower()} and matching --feature_names."
            )
        return self

    def check_family_sizes(self):
        """Raises utils.UserInputError for sizes the architecture cannot be built with."""
        if self.family not in ("netvlad", "nextvlad", "dbof"):
            return
        for name in ("cluster_size", "hidden_size"):
            if getattr(self, name) < 1:
                raise utils.UserInputError(f"--{name}={getattr(self, name)} must be >= 1.")
        if self.family == "nextvlad":
            for feature_size in self.feature_sizes:
                if (self.expansion * feature_size) % self.groups:
                    raise utils.UserInputError(
                        f"--groups={self.groups} does not divide --expansion={self.expansion} x "
                        f"the feature width {feature_size} (--feature_sizes): NeXtVLAD cuts each "
                        "expanded frame into equal groups."
                    )

    def check_exit_stages(self):
        """Raises utils.UserInputError for --exit_stages below 1, or above 1 for a model whose
        pooling does not add up over frames."""
        if self.exit_stages < 1:
            raise utils.UserInputError(f"--exit_stages={self.exit_stages} must be >= 1.")
        if self.exit_stages > 1 and self.family not in STAGED_FAMILIES:
            raise utils.UserInputError(
                f"--exit_stages={self.exit_stages} reads a video in stages, each adding its "
                f"frames to the pooling of the earlier ones: {self.architecture} does not pool "
                "frames that way (a recurrent model would read them again). Use a "
                f"{', '.join(FAMILIES[family] for family in STAGED_FAMILIES)} "
                "(--student_architecture for a student)."
            )

    @property
    def feature_size(self):
        """D: the width of the concatenated features."""
        return sum(self.feature_sizes)

    @property
    def is_student(self):
        return self.model == STUDENT_MODEL

    def replace(self, **changes):
        """A copy with `changes` (validated)."""
        return dataclasses.replace(self, **changes)

    # Flags.

    @classmethod
    def flag_names(cls):
        """The flags that make up a RunConfig (every field but `version`)."""
        return tuple(field.name for field in dataclasses.fields(cls) if field.name != "version")

    @classmethod
    def from_flags(cls, flag_values):
        """The RunConfig of absl `flag_values` (flags named as the fields)."""
        return cls(**{name: flag_values[name].value for name in cls.flag_names()})

    @classmethod
    def flags_given(cls, flag_values):
        """The names of the RunConfig flags given on the command line."""
        return {name for name in cls.flag_names() if flag_values[name].present}

    # JSON.

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["feature_names"] = list(self.feature_names)
        values["feature_sizes"] = list(self.feature_sizes)
        return values

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values, source="model flags"):
        """Builds a RunConfig from a dict as written by `to_dict`, or by an older version.

        Raises:
          utils.UserInputError: naming `source` for an unknown key or a newer version.
        """
        values = dict(values)
        version = values.pop("version", 1)
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise utils.UserInputError(
                f"{source} has version {version}; this code reads up to {CONFIG_VERSION}: "
                "update the code."
            )
        unknown = sorted(set(values) - set(cls.flag_names()))
        if unknown:
            raise utils.UserInputError(f"{source}: unknown setting(s) {', '.join(unknown)}.")
        return cls(**values)

    @classmethod
    def from_json(cls, text, source="model flags"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise utils.UserInputError(f"{source} is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise utils.UserInputError(f"{source} must hold a JSON object.")
        return cls.from_dict(values, source)

    # A train_dir.

    @classmethod
    def load(cls, train_dir, flag_name="--train_dir"):
        """Reads `train_dir/model_flags.json`; `flag_name` is the flag that gave `train_dir`.

        Raises:
          utils.UserInputError: when it is missing or invalid; the message names the file.
        """
        path = os.path.join(train_dir, MODEL_FLAGS_FILE)
        if not tf.io.gfile.exists(path):
            raise utils.UserInputError(
                f"{path} not found: {flag_name} must be a directory written by train.py."
            )
        with tf.io.gfile.GFile(path, "r") as handle:
            return cls.from_json(handle.read(), source=path)

    def save(self, train_dir):
        """Writes `train_dir/model_flags.json` (atomically)."""
        tf.io.gfile.makedirs(train_dir)
        utils.write_text_atomically(os.path.join(train_dir, MODEL_FLAGS_FILE), self.to_json())


def resolve_run_config(train_dir, requested, given, start_new_model):
    """The RunConfig of a training run in `train_dir`.

    A new model takes `requested`. When resuming (a checkpoint, in train_dir or a student's
    `train_dir/distill`, and model_flags.json exist and not `start_new_model`), the flags not in
    `given` come from the file, and a given flag that differs from the file is an error: the
    checkpoint was built with the file's value.

    Args:
      train_dir: the training directory.
      requested: the RunConfig of this command line (defaults included).
      given: names of the flags the user gave.
      start_new_model: ignore what is in train_dir.
    """
    path = os.path.join(train_dir, MODEL_FLAGS_FILE)
    has_checkpoint = tf.io.gfile.isdir(train_dir) and any(
        tf.train.latest_checkpoint(directory)
        for directory in (train_dir, os.path.join(train_dir, DISTILL_DIR))
    )
    if start_new_model or not has_checkpoint or not tf.io.gfile.exists(path):
        return requested
    stored = RunConfig.load(train_dir)
    conflicts = [
        f"--{name}={getattr(requested, name)} (the checkpoint has {getattr(stored, name)})"
        for name in RunConfig.flag_names()
        if name in given and getattr(requested, name) != getattr(stored, name)
    ]
    if conflicts:
        raise utils.UserInputError(
            f"{train_dir} holds a model built with other flags: {'; '.join(conflicts)}. "
            "Drop these flags to resume it, or pass --start_new_model to start over."
        )
    return stored


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How to train (everything but the RunConfig)."""

    train_data_pattern: str = ""
    train_dir: str = ""
    batch_size: int = 256
    base_learning_rate: float = 0.001
    learning_rate_decay: float = 0.95
    learning_rate_decay_examples: int = 4_000_000
    num_epochs: int = 5
    max_steps: int = 0  # 0: no limit
    regularization_penalty: float = 1.0
    clip_gradient_norm: float = 1.0  # each gradient tensor clipped to this norm (0: off)
    start_new_model: bool = False
    export_model_steps: int = 0  # 0: never
    checkpoint_steps: int = 1000
    checkpoint_secs: int = 600  # also a checkpoint whenever this many seconds have passed
    log_every_n_steps: int = 100
    max_checkpoints_to_keep: int = 5
    num_readers: int = 4
    shuffle_buffer_size: int = 1024
    video_id_key: str = "id"
    seed: int = 0
    deterministic: bool = False  # a seed gives the same run: ordered input, deterministic ops
    ordered_input: bool = True  # training records in a fixed order, a function of seed and epoch
    corrupt_record_policy: str = "fail"
    strategy: str = "auto"
    mixed_precision: bool = False  # float16 compute, float32 variables, loss scaling
    summary_dir: str = ""  # TensorBoard logs; "" = train_dir
    final_export_dir: str = ""  # the chief exports a SavedModel here at the end; "" = none
    tf_data_service_address: str = ""  # grpc://host:port: read through tf.data service
    tf_data_service_job_name: str = ""  # shared by the trainer's workers; "" = made per run
    # What --start_new_model empties: "" = train_dir. A student's own teacher, trained first
    # in train_dir/teacher, empties the student's whole train_dir (not a flag).
    new_model_dir: str = ""

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raises utils.UserInputError naming the first bad flag."""
        check_ranges(
            self,
            [
                ("batch_size", self.batch_size >= 1),
                ("base_learning_rate", self.base_learning_rate > 0),
                ("learning_rate_decay", 0 < self.learning_rate_decay <= 1),
                ("learning_rate_decay_examples", self.learning_rate_decay_examples >= 1),
                ("num_epochs", self.num_epochs >= 1),
                ("max_steps", self.max_steps >= 0),
                ("regularization_penalty", self.regularization_penalty >= 0),
                ("clip_gradient_norm", self.clip_gradient_norm >= 0),
                ("export_model_steps", self.export_model_steps >= 0),
                ("checkpoint_steps", self.checkpoint_steps >= 1),
                ("checkpoint_secs", self.checkpoint_secs >= 1),
                ("log_every_n_steps", self.log_every_n_steps >= 1),
                ("max_checkpoints_to_keep", self.max_checkpoints_to_keep >= 1),
                ("num_readers", self.num_readers >= 1),
                ("shuffle_buffer_size", self.shuffle_buffer_size >= 1),
            ],
        )
        corrupt_records.check_corrupt_record_policy(self.corrupt_record_policy)
        check_choice("strategy", self.strategy, distribution.STRATEGIES)
        data_service_input.check_service_options(
            self.tf_data_service_address, self.corrupt_record_policy
        )
        return self

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_flags(cls, flag_values, environ=None):
        """The options of absl `flag_values`, with the output directories Vertex AI names in
        the environment (`cloud_directories`)."""
        names = [field.name for field in dataclasses.fields(cls)]
        values = {name: flag_values[name].value for name in names if name in flag_values}
        values.update(cloud_directories(flag_values["train_dir"].present, environ))
        return cls(**values)


def cloud_directories(train_dir_given, environ=None):
    """Output directories that Vertex AI names in the environment, as TrainOptions fields.

    AIP_CHECKPOINT_DIR becomes `train_dir` unless --train_dir was given; summaries go to
    AIP_TENSORBOARD_LOG_DIR; the final SavedModel to AIP_MODEL_DIR. Unset ones are left out.
    """
    environ = os.environ if environ is None else environ
    directories = {}
    if environ.get("AIP_CHECKPOINT_DIR") and not train_dir_given:
        directories["train_dir"] = environ["AIP_CHECKPOINT_DIR"]
    if environ.get("AIP_TENSORBOARD_LOG_DIR"):
        directories["summary_dir"] = environ["AIP_TENSORBOARD_LOG_DIR"]
    if environ.get("AIP_MODEL_DIR"):
        directories["final_export_dir"] = environ["AIP_MODEL_DIR"]
    return directories


@dataclasses.dataclass(frozen=True)
class DistillOptions:
    """The stages and phases of distillation (the loss weights are RunConfig fields).

    `scheme` "joint": the paper's phase 1, a teacher trained beside the student. "serial": the
    student distils from a trained, frozen teacher: `teacher_train_dir`, or, when that is empty,
    its own teacher, trained first for `teacher_epochs` in `train_dir/teacher`. A
    `teacher_train_dir` makes the scheme serial.
    """

    joint_epochs: int = 5  # phase 1: passes with the teacher
    finetune_epochs: int = 1  # phase 2: passes of the student alone
    teacher_train_dir: str = ""  # a trained teacher to distil from (serial)
    scheme: str = "joint"
    teacher_epochs: int = 0  # the own teacher's passes; 0: joint_epochs + finetune_epochs

    def __post_init__(self):
        if self.teacher_train_dir:
            object.__setattr__(self, "scheme", "serial")
        self.validate()

    def validate(self):
        if self.joint_epochs < 0 or self.finetune_epochs < 0 or self.teacher_epochs < 0:
            raise utils.UserInputError(
                "--joint_epochs, --finetune_epochs and --teacher_epochs must be >= 0."
            )
        if self.joint_epochs + self.finetune_epochs == 0:
            raise utils.UserInputError("--joint_epochs and --finetune_epochs are both 0.")
        check_choice("distill_scheme", self.scheme, ("joint", "serial"))
        return self

    @property
    def joint(self):
        return self.scheme == "joint"

    @property
    def trains_own_teacher(self):
        """True when the student's teacher is trained first, in `train_dir/teacher`."""
        return self.scheme == "serial" and not self.teacher_train_dir

    @property
    def own_teacher_epochs(self):
        """The own teacher's passes: as many as the student's two phases unless given."""
        return self.teacher_epochs or self.joint_epochs + self.finetune_epochs

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_flags(cls, flag_values, run_config):
        """The options of absl `flag_values`; the scheme is `run_config`'s recipe's."""
        return cls(
            joint_epochs=flag_values.joint_epochs,
            finetune_epochs=flag_values.finetune_epochs,
            teacher_train_dir=flag_values.teacher_train_dir,
            scheme=RECIPES[run_config.distill_recipe].scheme,
            teacher_epochs=flag_values.teacher_epochs,
        )
