"""Tests of evaluator.py: one checkpoint on the real samples, the metrics passed through."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, train_tiny_teacher

import eval_util
import readers
import utils
from runs import checkpoints
from serving import evaluator

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")  # 59 videos


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return train_tiny_teacher(tmp_path_factory.mktemp("evaluator") / "teacher")


@pytest.mark.xdist_group("evaluator")
def test_metrics_are_those_of_evaluation_metrics_on_the_models_predictions(teacher_dir, caplog):
    # The clock: 10 s at the start, +20 s a batch (9 batches of 7 videos), then the end.
    ticks = iter([10.0] + [10.0 + 20.0 * batch for batch in range(1, 10)] + [190.0])
    caplog.set_level(logging.INFO, logger="absl")  # whatever verbosity other tests left
    metrics = evaluator.evaluate_checkpoint(
        teacher_dir, SAMPLE, batch_size=7, clock=lambda: next(ticks)
    )
    progress = [
        record.getMessage() for record in caplog.records if "videos/s" in record.getMessage()
    ]
    # A line at most every 30 s: after batches 2, 4, 6 and 8 (14 videos in 40 s, ...), with
    # the count estimated from the first shard (58 of the 59 videos) and the time left.
    assert [line.split(": ", 1)[1] for line in progress] == [
        "14 of about 58 videos, 0.3 videos/s, about 2 min 6 s left",
        "28 of about 58 videos, 0.3 videos/s, about 1 min 26 s left",
        "42 of about 58 videos, 0.3 videos/s, about 46 s left",
        "56 of about 58 videos, 0.3 videos/s, about 6 s left",
    ]
    # The same predictions, accumulated here in one batch, give the same metrics.
    model, run_config, _ = checkpoints.restore_model(teacher_dir)
    dataset, _ = readers.reader_for(run_config).make_dataset(SAMPLE, 64)
    expected = eval_util.EvaluationMetrics(run_config.num_classes, 20, None)
    for batch in dataset:
        predictions = model(batch["video_matrix"], num_frames=batch["num_frames"])["predictions"]
        expected.accumulate(predictions.numpy(), batch["labels"].numpy(), 0.0)
    reference = expected.get()
    assert set(reference) <= set(metrics)
    assert metrics["num_examples"] == 59
    for name in ("gap", "avg_hit_at_one", "avg_perr", "map"):
        assert metrics[name] == pytest.approx(reference[name], abs=1e-6), name
    np.testing.assert_allclose(metrics["aps"], reference["aps"], atol=1e-6)
    assert metrics["global_step"] == 2 and metrics["checkpoint"].endswith("ckpt-2")
    assert metrics["eval_seconds"] == 180.0 and metrics["videos_per_second"] == 59 / 180.0
    assert metrics["skipped_records"] == 0


@pytest.mark.xdist_group("evaluator")
def test_written_and_shown_metrics(teacher_dir):
    reports = []
    metrics = evaluator.evaluate_checkpoints(
        teacher_dir, SAMPLE, run_once=True, report=reports.append
    )
    assert reports == [metrics]
    with open(os.path.join(teacher_dir, evaluator.EVAL_METRICS_FILE)) as handle:
        assert json.load(handle) == json.loads(json.dumps(metrics))
    line = evaluator.format_metrics(metrics)
    assert line.startswith("step 2 | 59 videos | ")
    for name, label in eval_util.METRIC_LABELS.items():
        assert f"{label} {metrics[name]:.4f}" in line
    events = tf.io.gfile.glob(os.path.join(teacher_dir, "eval", "events.*"))
    tags = {
        value.tag
        for path in events
        for event in tf.compat.v1.train.summary_iterator(path)
        for value in event.summary.value
    }
    assert tags == set(eval_util.METRIC_LABELS)


def test_no_checkpoint_and_no_videos_are_user_errors(tmp_path):
    with pytest.raises(utils.UserInputError, match="No checkpoint appeared"):
        evaluator.evaluate_checkpoints(str(tmp_path), SAMPLE, run_once=False, timeout_secs=1)
    with pytest.raises(utils.UserInputError, match="model_flags.json not found"):
        evaluator.evaluate_checkpoint(str(tmp_path / "none"), SAMPLE)


def test_progress_says_the_time_left_only_with_an_estimate_it_has_not_passed():
    assert evaluator.describe_progress(30, 10.0, 0) == "30 videos, 3.0 videos/s"
    assert evaluator.describe_progress(30, 10.0, 25) == "30 videos, 3.0 videos/s"
    assert evaluator.describe_progress(30, 10.0, 400) == (
        "30 of about 400 videos, 3.0 videos/s, about 2 min 3 s left"
    )
    assert evaluator.estimate_video_count([str(FRAME_SAMPLE / "missing.tfrecord")]) is None
