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


def test_an_epoch_of_a_few_steps_is_warned_about_once_with_its_numbers_and_the_flag():
    length = progress.EpochLength()
    length.start("train", 0)
    for videos in (32, 12):
        assert length.step(0, videos, 32) is None
    warning = length.step(1, 32, 32)  # the next epoch's first step ends the count
    assert warning.startswith("An epoch of phase train is only 2 step(s): 44 videos at ")
    assert "--batch_size=32" in warning and "--batch_size=4 gives 11 steps an epoch" in warning
    # Once: neither a later phase nor the end of the data warns again.
    length.start("finetune", 0)
    assert length.step(0, 32, 32) is None and length.end(32) is None
    # An epoch of 10 steps is not short; a phase stopped before its epoch ended says nothing.
    long_enough = progress.EpochLength()
    long_enough.start("train", 3)
    for _ in range(progress.SHORT_EPOCH_STEPS):
        long_enough.step(3, 4, 4)
    assert long_enough.end(4) is None
    assert "give more videos" in progress.short_epoch_warning("distill", 1, 6, 8)
