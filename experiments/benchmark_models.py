"""The models the benchmark measures: per preset (`PRESETS`: `paper` = the paper's section 4,
1,024 cells x 2 layers and 3,862 classes; `small` = the reproduction's small preset) and family,
the teacher on every frame and the students on 1 frame in j, their cost as built (parameters and
FLOPs per video) and untrained checkpoints of them that eval.py and inference.py load.

    entries = benchmark_models.benchmark_models("paper", [10], family="nextvlad")
"""

import os
import statistics

import tensorflow as tf

import model_zoo
import utils
from experiments import benchmark_training
from experiments import grid as experiments_grid
from runs import config

# Model sizes. `small` is the reproduction's small preset; `paper` the paper's section 4.
PRESETS = {
    "small": {"lstm_cells": 64, "lstm_layers": 2, "num_classes": 10},
    "paper": {"lstm_cells": 1024, "lstm_layers": 2, "num_classes": 3862},
}
# The other families' sizes per preset: the grid's small ones; the published ones (RunConfig's
# 0) at the paper's size.
FAMILY_PRESET_SIZES = {
    "small": experiments_grid.FAMILY_SIZES["small"],
    "paper": {},
}
# The other families are measured for their teacher and this student.
FAMILY_STUDENT_K = 10


def benchmark_models(preset, ks, family="hierarchical"):
    """[(name, RunConfig)] of the teacher and the students of `preset` in `family` (the other
    families: the teacher and student-10)."""
    if preset not in PRESETS:
        raise utils.UserInputError(f"--presets: unknown preset '{preset}' (small, paper).")
    teacher = config.RunConfig(block_size=benchmark_training.TEACHER_BLOCK_SIZE, **PRESETS[preset])
    if family != "hierarchical":
        sizes = FAMILY_PRESET_SIZES[preset].get(family, {})
        teacher = config.RunConfig(
            model=config.FAMILIES[family], num_classes=teacher.num_classes, **sizes
        )
        ks = [FAMILY_STUDENT_K]
    entries = [("teacher", teacher)]
    for k in sorted(ks, reverse=True):
        student = teacher.replace(
            model=config.STUDENT_MODEL,
            student_architecture=teacher.model,
            block_size=config.STUDENT_BLOCK_SIZE,
            frame_stride=100 // k,
        )
        entries.append((f"student-{k}", student))
    return entries


def parse_families(values):
    """`--families` -> the families in config.FAMILIES' order."""
    unknown = sorted(set(values) - set(config.FAMILIES))
    if unknown:
        raise utils.UserInputError(
            f"--families: '{unknown[0]}' is not one of {', '.join(config.FAMILIES)}."
        )
    return [family for family in config.FAMILIES if family in values]


def model_cost(model, cached_batches):
    """Parameters and operations of a built model on the videos of `cached_batches`: the mean
    per video of its `flops(frames read)` (2 per multiply-add of its matrix products: dense
    layers, LSTM gates, VLAD assignments and residual sums; elementwise operations, softmaxes
    and normalizations are not counted), split into the part that grows with the frames and the
    fixed part (hidden layers, gating and output layer, once per video)."""
    counts = [int(count) for _, num_frames in cached_batches for count in num_frames.numpy()]
    frame_parts, fixed_parts = zip(*(model.flops(count) for count in counts), strict=True)
    frame_flops = statistics.fmean(frame_parts)
    fixed_flops = statistics.fmean(fixed_parts)
    return {
        "parameters": int(sum(int(tf.size(weight)) for weight in model.weights)),
        "gflops_frames": frame_flops / 1e9,
        "gflops_fixed": fixed_flops / 1e9,
        "gflops_per_video": (frame_flops + fixed_flops) / 1e9,
    }


def save_untrained(run_config, train_dir):
    """A checkpoint of a freshly built model, loadable by eval.py and inference.py."""
    if tf.train.latest_checkpoint(train_dir):
        return train_dir
    model = model_zoo.build_model(run_config)
    tf.train.Checkpoint(model=model).save(os.path.join(train_dir, "ckpt"))
    run_config.save(train_dir)
    return train_dir
