"""Fault injection: training killed or interrupted mid-run, a loss that turns NaN, damaged
shards and malformed videos under both --corrupt_record_policy values, and bad flags.

Each case checks what a user would check after the fault: the exit status and message, which
checkpoint is the latest, that rerunning the same command continues from it, and what the
outputs count.
"""

import importlib
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FRAME_SAMPLE,
    REPO_ROOT,
    random_frames,
    sequence_example,
    short_video_train_set,
    write_records,
)

import losses
import train
import utils

NUM_CLASSES = 5
TINY_MODEL = ["--lstm_cells=8", "--lstm_layers=1", "--block_size=5", f"--num_classes={NUM_CLASSES}"]


@pytest.fixture(scope="module")
def train_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault_data")
    return short_video_train_set(root, 64, NUM_CLASSES, seed=4, min_frames=10, max_frames=30)


def train_command(train_pattern, train_dir, *extra):
    return [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        f"--train_data_pattern={train_pattern}",
        f"--train_dir={train_dir}",
        "--batch_size=8",
        "--log_every_n_steps=1",
        "--checkpoint_steps=5",
        *TINY_MODEL,
        *extra,
    ]


def start_and_wait_for_step(command, step):
    """Starts training and returns (process, lines read) once progress line `step` is logged."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        match = re.search(r"step +(\d+) \|", line)
        if match and int(match.group(1)) >= step:
            return process, lines
    process.wait()
    tail = "".join(lines[-30:])
    raise AssertionError(f"training ended before step {step}:\n{tail}")


def checkpoint_step(train_dir):
    latest = tf.train.latest_checkpoint(str(train_dir))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_and_resume(train_pattern, tmp_path, signal_number):
    train_dir = tmp_path / "model"
    command = train_command(train_pattern, train_dir, "--num_epochs=1000", "--max_steps=100000")
    process, _ = start_and_wait_for_step(command, 7)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal_number, stderr[-2000:]
    name = signal.Signals(signal_number).name
    assert f"INTERRUPTED: {name} received: stopped at step" in stderr
    stopped_at = int(re.search(r"stopped at step (\d+)", stderr).group(1))
    assert stopped_at >= 7 and checkpoint_step(train_dir) == stopped_at
    # The same command with a step limit resumes at the saved step.
    resumed = subprocess.run(
        train_command(
            train_pattern, train_dir, "--num_epochs=1000", f"--max_steps={stopped_at + 2}"
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {stopped_at}" in resumed.stderr
    assert checkpoint_step(train_dir) == stopped_at + 2


def test_sigkill_resumes_from_the_last_checkpoint(train_pattern, tmp_path):
    train_dir = tmp_path / "model"
    command = train_command(train_pattern, train_dir, "--num_epochs=1000", "--max_steps=100000")
    process, _ = start_and_wait_for_step(command, 12)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    saved = checkpoint_step(train_dir)
    assert saved is not None and saved % 5 == 0 and saved >= 10
    # Whatever was being written when it died, the latest checkpoint reads back whole.
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(train_dir)))
    assert reader.get_variable_to_shape_map()
    resumed = subprocess.run(
        train_command(train_pattern, train_dir, "--num_epochs=1000", f"--max_steps={saved + 3}"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {saved}" in resumed.stderr and f"step {saved + 1:>7d} |" in resumed.stderr
    assert checkpoint_step(train_dir) == saved + 3


def test_a_killed_and_resumed_run_ends_as_good_as_an_uninterrupted_one(train_pattern, tmp_path):
    steps = 40
    uninterrupted_dir = tmp_path / "uninterrupted"
    completed = subprocess.run(
        train_command(
            train_pattern, uninterrupted_dir, "--num_epochs=1000", f"--max_steps={steps}"
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    command = train_command(train_pattern, killed_dir, "--num_epochs=1000", f"--max_steps={steps}")
    process, _ = start_and_wait_for_step(command, 17)
    process.kill()
    process.communicate(timeout=60)
    resumed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert checkpoint_step(killed_dir) == checkpoint_step(uninterrupted_dir) == steps
    evaluation = importlib.import_module("eval")
    gaps = [
        evaluation.evaluate_checkpoint(str(train_dir), train_pattern, batch_size=32)["gap"]
        for train_dir in (uninterrupted_dir, killed_dir)
    ]
    # The resumed run sees its batches in another order (the data seed follows the step).
    assert abs(gaps[0] - gaps[1]) < 0.1, gaps


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    train_pattern, tmp_path, monkeypatch
):
    model_flags = train.normalise_model_flags(
        {
            "model": "HierarchicalTeacherModel",
            "frame_features": True,
            "feature_names": "rgb,audio",
            "feature_sizes": "1024,128",
            "num_classes": NUM_CLASSES,
            "max_frames": 300,
            "lstm_cells": 8,
            "lstm_layers": 1,
            "dropout": 0.0,
            "block_size": 5,
            "l2_penalty": 1e-8,
            "label_loss": "CrossEntropyLoss",
        }
    )
    options = train.TrainOptions(
        train_data_pattern=train_pattern,
        train_dir=str(tmp_path / "model"),
        batch_size=8,
        max_steps=3,
        checkpoint_steps=1,
        log_every_n_steps=1,
    )
    train.train(options, model_flags)
    good = tf.train.latest_checkpoint(options.train_dir)
    assert good.endswith("ckpt-3")
    good_weights = {
        name: tf.train.load_variable(good, name) for name, _ in tf.train.list_variables(good)
    }

    original = losses.CrossEntropyLoss.calculate_loss

    def loss_turning_nan(self, predictions, labels, **kwargs):
        return original(self, predictions, labels, **kwargs) * float("nan")

    monkeypatch.setattr(losses.CrossEntropyLoss, "calculate_loss", loss_turning_nan)
    options.max_steps = 6
    with pytest.raises(utils.UserInputError, match="NaN or infinite at step 4") as raised:
        train.train(options, model_flags)
    assert "ckpt-3" in str(raised.value)
    assert tf.train.latest_checkpoint(options.train_dir) == good
    for name, value in good_weights.items():
        np.testing.assert_array_equal(tf.train.load_variable(good, name), value)


REAL_SHARDS = ("clippedtrain0093.tfrecord", "clippedtrain0208.tfrecord")
TINY_REAL_MODEL = ["--lstm_cells=8", "--lstm_layers=1", "--block_size=5", "--batch_size=4"]


def run_cli(script, *args):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )


def error_lines(completed):
    return [line for line in completed.stderr.splitlines() if line.startswith("ERROR:")]


def count_records(path):
    return sum(1 for _ in tf.data.TFRecordDataset(str(path)))


@pytest.fixture(scope="module")
def damaged_set(tmp_path_factory):
    """Real shards, one with a flipped bit in its second record, and a shard of malformed videos.

    Sorted file order: flipped, good, malformed.
    """
    root = tmp_path_factory.mktemp("damaged")
    good = root / "good.tfrecord"
    good.write_bytes((FRAME_SAMPLE / REAL_SHARDS[0]).read_bytes())
    data = bytearray((FRAME_SAMPLE / REAL_SHARDS[1]).read_bytes())
    second_record = 16 + int.from_bytes(data[:8], "little")
    data[second_record + 12 + 200] ^= 0x01
    flipped = root / "flipped.tfrecord"
    flipped.write_bytes(bytes(data))
    rng = np.random.default_rng(7)
    wrong_size = random_frames(rng, 3)
    wrong_size["audio"][0] = wrong_size["audio"][0][:100]
    malformed = write_records(
        root / "malformed.tfrecord",
        [
            sequence_example("wrong-size", [1], wrong_size),
            sequence_example("label-5000", [5000], random_frames(rng, 3)),
            sequence_example("fine", [3], random_frames(rng, 5)),
        ],
    )
    flipped_records = count_records(FRAME_SAMPLE / REAL_SHARDS[1])
    return {
        "all": str(root / "*.tfrecord"),
        "shards": f"{good},{flipped}",
        "videos": f"{good},{malformed}",
        "kept": count_records(good) + 1 + 1,  # the flipped shard's first record, "fine"
        "skipped": (flipped_records - 1) + 2,
    }


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """A tiny teacher trained 2 steps on the real samples (3,862 classes)."""
    train_dir = tmp_path_factory.mktemp("real_model") / "teacher"
    completed = run_cli(
        "train.py",
        f"--train_data_pattern={FRAME_SAMPLE / 'clippedtrain0*.tfrecord'}",
        f"--train_dir={train_dir}",
        "--max_steps=2",
        *TINY_REAL_MODEL,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return str(train_dir)


@pytest.mark.xdist_group("real_model")
def test_fail_policy_stops_at_a_damaged_shard_or_a_malformed_video(
    real_model, damaged_set, tmp_path
):
    completed = run_cli(
        "eval.py",
        f"--train_dir={real_model}",
        f"--eval_data_pattern={damaged_set['shards']}",
        "--run_once",
    )
    assert completed.returncode == 1
    [line] = error_lines(completed)
    assert "flipped.tfrecord" in line and "Corrupt or truncated" in line
    output_file = tmp_path / "predictions.csv"
    completed = run_cli(
        "inference.py",
        f"--train_dir={real_model}",
        f"--input_data_pattern={damaged_set['videos']}",
        f"--output_file={output_file}",
    )
    assert completed.returncode == 1
    [line] = error_lines(completed)
    assert "wrong-size" in line or "label-5000" in line, line
    assert not output_file.exists() and not list(tmp_path.iterdir())  # no partial CSV left


@pytest.mark.xdist_group("real_model")
def test_skip_policy_counts_what_it_leaves_out_in_eval_inference_and_train(
    real_model, damaged_set, tmp_path
):
    completed = run_cli(
        "eval.py",
        f"--train_dir={real_model}",
        f"--eval_data_pattern={damaged_set['all']}",
        "--run_once",
        "--corrupt_record_policy=skip",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with open(os.path.join(real_model, "eval_metrics.json")) as handle:
        metrics = json.load(handle)
    assert metrics["num_examples"] == damaged_set["kept"]
    assert metrics["skipped_records"] == damaged_set["skipped"]
    assert metrics["skipped"]["num_malformed_videos"] == 2
    [shard] = metrics["skipped"]["damaged_shards"]
    assert shard["file"].endswith("flipped.tfrecord") and shard["exact"]
    assert f"{damaged_set['skipped']} record(s) skipped" in completed.stdout

    output_file = tmp_path / "predictions.csv"
    completed = run_cli(
        "inference.py",
        f"--train_dir={real_model}",
        f"--input_data_pattern={damaged_set['all']}",
        f"--output_file={output_file}",
        "--corrupt_record_policy=skip",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = output_file.read_text().splitlines()[1:]
    assert len(rows) == damaged_set["kept"]
    assert not any(row.startswith(("wrong-size,", "label-5000,")) for row in rows)
    assert f"left out {damaged_set['skipped']} record(s)" in completed.stdout

    completed = run_cli(
        "train.py",
        f"--train_data_pattern={damaged_set['all']}",
        f"--train_dir={tmp_path / 'skip_train'}",
        "--num_epochs=1",
        "--corrupt_record_policy=skip",
        *TINY_REAL_MODEL,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"left out {damaged_set['skipped']} record(s)" in completed.stderr


@pytest.mark.xdist_group("real_model")
def test_eval_and_inference_reruns_are_identical(real_model, tmp_path):
    pattern = str(FRAME_SAMPLE / "clippedtrain1*.tfrecord")
    outputs = []
    for run in range(2):
        output_file = tmp_path / f"run{run}.csv"
        completed = run_cli(
            "inference.py",
            f"--train_dir={real_model}",
            f"--input_data_pattern={pattern}",
            f"--output_file={output_file}",
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        outputs.append(output_file.read_bytes())
    assert outputs[0] == outputs[1]
    metrics = []
    for _ in range(2):
        completed = run_cli(
            "eval.py", f"--train_dir={real_model}", f"--eval_data_pattern={pattern}", "--run_once"
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        with open(os.path.join(real_model, "eval_metrics.json")) as handle:
            values = json.load(handle)
        metrics.append({key: value for key, value in values.items() if "second" not in key})
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--model=NoSuchModel", "--model=NoSuchModel"),
        ("--frame_stride=0", "--frame_stride"),
        ("--block_size=0", "--block_size"),
        ("--feature_sizes=1024", "--feature_names"),
        ("--corrupt_record_policy=ignore", "corrupt_record_policy"),
    ],
)
def test_bad_flags_stop_training_before_the_data_is_looked_at(flag, expected, tmp_path):
    completed = run_cli(
        "train.py",
        f"--train_data_pattern={tmp_path / 'no-such-data*.tfrecord'}",
        f"--train_dir={tmp_path / 'train'}",
        flag,
    )
    assert completed.returncode != 0
    assert expected in completed.stderr and "no-such-data" not in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.xdist_group("real_model")
def test_unwritable_output_directories_are_refused_up_front(real_model, tmp_path):
    unwritable = "/proc/no-such-directory/out"
    completed = run_cli(
        "train.py",
        f"--train_data_pattern={FRAME_SAMPLE / REAL_SHARDS[0]}",
        f"--train_dir={unwritable}",
        *TINY_REAL_MODEL,
    )
    assert completed.returncode == 1
    [line] = error_lines(completed)
    assert "--train_dir" in line and unwritable in line
    completed = run_cli(
        "inference.py",
        f"--train_dir={real_model}",
        f"--input_data_pattern={FRAME_SAMPLE / REAL_SHARDS[0]}",
        f"--output_file={unwritable}/predictions.csv",
    )
    assert completed.returncode == 1
    [line] = error_lines(completed)
    assert "--output_file" in line and unwritable in line
