"""Tests of benchmark_training.py: step times and pauses from step records, and a tiny timed
training of the teacher, joint distillation and fine-tuning."""

import pytest

from experiments import benchmark_suite, benchmark_training


def test_epoch_pauses_are_the_gaps_between_epochs_beyond_a_normal_step():
    def step(phase, epoch, start, seconds=0.5):
        return {"phase": phase, "epoch": epoch, "start": start, "end": start + seconds, "videos": 4}

    steps = [
        step("train", 0, 0.0, seconds=5.0),  # the first step traces
        step("train", 0, 6.0),
        step("train", 0, 7.0),
        step("train", 1, 10.0),  # 3 s after the last step of epoch 0: 2 s of pause
        step("train", 1, 11.0),
        step("finetune", 0, 20.0),
        step("finetune", 0, 20.2, seconds=0.1),
        step("finetune", 0, 20.4, seconds=0.1),
        step("finetune", 1, 20.6, seconds=0.1),  # no pause
    ]
    assert benchmark_training.epoch_pauses_s(steps) == [
        {"phase": "train", "epoch": 0, "pause_s": 2.0},
        {"phase": "finetune", "epoch": 0, "pause_s": pytest.approx(0.0)},
    ]
    assert benchmark_training.median_step_s(steps, "train") == 0.5
    assert benchmark_training.median_step_s(steps, "finetune") == pytest.approx(0.1)


def test_training_part_times_teacher_joint_and_finetune_steps(tmp_path):
    pattern = benchmark_suite.write_benchmark_data(str(tmp_path / "data"), 12, num_classes=10)
    sizes = {"lstm_cells": 4, "lstm_layers": 1, "num_classes": 10, "max_frames": 40}
    training = benchmark_training.measure_training(
        pattern, str(tmp_path / "training"), sizes, batch_size=5, epochs=2, num_readers=2
    )
    # 12 videos in batches of 5: 3 steps an epoch, the last one partial.
    assert training["steps"] == {"teacher": 6, "joint": 6, "finetune": 6}
    for name in ("teacher", "joint", "finetune"):
        assert training[f"{name}_step_s"] > 0
    assert training["joint_over_teacher"] == training["joint_step_s"] / training["teacher_step_s"]
    assert training["finetune_over_teacher"] == (
        training["finetune_step_s"] / training["teacher_step_s"]
    )
    assert [(pause["phase"], pause["epoch"]) for pause in training["epoch_pauses"]] == [
        ("train", 0),
        ("distill", 0),
        ("finetune", 0),
    ]
    assert training["epoch_pause_s"] == max(
        [0.0] + [pause["pause_s"] for pause in training["epoch_pauses"]]
    )
