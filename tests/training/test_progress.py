"""Tests of progress.py: the progress line, on an injected clock."""

import tensorflow as tf

from training import progress


def test_progress_counts_examples_per_second_of_the_clock_it_is_given(tmp_path):
    now = [100.0]
    logger = progress.ProgressLogger(
        str(tmp_path), 2, lambda: 0.5, write_summaries=False, clock=lambda: now[0]
    )
    labels = tf.constant([[True, False], [False, True]])
    predictions = tf.constant([[0.9, 0.1], [0.8, 0.2]])
    result = progress.StepResult(tf.constant(1.25), predictions, labels, tf.constant(2), {})
    now[0] = 104.0
    first = logger.record(1, result)  # step 1 is always logged
    assert "loss    1.2500" in first and "0.5 examples/s" in first
    assert "batch Hit@1 0.5000" in first
    now[0] = 105.0
    assert logger.record(3, result) is None  # every 2 steps only
    now[0] = 106.0
    assert "2.0 examples/s" in logger.record(4, result)  # 4 videos in 2 s
