"""The paper's grid, defined: its methods and models, presets, settings and each model's flags.

A grid model is a method (METHODS: the teacher, the uniform and random baselines, the
follow-up's frame-selection baselines, the final, intermediate and default students) and k, the
% of the frames it reads (1 frame in 100 / k), in a model family (`GridConfig.family`: every
model of a grid is the family's architecture). `GridConfig` holds every setting that decides
the models and the data (a preset in PRESETS, then the user's overrides, by `resolve_config`);
`run_config_for`, `train_options_for` and `distill_options_for` turn one grid model into the
configuration the training loop takes.
Definitions only: grid_runner.py trains and evaluates, grid_report.py writes the tables and plots.
"""

import dataclasses
import math
import os

import utils
from runs.config import FAMILIES, STUDENT_MODEL, DistillOptions, RunConfig, TrainOptions
from runs.recipes import DEFAULT_RECIPE, RECIPES, recipe_exit_stages, recipe_flag_values

YT8M_NUM_CLASSES = 3862
DEFAULT_KS = (5, 10, 25, 50)
DISTILL_SCHEMES = ("joint", "serial")
# The grid's data: synthetic (synthetic_data.py), the real-label proxy (proxy_data.py), or the
# user's files (--train_data_pattern and --eval_data_pattern).
DATA_REGIMES = ("synthetic", "proxy")
# "default": a student trained by train.py's default recipe (runs.recipes.RECIPES), beside the
# paper's two students; serial from the grid's TEACHER-FULL whatever --distill_scheme says.
# The follow-up's frame-selection baselines (First-k, Middle-k, Last-k, First-Middle-Last-k): the
# teacher's architecture trained from scratch on those frames (train.py's --frame_sampling).
SELECTION_METHODS = ("first", "middle", "last", "first_middle_last")
METHODS = (
    "teacher",
    "uniform",
    "random",
    *SELECTION_METHODS,
    "final",
    "intermediate",
    "default",
)
STUDENT_METHODS = ("final", "intermediate", "default")
# What reproduce.py trains without --methods: the paper's grid and the default recipe's row.
DEFAULT_METHODS = ("uniform", "random", "final", "intermediate", "default")
# Methods of the paper's hierarchical family only: the intermediate term matches its lower-level
# outputs, and the joint scheme trains its teacher beside the student.
HIERARCHICAL_ONLY_METHODS = ("intermediate",)
# Sizes of the cluster-and-aggregate families' networks per preset; a family or preset not
# listed takes the published sizes (RunConfig: cluster_size and hidden_size 0). The small
# ones give a representation as wide as the small hierarchical model's (2 x 64 = 128).
FAMILY_SIZES = {
    "small": {
        "netvlad": {"cluster_size": 16, "hidden_size": 128},
        "nextvlad": {"cluster_size": 16, "hidden_size": 128},
        "dbof": {"cluster_size": 256, "hidden_size": 128},
    },
    "tiny": {
        "netvlad": {"cluster_size": 4, "hidden_size": 8},
        "nextvlad": {"cluster_size": 4, "hidden_size": 8},
        "dbof": {"cluster_size": 16, "hidden_size": 8},
    },
}
# The DBoF family's pooling over frames in a grid, at every preset: the average, as Model
# Garden's DbofModel does, not the starter's max: on the proxy the max over 300 noisy frames
# put its TEACHER-FULL below its UNIFORM-10 (BUILD_NOTES, "The model families").
DBOF_GRID_POOLING = "average"

# The sizes a user may override (resolve_config's size_overrides), with their --flag help.
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
    num_seeds: int = 1  # training seeds per model, --seeds
    inference_timed_passes: int = 4  # timed passes over the eval set (the fastest is kept)
    # Sizes that differ on the real-label proxy (--data=proxy): (name, value) pairs.
    proxy_sizes: tuple = ()


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
        num_seeds=3,
        # At 0.003 the 64-cell LSTMs sit on a plateau for about 4 passes over the proxy
        # (they predict the class priors: GAP 0.09-0.11) before they learn the videos (0.49
        # after 8, 0.65 after 12); at 0.01 they learn from the 2nd pass (0.35 after 2, 0.63
        # after 4, 0.68 after 6). With 9 + 1 passes the teacher leads UNIFORM-10 on the
        # calibrated proxy (frame noise 2) by the paper's 2-5 %. BUILD_NOTES.md, "Calibrating
        # the proxy".
        proxy_sizes=(("base_learning_rate", 0.01), ("joint_epochs", 9)),
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
        inference_timed_passes=1,
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
    prediction_weight: float = 0.0  # the students' prediction-level term (0: the paper's)
    student_label_weight: float = 0.0  # the students' own label loss in phase 1 (0: the paper's)
    # A joint student's teacher cuts its blocks at the student's block boundaries (block
    # student_block_size x j frames), so the intermediate term compares encodings of the same
    # span of the video; False: the paper's teacher block (teacher_block_size) for every k.
    align_teacher_blocks: bool = False
    # UNIFORM-k baselines and students train on frames o, o + j, ... from a random offset o per
    # video and epoch (RunConfig.random_frame_offset); every model still evaluates on 0, j, 2j.
    random_frame_offset: bool = False
    data: str = "synthetic"  # one of DATA_REGIMES, or "files" for the user's patterns
    # The model family of every model of the grid (runs.config.FAMILIES) and its sizes
    # (FAMILY_SIZES; 0: the published ones). The hierarchical family uses the LSTM sizes.
    family: str = "hierarchical"
    cluster_size: int = 0
    hidden_size: int = 0
    # DbofModel's pooling over the frames (DBOF_GRID_POOLING in a DBoF grid). The default is
    # the starter's max, which every DBoF grid written before this setting used.
    dbof_pooling: str = "max"
    proxy_shot_noise: float = 1.0  # the proxy's noise levels (proxy_data.FrameSpec)
    proxy_frame_noise: float = 1.0
    proxy_top_classes: int = 0  # 0: every class

    @property
    def synthetic(self):
        return self.data == "synthetic"

    @property
    def generated(self):
        """True when the grid writes its own data (synthetic or proxy)."""
        return self.data in DATA_REGIMES

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
    if method in ("uniform", "random", *SELECTION_METHODS):
        return f"TEACHER-{method.upper().replace('_', '-')}-{k}"
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
    def frame_sampling(self):
        """Which frames it reads (train.py's --frame_sampling): its method's for the random and
        selection baselines, uniform otherwise."""
        return self.method if self.method in ("random", *SELECTION_METHODS) else "uniform"

    @property
    def is_student(self):
        return self.method in STUDENT_METHODS


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


def grid_models(ks, methods=DEFAULT_METHODS):
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
    data="synthetic",
    proxy_shot_noise=0.0,
    proxy_frame_noise=2.0,
    proxy_top_classes=0,
    distill_weight=10.0,
    intermediate_weight=1.0,
    prediction_weight=0.0,
    student_label_weight=0.0,
    align_teacher_blocks=False,
    random_frame_offset=False,
    family="hierarchical",
    dbof_pooling=None,
    **size_overrides,
):
    """The grid's settings: the preset's sizes, then the overrides that are not None.

    Args:
      preset: a name in PRESETS.
      distill_scheme: joint or serial.
      train_data_pattern, eval_data_pattern: real data (both) or synthetic (neither).
      feature_names, feature_sizes, video_id_key: how the records are read.
      seed: data, initialisation and shuffles.
      data: "synthetic" or "proxy" (proxy_data.py: real ids, labels and mean features, frames
        synthesized around them); ignored with data patterns.
      proxy_shot_noise, proxy_frame_noise, proxy_top_classes: the proxy's noise levels and
        classes kept (0: all).
      distill_weight, intermediate_weight, prediction_weight, student_label_weight: the
        students' loss weights (RunConfig's).
      align_teacher_blocks: joint students' teachers take blocks of student_block_size x j.
      random_frame_offset: UNIFORM-k baselines and students train from random offsets.
      family: the model family (runs.config.FAMILIES) of every model.
      dbof_pooling: the DBoF family's pooling; None: DBOF_GRID_POOLING. Ignored by the others.
      **size_overrides: keys of SIZE_FLAG_HELP; None keeps the preset's value. With the proxy
        `num_train_videos` / `num_eval_videos` cap the real videos used (0: all).

    Raises:
      utils.UserInputError: naming the flag that is wrong.
    """
    if preset not in PRESETS:
        raise utils.UserInputError(
            f"--preset={preset} is not a preset; choose small or paper ({', '.join(PRESETS)})."
        )
    if distill_scheme not in DISTILL_SCHEMES:
        raise utils.UserInputError(f"--distill_scheme={distill_scheme}: choose joint or serial.")
    if data not in DATA_REGIMES:
        raise utils.UserInputError(f"--data={data}: choose one of {', '.join(DATA_REGIMES)}.")
    if family not in FAMILIES:
        raise utils.UserInputError(
            f"--families: '{family}' is not a model family; choose from {', '.join(FAMILIES)}."
        )
    if train_data_pattern and data != "synthetic":
        raise utils.UserInputError(
            f"--data={data} writes its own data: leave out --train_data_pattern and "
            "--eval_data_pattern."
        )
    weights = (distill_weight, intermediate_weight, prediction_weight, student_label_weight)
    if min(weights) < 0:
        raise utils.UserInputError(
            "--distill_weight, --intermediate_weight, --prediction_weight and "
            "--student_label_weight must be >= 0."
        )
    if min(proxy_shot_noise, proxy_frame_noise) < 0 or proxy_top_classes < 0:
        raise utils.UserInputError(
            "--proxy_shot_noise, --proxy_frame_noise and --proxy_top_classes must be >= 0."
        )
    if bool(train_data_pattern) != bool(eval_data_pattern):
        raise utils.UserInputError(
            "--train_data_pattern and --eval_data_pattern go together: give both for real "
            "data, or neither for the synthetic set."
        )
    unknown = sorted(set(size_overrides) - set(SIZE_FLAG_HELP))
    if unknown:
        raise TypeError(f"unknown size overrides: {unknown}")
    sizes = dataclasses.asdict(PRESETS[preset])
    proxy_sizes = dict(sizes.pop("proxy_sizes"))
    if data == "proxy":  # never with data patterns: refused above
        sizes.update(proxy_sizes)
    real_labels = bool(train_data_pattern) or data == "proxy"
    sizes["num_classes"] = YT8M_NUM_CLASSES if real_labels else sizes["synthetic_classes"]
    if real_labels:
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
    if (
        data == "synthetic"
        and not train_data_pattern
        and min(sizes["num_train_videos"], sizes["num_eval_videos"]) < 1
    ):
        raise utils.UserInputError(
            "--num_train_videos and --num_eval_videos must be >= 1 for the synthetic set."
        )
    names, feature_widths = utils.get_list_of_feature_names_and_sizes(feature_names, feature_sizes)
    del sizes["synthetic_classes"]
    del sizes["num_seeds"]  # how many runs of each model, not what a model is
    del sizes["inference_timed_passes"]  # how a model is timed, not what it is
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
        data="files" if train_data_pattern else data,
        proxy_shot_noise=proxy_shot_noise if data == "proxy" else 1.0,
        proxy_frame_noise=proxy_frame_noise if data == "proxy" else 1.0,
        proxy_top_classes=proxy_top_classes if data == "proxy" else 0,
        distill_weight=distill_weight,
        intermediate_weight=intermediate_weight,
        prediction_weight=prediction_weight,
        student_label_weight=student_label_weight,
        align_teacher_blocks=bool(align_teacher_blocks),
        random_frame_offset=bool(random_frame_offset),
        family=family,
        **FAMILY_SIZES.get(preset, {}).get(family, {}),
        **({"dbof_pooling": dbof_pooling or DBOF_GRID_POOLING} if family == "dbof" else {}),
        **sizes,
    )


def check_methods_for_family(config, methods):
    """Raises utils.UserInputError for a method the grid's family cannot train: the
    intermediate student, and the joint scheme, are the hierarchical family's."""
    if config.family == "hierarchical":
        return
    refused = [method for method in methods if method in HIERARCHICAL_ONLY_METHODS]
    if config.distill_scheme == "joint":
        refused += [method for method in methods if method == "final"]
    if refused:
        raise utils.UserInputError(
            f"--methods={','.join(methods)}: {refused[0]} is not trained for the {config.family} "
            "family (the intermediate term and the joint scheme are the paper's, for the "
            "hierarchical model): use uniform, random and default, or final with "
            "--distill_scheme=serial."
        )


def run_config_for(model, config):
    """The RunConfig (model_flags.json) of one grid model: its family's architecture (a
    student is a DistilledStudentModel built as it)."""
    architecture = FAMILIES[config.family]
    family_sizes = {}
    if config.family != "hierarchical":
        family_sizes = {"cluster_size": config.cluster_size, "hidden_size": config.hidden_size}
    if config.family == "dbof":
        family_sizes["dbof_pooling"] = config.dbof_pooling
    run_config = RunConfig(
        model=architecture,
        **family_sizes,
        feature_names=config.feature_names,
        feature_sizes=config.feature_sizes,
        num_classes=config.num_classes,
        max_frames=config.max_frames,
        frame_stride=model.frame_stride,
        frame_sampling=model.frame_sampling,
        lstm_cells=config.lstm_cells,
        lstm_layers=config.lstm_layers,
        dropout=0.5,
        block_size=config.teacher_block_size,
        distill_weight=config.distill_weight,
        intermediate_weight=config.intermediate_weight,
        prediction_weight=config.prediction_weight,
        student_label_weight=config.student_label_weight,
        teacher_block_size=config.teacher_block_size,
    )
    if model.method != "teacher":
        run_config = run_config.replace(block_size=config.student_block_size)
        if config.random_frame_offset and model.frame_sampling == "uniform":
            run_config = run_config.replace(random_frame_offset=True)
    if model.method == "default":
        recipe_values = recipe_flag_values(DEFAULT_RECIPE, model.frame_stride, "uniform")
        return run_config.replace(
            model=STUDENT_MODEL,
            student_architecture=architecture,
            distill_recipe=DEFAULT_RECIPE,
            exit_stages=recipe_exit_stages(DEFAULT_RECIPE, config.family),
            **recipe_values,
        )
    if model.is_student:
        run_config = run_config.replace(
            model=STUDENT_MODEL, student_architecture=architecture, distill_mode=model.method
        )
        if config.align_teacher_blocks:
            run_config = run_config.replace(
                teacher_block_size=config.student_block_size * model.frame_stride
            )
    return run_config


def training_seeds(config, num_seeds=None):
    """The training seeds of the grid: `config.seed`, `config.seed + 1`, ... (`num_seeds`, or the
    preset's). Every seed trains every model on the same data.

    Raises:
      utils.UserInputError: for fewer than 1 seed.
    """
    num_seeds = PRESETS[config.preset].num_seeds if num_seeds is None else num_seeds
    if num_seeds < 1:
        raise utils.UserInputError(f"--seeds={num_seeds} must be >= 1.")
    return [config.seed + index for index in range(num_seeds)]


def model_dir(output_dir, name, seed):
    """Where one grid model of one training seed trains: `output_dir/models/NAME/seedS`."""
    return os.path.join(output_dir, "models", name, f"seed{seed}")


def train_options_for(config, model_dir, train_pattern, seed=None):
    """The TrainOptions of one grid model: `total_epochs` passes (the students' phases are
    set by `distill_options_for`), a checkpoint and a progress line every epoch, and the
    training seed `seed` (default `config.seed`: initialisation, shuffles, frames drawn)."""
    steps_per_epoch = config.steps_per_epoch
    return TrainOptions(
        train_data_pattern=train_pattern,
        train_dir=model_dir,
        batch_size=config.batch_size,
        base_learning_rate=config.base_learning_rate,
        learning_rate_decay=config.learning_rate_decay,
        learning_rate_decay_examples=config.learning_rate_decay_examples,
        num_epochs=config.total_epochs,
        checkpoint_steps=steps_per_epoch or 1000,
        log_every_n_steps=steps_per_epoch or 100,
        max_checkpoints_to_keep=2,
        video_id_key=config.video_id_key,
        seed=config.seed if seed is None else seed,
        deterministic=True,
    )


def distill_options_for(config, teacher_dir, model=None):
    """The phases of the grid's students: joint, or serial from `teacher_dir` (TEACHER-FULL).
    A `model` of the default recipe distils as train.py's default does: serial when the recipe
    is, from this grid's TEACHER-FULL (what a student's own teacher is: the same architecture,
    sizes and passes)."""
    scheme = config.distill_scheme
    if model is not None and model.method == "default":
        scheme = RECIPES[DEFAULT_RECIPE].scheme
    return DistillOptions(
        joint_epochs=config.joint_epochs,
        finetune_epochs=config.finetune_epochs,
        teacher_train_dir=teacher_dir if scheme == "serial" else "",
    )
