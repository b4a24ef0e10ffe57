"""Fault injection: training killed or interrupted mid-run, and a loss that turns NaN.

Each case checks what a user would check after the fault: the exit status and message, which
checkpoint is the latest, and that rerunning the same command continues from it.
"""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT

import losses
import synthetic_data
import train
import utils

NUM_CLASSES = 5
TINY_MODEL = ["--lstm_cells=8", "--lstm_layers=1", "--block_size=5", f"--num_classes={NUM_CLASSES}"]


@pytest.fixture(scope="module")
def train_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault_data")
    spec = synthetic_data.SyntheticDatasetSpec(min_frames=10, max_frames=30, max_labels=2)
    synthetic_data.write_dataset(str(root), 64, 2, NUM_CLASSES, seed=4, spec=spec)
    return str(root / "train-*.tfrecord")


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
