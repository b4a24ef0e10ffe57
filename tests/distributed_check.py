"""Runs training steps under MirroredStrategy over 2 logical CPU devices, in a process of its own
(logical devices must be set before TensorFlow starts), and prints a JSON report.

    python tests/distributed_check.py steps       # one device vs 2 replicas on the same batches
    python tests/distributed_check.py train DIR   # the training loop, supervised and distilled
"""

# ruff: noqa: E402 (TensorFlow's logical devices are set before the modules load)

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np
import tensorflow as tf

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

from conftest import tiny_config

import model_zoo
from runs import (
    config,
    distribution,
)
from serving import (
    evaluator,
    predictor,
)
from training import (
    optimization,
    tasks,
    trainer,
)

FRAME_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "yt8m_2018_frame_sample"


def small_config(**changes):
    """The tests' tiny config on 8 features (6 + 2), 12 classes and 12 frames."""
    values = {"feature_sizes": "6,2", "num_classes": 12, "max_frames": 12, "l2_penalty": 1e-2}
    values.update(changes)
    return tiny_config(**values)


def random_batches(sizes, seed=7):
    """Batches of random uint8 videos with 0-12 frames (some empty) and random labels."""
    rng = np.random.default_rng(seed)
    batches = []
    for size in sizes:
        num_frames = rng.integers(0, 13, size).astype(np.int32)
        num_frames[0] = 12
        batches.append(
            {
                "video_matrix": rng.integers(0, 256, (size, 12, 8), dtype=np.uint8),
                "num_frames": num_frames,
                "labels": rng.random((size, 12)) < 0.2,
            }
        )
    return batches


def run_steps(strategy, initial_weights, batches):
    """Trains from `initial_weights` on `batches` (each a global batch); returns the losses and
    the final weights."""
    task = tasks.SupervisedTask(small_config())
    options = config.TrainOptions(clip_gradient_norm=0.05)
    with strategy.scope():
        task.build()
        for variable, value in zip(task.model.weights, initial_weights, strict=True):
            variable.assign(value)
        optimizer = optimization.make_optimizer(1e-2, mixed_precision=False)
        [phase] = task.phases(options)
        optimizer.build(phase.variables)
    step = trainer.compile_step(strategy, phase, optimizer, options.clip_gradient_norm)
    step_losses = []
    for batch in batches:
        dataset = tf.data.Dataset.from_tensor_slices(batch).batch(len(batch["labels"]))
        for distributed_batch in strategy.experimental_distribute_dataset(dataset):
            result = step(distributed_batch)
            step_losses.append(float(result.loss))
            assert int(result.num_examples) == len(batch["labels"])
    return step_losses, [variable.numpy() for variable in task.model.weights]


def compare_steps():
    """One device and 2 replicas, same start, same batches (6, 5 and 1 videos: the last gives
    one replica nothing)."""
    reference = model_zoo.build_model(small_config())
    initial = [variable.numpy() for variable in reference.weights]
    batches = random_batches([6, 5, 1])
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = distribution.make_strategy("mirrored")
    one_losses, one_weights = run_steps(one_device, initial, batches)
    mirrored_losses, mirrored_weights = run_steps(mirrored, initial, batches)
    return {
        "replicas": mirrored.num_replicas_in_sync,
        "one_device_losses": one_losses,
        "mirrored_losses": mirrored_losses,
        "max_weight_difference": max(
            float(np.max(np.abs(a - b))) for a, b in zip(one_weights, mirrored_weights, strict=True)
        ),
        "max_weight_change": max(
            float(np.max(np.abs(a - b))) for a, b in zip(one_weights, initial, strict=True)
        ),
    }


def train_under_mirrored(train_dir):
    """The loop to step 3, resumed to 4, a joint distillation, and 2 steps of mixed precision,
    with 2 replicas."""
    strategy = distribution.make_strategy("mirrored")
    run_config = tiny_config(max_frames=20, block_size=5)

    def options(directory, max_steps, **changes):
        values = {"batch_size": 4, **changes}
        return config.TrainOptions(
            train_data_pattern=str(FRAME_SAMPLE / "*.tfrecord"),
            train_dir=directory,
            max_steps=max_steps,
            log_every_n_steps=1,
            checkpoint_steps=2,
            strategy="mirrored",
            **values,
        )

    teacher_dir = os.path.join(train_dir, "teacher")
    teacher = tasks.SupervisedTask(run_config)
    first = trainer.train(teacher, options(teacher_dir, 3), strategy)
    resumed = trainer.train(tasks.SupervisedTask(run_config), options(teacher_dir, 4), strategy)
    student = trainer.train(
        tasks.make_task(
            run_config.replace(model="DistilledStudentModel", frame_stride=4),
            config.DistillOptions(joint_epochs=1, finetune_epochs=1),
        ),
        options(os.path.join(train_dir, "student"), 0, batch_size=8),
        strategy,
    )
    mixed = trainer.train(
        tasks.SupervisedTask(run_config),
        options(os.path.join(train_dir, "mixed"), 2, mixed_precision=True),
        strategy,
    )
    optimization.set_precision_policy(False)
    return {
        **predict_under_mirrored(teacher_dir, strategy),
        "replicas": strategy.num_replicas_in_sync,
        "first_step": first["global_step"],
        "first_loss": first["last_loss"],
        "resumed_step": resumed["global_step"],
        "resumed_checkpoint": resumed["checkpoint"],
        "student_step": student["global_step"],
        "student_checkpoint": student["checkpoint"],
        "mixed_step": mixed["global_step"],
        "mixed_loss": mixed["last_loss"],
    }


def csv_rows(text):
    """A predictions CSV as [(video id, {label: score})], in file order."""
    rows = []
    for line in text.splitlines()[1:]:
        video_id, pairs = line.split(",")
        fields = pairs.split()
        rows.append(
            (
                video_id,
                {
                    int(label): float(score)
                    for label, score in zip(fields[::2], fields[1::2], strict=True)
                },
            )
        )
    return rows


def row_score_gap(first, second):
    """The largest score difference between two top-k rows of a video. A label in one row only
    counts as scoring the other row's lowest kept score (it can score no more), so two rows
    that differ only in the order of near-ties have a gap near 0."""
    lowest = (min(first.values()), min(second.values()))
    return max(
        abs(first.get(label, lowest[0]) - second.get(label, lowest[1]))
        for label in set(first) | set(second)
    )


def predict_under_mirrored(train_dir, strategy):
    """Eval metrics and inference CSVs with the batches split over 2 replicas and without, with
    a batch size (5) that leaves the replicas uneven."""
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    csv_files = []
    for name, each in (("one", None), ("mirrored", strategy)):
        output_file = os.path.join(train_dir, f"predictions_{name}.csv")
        predictor.run_inference(
            pattern, output_file, train_dir=train_dir, batch_size=5, strategy=each
        )
        with open(output_file) as handle:
            csv_files.append(handle.read())
    metrics = [
        evaluator.evaluate_checkpoint(train_dir, pattern, batch_size=5, strategy=each)
        for each in (None, strategy)
    ]
    rows = [csv_rows(text) for text in csv_files]
    return {
        "same_csv_ids": [video_id for video_id, _ in rows[0]]
        == [video_id for video_id, _ in rows[1]],
        "csv_score_gap": max(
            row_score_gap(first, second) for (_, first), (_, second) in zip(*rows, strict=True)
        ),
        "csv_lines": csv_files[0].count("\n"),
        "eval_gaps": [each["gap"] for each in metrics],
        "eval_losses": [each["avg_loss"] for each in metrics],
    }


if __name__ == "__main__":
    if sys.argv[1] == "steps":
        report = compare_steps()
    else:
        report = train_under_mirrored(sys.argv[2])
    print("REPORT " + json.dumps(report))
