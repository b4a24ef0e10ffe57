"""Trains and evaluates the paper's whole grid on one data set: its Table 1, Table 2 and two plots.

    python reproduce.py --output_dir=reproduce_out               (what `make reproduce` runs)
    python reproduce.py --preset=paper --train_data_pattern='gs://.../train*.tfrecord' \
        --eval_data_pattern='gs://.../validate*.tfrecord' --output_dir=gs_grid

The grid (names as in the paper's Table 1; k = % of the frames read, j = 100 / k the stride):
- TEACHER-FULL: `HierarchicalTeacherModel` over every frame, blocks of `teacher_block_size` (20).
- TEACHER-UNIFORM-k and TEACHER-RANDOM-k: the same architecture trained from scratch on 1 frame
  in j (`frame_stride=j`, `frame_sampling=uniform|random`), no distillation. They use the
  student's block size (5), not the teacher's: a baseline then differs from its student only in
  how it is trained, and a block of 20 strided frames would span 20 j seconds of video.
- STUDENT-k-FINAL and STUDENT-k-INTERMEDIATE: `DistilledStudentModel` (block 5, 1 frame in j),
  `distill_mode=final|intermediate`. `--distill_scheme=joint` (the default, the paper's) trains
  a teacher, the student and a shared output layer together for `joint_epochs`, then fine-tunes
  the student alone for `finetune_epochs`; `serial` distils from this grid's TEACHER-FULL, frozen.
k in {5, 10, 25, 50} (`--ks`) gives 1 + 4 x 4 = 17 models (`--methods` narrows the four methods; the
teacher is always in). Every model gets the same number of
passes over the training data: the teachers and baselines train joint_epochs + finetune_epochs
epochs, the students joint_epochs + finetune_epochs.

Data: without `--train_data_pattern`/`--eval_data_pattern`, a synthetic train and validate split
in the exact YouTube-8M frame-level format (synthetic_data.py; labels come from short events,
so skipped frames cost accuracy) is written to `output_dir/data/<one directory per data
configuration>` and reused when it exists. With both patterns, any YouTube-8M frame-level data.

Outputs in `--output_dir`:
- `models/NAME/`: each model's train dir (checkpoints, model_flags.json, eval_metrics.json).
- `config.json`: the preset, data and sizes of this grid. A rerun with other settings is refused.
- `results.json`: one entry per model: `name`, `method`, `k`, `frame_stride`, `gap`,
  `avg_hit_at_one`, `avg_perr`, `map`, `avg_loss`, `eval_videos`, `eval_seconds` (eval.py's
  whole evaluation, tracing included), `videos_per_second` (eval_videos / eval_seconds),
  `inference_seconds` (a warm forward pass over the eval set, the fastest of four after a
  first that traces: reading and the model, no tracing, no metrics), `train_seconds`, `global_step`,
  `checkpoint`.
- `results.md`: Table 1 (Hit@1, PERR, mAP, GAP; ours beside the paper's) and Table 2 (eval time
  of TEACHER-FULL and of the k % models, seconds and fraction of the teacher's; the paper's hours).
- `gap_vs_frames.png`, `time_vs_frames.png`.
All are replaced atomically (temporary name, then rename). results.json is rewritten after each
model, and a rerun reuses every model it lists whose checkpoint is still there; a model that
was stopped mid-training resumes from its checkpoints (train.py and distillation.py resume).

Presets (`--preset`; any size can be overridden by its flag):

| preset | train / eval videos | classes | LSTM | batch | epochs (joint + fine-tune) | lr |
|---|---|---|---|---|---|---|
| small | 3,000 / 1,000 synthetic, 60-300 frames | 10 | 64 x 2 | 32 | 3 + 1 | 0.003 |
| paper | real, or 10,000 / 2,000 synthetic | 3,862 (real), 10 | 1,024 x 2 | 256 | 4 + 1 | 0.001 |

Both decay the learning rate by 0.95 every 4,000,000 examples (the starter's schedule; never
reached on the small set), teacher blocks 20, student and baseline blocks 5, dropout 0.5,
distillation weights 10 (final) and 1 (intermediate). `tiny` is the tests' grid: seconds per
model, figures without meaning.

The small preset, measured on 2 CPU cores (tensorflow-cpu 2.21.0), one run of
`time python reproduce.py --output_dir=/tmp/reproduce_small` on a fresh directory:
13 min 23 s wall for the 17 models (TEACHER-FULL trains in 29 s, a baseline in 9-22 s, a
student in 53-68 s; the data, 24 s; each evaluation 1-3 s). Its GAPs are in README.md.
"""

import dataclasses
import gc
import importlib
import io
import json
import math
import os
import time

import tensorflow as tf
from absl import app, flags, logging
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import distillation
import export_model
import readers
import synthetic_data
import train
import utils

evaluation = importlib.import_module("eval")  # eval.py, named as in the starter


YT8M_NUM_CLASSES = 3862
DEFAULT_KS = (5, 10, 25, 50)
DISTILL_SCHEMES = ("joint", "serial")
METHODS = ("teacher", "uniform", "random", "final", "intermediate")
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
RESULTS_MARKDOWN_FILE = "results.md"
GAP_PLOT_FILE = "gap_vs_frames.png"
TIME_PLOT_FILE = "time_vs_frames.png"
TRAINED_MARKER_FILE = "trained.json"
INFERENCE_TIMED_PASSES = 4

SIZE_FLAG_HELP = {
    "num_train_videos": "Synthetic train videos (with real data: only sizes the epochs on resume).",
    "num_eval_videos": "Synthetic eval videos.",
    "num_classes": "Classes (preset: 3862 for real data, the synthetic count otherwise).",
    "lstm_cells": "Cells per LSTM layer.",
    "lstm_layers": "LSTM layers at each level.",
    "batch_size": "Videos per training batch.",
    "joint_epochs": "Student phase 1 passes (teachers train joint + finetune epochs).",
    "finetune_epochs": "Student phase 2 passes.",
    "base_learning_rate": "Adam's initial learning rate.",
    "eval_batch_size": "Videos per eval batch.",
}


def define_flags():
    """The CLI's flags. Size flags left unset take the preset's value."""
    flags.DEFINE_string("output_dir", "reproduce_out", "Where data, models and results go.")
    flags.DEFINE_string("preset", "small", "Sizes of the grid: small or paper.")
    flags.DEFINE_string(
        "ks",
        ",".join(str(k) for k in DEFAULT_KS),
        "Comma list of k (% of frames read; 100/k integer).",
    )
    flags.DEFINE_string(
        "methods",
        ",".join(METHODS[1:]),
        "Comma list of the methods run at each k: uniform, random, final, intermediate "
        "(TEACHER-FULL is always in the grid).",
    )
    flags.DEFINE_string(
        "distill_scheme",
        "joint",
        "joint: teacher and student trained together (the paper); "
        "serial: distil from this grid's trained TEACHER-FULL.",
    )
    flags.DEFINE_string("train_data_pattern", "", "Real training TFRecords (else synthetic).")
    flags.DEFINE_string("eval_data_pattern", "", "Real evaluation TFRecords (else synthetic).")
    flags.DEFINE_string("feature_names", "rgb,audio", "Frame features read.")
    flags.DEFINE_string("feature_sizes", "1024,128", "Their sizes, in the same order.")
    flags.DEFINE_string("video_id_key", "id", "Context key of the video id ('video_id' in 2017).")
    flags.DEFINE_integer("seed", 1, "Seed of the synthetic data, the initialisation and shuffles.")
    for name, help_text in SIZE_FLAG_HELP.items():
        if name == "base_learning_rate":
            flags.DEFINE_float(name, None, help_text)
        else:
            flags.DEFINE_integer(name, None, help_text)


# The paper's Table 1 (YouTube-8M validation): AVG-Hit@1, PERR, mAP, GAP.
PAPER_TABLE_1 = {
    "TEACHER-FULL": (0.862, 0.736, 0.402, 0.809),
    "TEACHER-UNIFORM-50": (0.859, 0.731, 0.390, 0.804),
    "TEACHER-UNIFORM-25": (0.855, 0.725, 0.371, 0.798),
    "TEACHER-UNIFORM-10": (0.848, 0.716, 0.362, 0.788),
    "TEACHER-UNIFORM-5": (0.834, 0.698, 0.333, 0.770),
    "TEACHER-RANDOM-50": (0.841, 0.702, 0.305, 0.775),
    "TEACHER-RANDOM-25": (0.832, 0.693, 0.297, 0.765),
    "TEACHER-RANDOM-10": (0.829, 0.693, 0.320, 0.765),
    "TEACHER-RANDOM-5": (0.804, 0.665, 0.288, 0.731),
    "STUDENT-50-FINAL": (0.860, 0.733, 0.360, 0.803),
    "STUDENT-25-FINAL": (0.857, 0.727, 0.385, 0.802),
    "STUDENT-10-FINAL": (0.852, 0.721, 0.375, 0.795),
    "STUDENT-5-FINAL": (0.842, 0.710, 0.359, 0.783),
    "STUDENT-50-INTERMEDIATE": (0.862, 0.739, 0.385, 0.805),
    "STUDENT-25-INTERMEDIATE": (0.851, 0.718, 0.346, 0.792),
    "STUDENT-10-INTERMEDIATE": (0.854, 0.725, 0.382, 0.799),
    "STUDENT-5-INTERMEDIATE": (0.845, 0.720, 0.356, 0.787),
}
TABLE_1_METRICS = (
    ("Hit@1", "avg_hit_at_one"),
    ("PERR", "avg_perr"),
    ("mAP", "map"),
    ("GAP", "gap"),
)
# The paper's Table 2: evaluation time in hours on the validation set (Tesla K80), by k.
PAPER_EVAL_HOURS = {100: 13.00, 10: 9.11, 25: 11.00, 50: 12.50}


@dataclasses.dataclass(frozen=True)
class Preset:
    """The sizes of a grid. Synthetic sizes apply only when no data pattern is given."""

    num_train_videos: int
    num_eval_videos: int
    synthetic_classes: int
    synthetic_min_frames: int
    synthetic_max_frames: int
    lstm_cells: int
    lstm_layers: int
    batch_size: int
    joint_epochs: int
    finetune_epochs: int
    base_learning_rate: float
    eval_batch_size: int
    teacher_block_size: int = 20
    student_block_size: int = 5
    learning_rate_decay: float = 0.95
    learning_rate_decay_examples: int = 4_000_000


PRESETS = {
    "small": Preset(
        num_train_videos=3000,
        num_eval_videos=1000,
        synthetic_classes=10,
        synthetic_min_frames=60,
        synthetic_max_frames=300,
        lstm_cells=64,
        lstm_layers=2,
        batch_size=32,
        joint_epochs=3,
        finetune_epochs=1,
        base_learning_rate=0.003,
        eval_batch_size=64,
    ),
    "paper": Preset(
        num_train_videos=10_000,
        num_eval_videos=2_000,
        synthetic_classes=10,
        synthetic_min_frames=60,
        synthetic_max_frames=300,
        lstm_cells=1024,
        lstm_layers=2,
        batch_size=256,
        joint_epochs=4,
        finetune_epochs=1,
        base_learning_rate=0.001,
        eval_batch_size=256,
    ),
    # The tests' grid: a few dozen short videos and 8-cell LSTMs.
    "tiny": Preset(
        num_train_videos=24,
        num_eval_videos=12,
        synthetic_classes=4,
        synthetic_min_frames=12,
        synthetic_max_frames=24,
        lstm_cells=8,
        lstm_layers=1,
        batch_size=12,
        joint_epochs=1,
        finetune_epochs=1,
        base_learning_rate=0.01,
        eval_batch_size=12,
        teacher_block_size=6,
        student_block_size=3,
    ),
}


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """Everything that decides the grid's models and data (saved as config.json).

    `train_data_pattern`/`eval_data_pattern` are empty for synthetic data, whose sizes are then
    `num_train_videos`, `num_eval_videos`, `num_classes`, `synthetic_min_frames`,
    `synthetic_max_frames` and `seed`. With real data `num_train_videos` is 0 or a count
    given by the user, and the synthetic frame range is unused.
    """

    preset: str
    distill_scheme: str
    seed: int
    train_data_pattern: str
    eval_data_pattern: str
    num_train_videos: int
    num_eval_videos: int
    synthetic_min_frames: int
    synthetic_max_frames: int
    num_classes: int
    feature_names: str
    feature_sizes: str
    video_id_key: str
    max_frames: int
    lstm_cells: int
    lstm_layers: int
    batch_size: int
    joint_epochs: int
    finetune_epochs: int
    base_learning_rate: float
    learning_rate_decay: float
    learning_rate_decay_examples: int
    teacher_block_size: int
    student_block_size: int
    eval_batch_size: int
    distill_weight: float = 10.0
    intermediate_weight: float = 1.0

    @property
    def synthetic(self):
        return not self.train_data_pattern

    @property
    def total_epochs(self):
        """Passes over the training data that every model gets."""
        return self.joint_epochs + self.finetune_epochs

    @property
    def steps_per_epoch(self):
        """Training steps per pass, or 0 when the training set's size is unknown."""
        if not self.num_train_videos:
            return 0
        return math.ceil(self.num_train_videos / self.batch_size)


def model_name(method, k):
    """Table 1's name of a method's model reading k % of the frames (k may be "k")."""
    if method == "teacher":
        return "TEACHER-FULL"
    if method in ("uniform", "random"):
        return f"TEACHER-{method.upper()}-{k}"
    return f"STUDENT-{k}-{method.upper()}"


@dataclasses.dataclass(frozen=True)
class GridModel:
    """One row of Table 1: a method and the % of frames it reads."""

    method: str  # one of METHODS
    k: int  # % of the frames read; 100 for the teacher

    @property
    def frame_stride(self):
        return 100 // self.k

    @property
    def name(self):
        return model_name(self.method, self.k)

    @property
    def is_student(self):
        return self.method in ("final", "intermediate")


def parse_ks(text):
    """Parses `--ks`: a comma list of k in (0, 100] with 100 / k an integer.

    Returns:
      the distinct ks, descending (the paper's row order).

    Raises:
      utils.UserInputError: naming --ks and the bad value.
    """
    ks = set()
    for item in text.split(","):
        item = item.strip()
        try:
            k = int(item)
        except ValueError:
            raise utils.UserInputError(
                f"--ks={text}: '{item}' is not an integer percentage of frames."
            ) from None
        if not 0 < k <= 100 or 100 % k:
            raise utils.UserInputError(
                f"--ks={text}: k={k} must lie in (0, 100] with 100 / k an integer (the frame "
                "stride j), e.g. 5, 10, 25 or 50."
            )
        ks.add(k)
    return sorted(ks, reverse=True)


def parse_methods(text):
    """Parses `--methods`: a comma list of the methods other than the teacher.

    Returns:
      the distinct methods, in Table 1's order.

    Raises:
      utils.UserInputError: naming --methods and the bad value.
    """
    names = {item.strip() for item in text.split(",")}
    unknown = sorted(names - set(METHODS[1:]))
    if unknown or not names:
        raise utils.UserInputError(
            f"--methods={text}: '{unknown[0] if unknown else ''}' is not one of "
            f"{', '.join(METHODS[1:])} (TEACHER-FULL is always trained)."
        )
    return [method for method in METHODS[1:] if method in names]


def grid_models(ks, methods=METHODS[1:]):
    """The grid in Table 1's order: the teacher, then each of `methods` for k descending."""
    models = [GridModel("teacher", 100)]
    for method in methods:
        models.extend(GridModel(method, k) for k in sorted(ks, reverse=True))
    return models


def row_order(name):
    """Sort key putting any model name in Table 1's order."""
    for method_index, method in enumerate(METHODS):
        for k in range(100, 0, -1):
            if GridModel(method, k).name == name:
                return (method_index, -k)
    return (len(METHODS), 0)


def resolve_config(
    preset="small",
    distill_scheme="joint",
    train_data_pattern="",
    eval_data_pattern="",
    feature_names="rgb,audio",
    feature_sizes="1024,128",
    video_id_key="id",
    seed=1,
    **size_overrides,
):
    """The grid's settings: the preset's sizes, then the overrides that are not None.

    Args:
      preset: a name in PRESETS.
      distill_scheme: joint or serial.
      train_data_pattern, eval_data_pattern: real data (both) or synthetic (neither).
      feature_names, feature_sizes, video_id_key: how the records are read.
      seed: data, initialisation and shuffles.
      **size_overrides: keys of SIZE_FLAG_HELP; None keeps the preset's value.

    Raises:
      utils.UserInputError: naming the flag that is wrong.
    """
    if preset not in PRESETS:
        raise utils.UserInputError(
            f"--preset={preset} is not a preset; choose small or paper ({', '.join(PRESETS)})."
        )
    if distill_scheme not in DISTILL_SCHEMES:
        raise utils.UserInputError(f"--distill_scheme={distill_scheme}: choose joint or serial.")
    if bool(train_data_pattern) != bool(eval_data_pattern):
        raise utils.UserInputError(
            "--train_data_pattern and --eval_data_pattern go together: give both for real "
            "data, or neither for the synthetic set."
        )
    unknown = sorted(set(size_overrides) - set(SIZE_FLAG_HELP))
    if unknown:
        raise TypeError(f"unknown size overrides: {unknown}")
    sizes = dataclasses.asdict(PRESETS[preset])
    sizes["num_classes"] = YT8M_NUM_CLASSES if train_data_pattern else sizes["synthetic_classes"]
    if train_data_pattern:
        sizes["num_train_videos"] = 0
        sizes["num_eval_videos"] = 0
    sizes.update({name: value for name, value in size_overrides.items() if value is not None})
    if sizes["base_learning_rate"] <= 0:
        raise utils.UserInputError(
            f"--base_learning_rate={sizes['base_learning_rate']} must be > 0."
        )
    minimums = {name: 1 for name in SIZE_FLAG_HELP if name != "base_learning_rate"}
    minimums.update(joint_epochs=0, finetune_epochs=0, num_train_videos=0, num_eval_videos=0)
    for name, lowest in minimums.items():
        if sizes[name] < lowest:
            raise utils.UserInputError(f"--{name}={sizes[name]} must be >= {lowest}.")
    if sizes["joint_epochs"] + sizes["finetune_epochs"] < 1:
        raise utils.UserInputError("--joint_epochs + --finetune_epochs must be >= 1.")
    if not train_data_pattern and min(sizes["num_train_videos"], sizes["num_eval_videos"]) < 1:
        raise utils.UserInputError(
            "--num_train_videos and --num_eval_videos must be >= 1 for the synthetic set."
        )
    names, feature_widths = utils.get_list_of_feature_names_and_sizes(feature_names, feature_sizes)
    del sizes["synthetic_classes"]
    return GridConfig(
        preset=preset,
        distill_scheme=distill_scheme,
        seed=seed,
        train_data_pattern=train_data_pattern,
        eval_data_pattern=eval_data_pattern,
        feature_names=",".join(names),
        feature_sizes=",".join(str(width) for width in feature_widths),
        video_id_key=video_id_key,
        max_frames=300,
        **sizes,
    )


def check_config(output_dir, config):
    """Refuses an output_dir that holds a grid with other settings; writes config.json.

    Returns:
      True when output_dir already held this configuration (its results may be reused).
    """
    path = os.path.join(output_dir, CONFIG_FILE)
    wanted = dataclasses.asdict(config)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as handle:
            stored = json.load(handle)
        differences = [
            f"{name} {stored.get(name)!r} (now {wanted.get(name)!r})"
            for name in sorted(set(stored) | set(wanted))
            if stored.get(name) != wanted.get(name)
        ]
        if differences:
            raise utils.UserInputError(
                f"--output_dir={output_dir} holds a grid run with other settings: "
                f"{'; '.join(differences)}. Use another --output_dir, or delete this one to "
                "start over."
            )
        return True
    tf.io.gfile.makedirs(output_dir)
    write_json(path, wanted)
    return False


def prepare_data(output_dir, config, report):
    """The train and eval file patterns: the user's, or a synthetic set written (once) here.

    Synthetic splits go to `output_dir/data/<split>-<videos>-<classes>-<frames>-<features>-seed`,
    one directory per configuration, each marked COMPLETE when whole and then reused.
    """
    if not config.synthetic:
        return {"train": config.train_data_pattern, "eval": config.eval_data_pattern}
    names, widths = utils.get_list_of_feature_names_and_sizes(
        config.feature_names, config.feature_sizes
    )
    spec = synthetic_data.SyntheticDatasetSpec(
        feature_names=tuple(names),
        feature_sizes=tuple(widths),
        min_frames=config.synthetic_min_frames,
        max_frames=config.synthetic_max_frames,
        max_labels=min(5, config.num_classes),
    )
    features = "-".join(f"{name}{width}" for name, width in zip(names, widths, strict=True))
    patterns = {}
    for role, split, num_videos in (
        ("train", "train", config.num_train_videos),
        ("eval", "validate", config.num_eval_videos),
    ):
        split_dir = os.path.join(
            output_dir,
            "data",
            f"{split}-{num_videos}videos-{config.num_classes}classes-"
            f"{spec.min_frames}to{spec.max_frames}frames-{features}-seed{config.seed}",
        )
        patterns[role] = os.path.join(split_dir, f"{split}-*.tfrecord")
        marker = os.path.join(split_dir, "COMPLETE")
        if tf.io.gfile.exists(marker):
            report(f"[data] {split}: reusing {split_dir}")
            continue
        start = time.time()
        num_shards = max(1, min(8, num_videos // 150))
        try:
            synthetic_data.write_dataset(
                split_dir,
                num_videos,
                num_shards,
                config.num_classes,
                seed=config.seed,
                split=split,
                video_id_key=config.video_id_key,
                spec=spec,
            )
        except ValueError as error:
            raise utils.UserInputError(f"synthetic {split} split: {error}") from None
        utils.write_text_atomically(marker, "written\n")
        report(
            f"[data] {split}: {num_videos} synthetic videos in {num_shards} shard(s), "
            f"{time.time() - start:.0f} s"
        )
    return patterns


def model_flags_for(model, config):
    """The normalised model flags (model_flags.json) of one grid model."""
    model_flags = {
        "model": "HierarchicalTeacherModel",
        "frame_features": True,
        "feature_names": config.feature_names,
        "feature_sizes": config.feature_sizes,
        "num_classes": config.num_classes,
        "max_frames": config.max_frames,
        "frame_stride": model.frame_stride,
        "frame_sampling": "random" if model.method == "random" else "uniform",
        "frame_sampling_seed": 0,
        "lstm_cells": config.lstm_cells,
        "lstm_layers": config.lstm_layers,
        "dropout": 0.5,
        "block_size": config.teacher_block_size,
        "l2_penalty": 1e-8,
        "label_loss": "CrossEntropyLoss",
        "distill_mode": "final",
        "distill_weight": config.distill_weight,
        "intermediate_weight": config.intermediate_weight,
        "teacher_block_size": config.teacher_block_size,
    }
    if model.method != "teacher":
        model_flags["block_size"] = config.student_block_size
    if model.is_student:
        model_flags["model"] = "DistilledStudentModel"
        model_flags["distill_mode"] = model.method
    return model_flags


def train_options_for(config, model, model_dir, train_pattern):
    """train.TrainOptions of one grid model.

    With a known training-set size the teachers stop at epochs x steps per epoch, so a run
    resumed mid-way trains only what was left (train.train restarts its epoch count on resume);
    the students count their epochs themselves.
    """
    steps_per_epoch = config.steps_per_epoch
    max_steps = 0
    if steps_per_epoch and not model.is_student:
        max_steps = config.total_epochs * steps_per_epoch
    return train.TrainOptions(
        train_data_pattern=train_pattern,
        train_dir=model_dir,
        batch_size=config.batch_size,
        base_learning_rate=config.base_learning_rate,
        learning_rate_decay=config.learning_rate_decay,
        learning_rate_decay_examples=config.learning_rate_decay_examples,
        num_epochs=config.total_epochs,
        max_steps=max_steps,
        checkpoint_steps=steps_per_epoch or 1000,
        log_every_n_steps=steps_per_epoch or 100,
        max_checkpoints_to_keep=2,
        video_id_key=config.video_id_key,
        seed=config.seed,
    )


def read_json(path, default):
    if not tf.io.gfile.exists(path):
        return default
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def write_json(path, value):
    utils.write_text_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def latest_checkpoint_name(model_dir):
    """The basename of the latest checkpoint in `model_dir` (e.g. `ckpt-252`), or None."""
    latest = tf.train.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else None
    return os.path.basename(latest) if latest else None


def train_model(model, config, model_dir, train_pattern, teacher_dir):
    """Trains one grid model to the end (resuming it) unless its trained.json says it is done.

    Returns:
      (train seconds, True when this call trained).
    """
    marker = read_json(os.path.join(model_dir, TRAINED_MARKER_FILE), None)
    if marker and marker["checkpoint"] == latest_checkpoint_name(model_dir):
        return marker["train_seconds"], False
    requested = model_flags_for(model, config)
    model_flags = train.resolve_model_flags(
        model_dir, requested, set(requested), start_new_model=False
    )
    options = train_options_for(config, model, model_dir, train_pattern)
    start = time.time()
    if model.is_student:
        distill_options = distillation.DistillOptions(
            joint_epochs=config.joint_epochs,
            finetune_epochs=config.finetune_epochs,
            teacher_train_dir=teacher_dir if config.distill_scheme == "serial" else "",
        )
        trained = distillation.train_distilled(options, model_flags, distill_options)
    else:
        trained = train.train(options, model_flags)
    train_seconds = time.time() - start
    write_json(
        os.path.join(model_dir, TRAINED_MARKER_FILE),
        {
            "checkpoint": os.path.basename(trained["checkpoint"]),
            "global_step": trained["global_step"],
            "train_seconds": train_seconds,
        },
    )
    return train_seconds, True


def time_inference(model_dir, eval_pattern, batch_size, video_id_key):
    """Seconds of a warm forward pass over the eval set (reading and the model, no metrics).

    A first pass traces the compiled forward for the batch shapes; the fastest of the next
    `INFERENCE_TIMED_PASSES` is returned (the other work on the machine only ever adds time).
    """
    model, model_flags, _ = export_model.restore_model(model_dir)
    reader = readers.reader_from_model_flags(model_flags, video_id_key=video_id_key)

    @tf.function(reduce_retracing=True)
    def forward(video_matrix, num_frames):
        return model(video_matrix, num_frames=num_frames, training=False)["predictions"]

    timings = []
    for _ in range(1 + INFERENCE_TIMED_PASSES):
        dataset, files = reader.make_dataset(
            eval_pattern, batch_size, flag_name="--eval_data_pattern"
        )
        start = time.time()
        for batch in readers.iterate_batches(dataset, files):
            forward(batch["video_matrix"], batch["num_frames"]).numpy()
        timings.append(time.time() - start)
    return min(timings[1:])


def evaluate_model(model, config, model_dir, eval_pattern):
    """Evaluates the latest checkpoint of one model; returns its results.json entry."""
    metrics = evaluation.evaluate_checkpoint(
        model_dir,
        eval_pattern,
        batch_size=config.eval_batch_size,
        video_id_key=config.video_id_key,
    )
    evaluation.write_metrics(model_dir, metrics)
    inference_seconds = time_inference(
        model_dir, eval_pattern, config.eval_batch_size, config.video_id_key
    )
    return {
        "name": model.name,
        "method": model.method,
        "k": model.k,
        "frame_stride": model.frame_stride,
        "gap": metrics["gap"],
        "avg_hit_at_one": metrics["avg_hit_at_one"],
        "avg_perr": metrics["avg_perr"],
        "map": metrics["map"],
        "avg_loss": metrics["avg_loss"],
        "eval_videos": metrics["num_examples"],
        "eval_seconds": metrics["eval_seconds"],
        "videos_per_second": metrics["num_examples"] / max(metrics["eval_seconds"], 1e-9),
        "inference_seconds": inference_seconds,
        "global_step": metrics["global_step"],
        "checkpoint": os.path.basename(metrics["checkpoint"]),
    }


def format_progress(index, total, entry, reused):
    """One line per model: name, GAP, seconds."""
    how = "reused" if reused else f"trained {entry['train_seconds']:.0f} s"
    return (
        f"[{index:2d}/{total}] {entry['name']:<24s} GAP {entry['gap']:.4f}  "
        f"Hit@1 {entry['avg_hit_at_one']:.4f}  eval {entry['eval_seconds']:.1f} s  ({how})"
    )


def run_grid(config, ks, output_dir, report=print, methods=METHODS[1:]):
    """Trains and evaluates every model of the grid for `ks`, reusing finished ones.

    Args:
      config: GridConfig.
      ks: list of k (% of frames) from `parse_ks`.
      methods: the methods beside the teacher, from `parse_methods`.
      output_dir: where data, models and results go (see the module docstring).
      report: callable taking one progress line.

    Returns:
      dict with `results` (the results.json entries, Table 1 order) and `trained` (names of
      the models this call trained or evaluated; the others were reused).
    """
    if not config.synthetic:  # a wrong pattern is reported before anything is written
        utils.glob_data_files(config.train_data_pattern, "--train_data_pattern")
        utils.glob_data_files(config.eval_data_pattern, "--eval_data_pattern")
    same_config = check_config(output_dir, config)
    patterns = prepare_data(output_dir, config, report)
    results_path = os.path.join(output_dir, RESULTS_FILE)
    results = {}
    if same_config:
        results = {entry["name"]: entry for entry in read_json(results_path, [])}
    models = grid_models(ks, methods)
    teacher_dir = os.path.join(output_dir, "models", "TEACHER-FULL")
    trained_names = []
    for index, model in enumerate(models, start=1):
        model_dir = os.path.join(output_dir, "models", model.name)
        done = results.get(model.name)
        if done and done.get("checkpoint") == latest_checkpoint_name(model_dir):
            report(format_progress(index, len(models), done, reused=True))
            continue
        train_seconds, _ = train_model(model, config, model_dir, patterns["train"], teacher_dir)
        entry = evaluate_model(model, config, model_dir, patterns["eval"])
        entry["train_seconds"] = train_seconds
        results[model.name] = entry
        trained_names.append(model.name)
        # Each model builds new Keras layers and tf.functions: free the previous ones.
        tf.keras.backend.clear_session()
        gc.collect()
        ordered = sorted(results.values(), key=lambda row: row_order(row["name"]))
        write_json(results_path, ordered)
        report(format_progress(index, len(models), entry, reused=False))
    ordered = sorted(results.values(), key=lambda row: row_order(row["name"]))
    write_json(results_path, ordered)
    write_reports(output_dir, config, ordered)
    return {"results": ordered, "trained": trained_names}


def describe_data(config):
    """One sentence on the data and training of the grid, for results.md."""
    if config.synthetic:
        data = (
            f"synthetic YouTube-8M-format data ({config.num_train_videos} train / "
            f"{config.num_eval_videos} validate videos, {config.num_classes} classes, "
            f"{config.synthetic_min_frames}-{config.synthetic_max_frames} frames, "
            f"seed {config.seed})"
        )
    else:
        data = (
            f"`{config.train_data_pattern}` (train) and `{config.eval_data_pattern}` (eval), "
            f"{config.num_classes} classes"
        )
    return (
        f"Preset `{config.preset}` on {data}; LSTM {config.lstm_cells} cells x "
        f"{config.lstm_layers} layers, batch {config.batch_size}, learning rate "
        f"{config.base_learning_rate:g}; {config.distill_scheme} distillation. Every model gets "
        f"{config.total_epochs} passes: teachers {config.total_epochs} epochs, students "
        f"{config.joint_epochs} joint + {config.finetune_epochs} fine-tuning. Teacher blocks "
        f"{config.teacher_block_size} frames, student and baseline blocks "
        f"{config.student_block_size}."
    )


def format_table_1(results):
    """Table 1: one row per model, each metric ours then the paper's."""
    header = ["MODEL"]
    for label, _ in TABLE_1_METRICS:
        header += [f"{label} ours", f"{label} paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in results:
        paper = PAPER_TABLE_1.get(entry["name"])
        cells = [entry["name"]]
        for metric_index, (_, key) in enumerate(TABLE_1_METRICS):
            cells.append(f"{entry[key]:.3f}")
            cells.append(f"{paper[metric_index]:.3f}" if paper else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table_2(results):
    """Table 2: eval time of TEACHER-FULL and of the k % models, ours (s) and the paper's (h)."""
    by_name = {entry["name"]: entry for entry in results}
    ks = sorted({entry["k"] for entry in results if entry["method"] != "teacher"})
    teacher = by_name.get("TEACHER-FULL")
    header = ["MODEL", "TEACHER-FULL"] + [f"{k}%" for k in ks]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    paper_teacher = PAPER_EVAL_HOURS[100]
    paper_cells = ["paper, eval hours (fraction)", f"{paper_teacher:.2f} (1.00)"]
    for k in ks:
        hours = PAPER_EVAL_HOURS.get(k)
        paper_cells.append(f"{hours:.2f} ({hours / paper_teacher:.2f})" if hours else "–")
    lines.append("| " + " | ".join(paper_cells) + " |")
    for key, what in (("eval_seconds", "eval s"), ("inference_seconds", "warm inference s")):
        for method in METHODS[1:]:
            if not any(entry["method"] == method for entry in results):
                continue  # left out with --methods
            cells = [f"ours, {model_name(method, 'k')}, {what} (fraction)"]
            cells.append(f"{teacher[key]:.2f} (1.00)" if teacher else "–")
            for k in ks:
                entry = by_name.get(GridModel(method, k).name)
                if entry is None:
                    cells.append("–")
                elif teacher:
                    cells.append(f"{entry[key]:.2f} ({entry[key] / teacher[key]:.2f})")
                else:
                    cells.append(f"{entry[key]:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_markdown(config, results):
    """The whole results.md."""
    return "\n".join(
        [
            "# The paper's grid, reproduced",
            "",
            describe_data(config),
            "",
            "Ours: this run, on its eval set. Paper: Bhardwaj & Khapra, Tables 1 and 2, on the "
            "YouTube-8M validation set. On other data compare the orderings, not the values.",
            "",
            "## Table 1: performance",
            "",
            format_table_1(results),
            "",
            "## Table 2: evaluation time",
            "",
            "Ours in seconds on this machine: `eval s` is the whole evaluation (tracing and "
            "metrics included), `warm inference s` the fastest of four warm forward passes "
            "over the eval set. Fractions are of TEACHER-FULL's time. The paper's hours are on "
            "Tesla K80s; it does not say which k % model it timed.",
            "",
            format_table_2(results),
            "",
        ]
    )


def method_series(results, method, key):
    """(ks ascending, values) of one method's models."""
    rows = sorted((entry["k"], entry[key]) for entry in results if entry["method"] == method)
    return [k for k, _ in rows], [value for _, value in rows]


def render_png(figure):
    """The figure as PNG bytes, drawn by the Agg backend."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def plot_methods(axes, series_by_method, teacher_value, title, ylabel):
    """One line per k % method and the teacher as a horizontal line, on `axes`."""
    for method, (ks, values) in series_by_method.items():
        if ks:
            axes.plot(ks, values, marker="o", label=model_name(method, "k"))
    if teacher_value is not None:
        axes.axhline(teacher_value, color="black", linestyle="--", label="TEACHER-FULL")
    axes.set_xlabel("% of frames read (k)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)


def gap_figure(results):
    """GAP vs % of frames: this run (left) and the paper's Table 1 (right)."""
    figure = Figure(figsize=(11, 4.2))
    ours_axes, paper_axes = figure.subplots(1, 2)
    teacher = next((entry for entry in results if entry["method"] == "teacher"), None)
    plot_methods(
        ours_axes,
        {method: method_series(results, method, "gap") for method in METHODS[1:]},
        teacher["gap"] if teacher else None,
        "This run",
        "GAP",
    )
    paper_series = {}
    for method in METHODS[1:]:
        ks = [k for k in (5, 10, 25, 50) if GridModel(method, k).name in PAPER_TABLE_1]
        paper_series[method] = (ks, [PAPER_TABLE_1[GridModel(method, k).name][3] for k in ks])
    plot_methods(
        paper_axes, paper_series, PAPER_TABLE_1["TEACHER-FULL"][3], "Paper (YouTube-8M)", "GAP"
    )
    figure.tight_layout()
    return figure


def time_figure(results):
    """Eval time vs % of frames: seconds (left) and fraction of TEACHER-FULL's (right)."""
    figure = Figure(figsize=(11, 4.2))
    seconds_axes, fraction_axes = figure.subplots(1, 2)
    teacher = next((entry for entry in results if entry["method"] == "teacher"), None)
    plot_methods(
        seconds_axes,
        {method: method_series(results, method, "eval_seconds") for method in METHODS[1:]},
        teacher["eval_seconds"] if teacher else None,
        "Eval time, this run",
        "seconds",
    )
    if teacher:
        fractions = {}
        for method in METHODS[1:]:
            ks, seconds = method_series(results, method, "inference_seconds")
            fractions[method] = (ks, [value / teacher["inference_seconds"] for value in seconds])
        plot_methods(
            fraction_axes,
            fractions,
            1.0,
            "Warm inference time / TEACHER-FULL's",
            "fraction of the teacher's time",
        )
        paper_ks = sorted(k for k in PAPER_EVAL_HOURS if k != 100)
        fraction_axes.plot(
            paper_ks,
            [PAPER_EVAL_HOURS[k] / PAPER_EVAL_HOURS[100] for k in paper_ks],
            marker="s",
            color="grey",
            linestyle=":",
            label="paper (K80 eval hours)",
        )
        fraction_axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def write_reports(output_dir, config, results):
    """results.md and the two plots, each replaced atomically."""
    markdown = format_markdown(config, results)
    utils.write_text_atomically(os.path.join(output_dir, RESULTS_MARKDOWN_FILE), markdown)
    utils.write_bytes_atomically(
        os.path.join(output_dir, GAP_PLOT_FILE), render_png(gap_figure(results))
    )
    utils.write_bytes_atomically(
        os.path.join(output_dir, TIME_PLOT_FILE), render_png(time_figure(results))
    )
    return markdown


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    flag_values = flags.FLAGS
    if not flag_values["verbosity"].present:
        # One line per model; each model's own progress lines with --verbosity=0.
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("ERROR")  # a new tf.function per model is expected
    start = time.time()
    with utils.exit_on_user_error():
        ks = parse_ks(flag_values.ks)
        methods = parse_methods(flag_values.methods)
        config = resolve_config(
            preset=flag_values.preset,
            distill_scheme=flag_values.distill_scheme,
            train_data_pattern=flag_values.train_data_pattern,
            eval_data_pattern=flag_values.eval_data_pattern,
            feature_names=flag_values.feature_names,
            feature_sizes=flag_values.feature_sizes,
            video_id_key=flag_values.video_id_key,
            seed=flag_values.seed,
            **{name: flag_values[name].value for name in SIZE_FLAG_HELP},
        )
        output_dir = flag_values.output_dir
        print(describe_data(config), flush=True)
        grid = run_grid(
            config, ks, output_dir, report=lambda line: print(line, flush=True), methods=methods
        )
    print()
    print(format_markdown(config, grid["results"]))
    print(f"Results in {output_dir} ({RESULTS_FILE}, {RESULTS_MARKDOWN_FILE}, {GAP_PLOT_FILE}, ")
    print(f"{TIME_PLOT_FILE}); {len(grid['trained'])} model(s) trained or evaluated this run, ")
    print(f"{time.time() - start:.0f} s in all.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
