"""Tests of training_input.py: one pipeline for the remaining epochs of a phase."""

import numpy as np
import tensorflow as tf
from conftest import FRAME_SAMPLE, tiny_config, tiny_options

from pipeline import corrupt_records
from training import training_input

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")  # 59 real videos


def test_each_epoch_reshuffles_and_draws_new_random_frames():
    """RANDOM-k: the frames of a video differ from one epoch to the next."""
    run_config = tiny_config(frame_stride=4, frame_sampling="random")
    options = tiny_options(SAMPLE, "unused", batch_size=59)  # one batch an epoch
    files = sorted(tf.io.gfile.glob(SAMPLE))
    dataset = training_input.make_training_dataset(
        run_config,
        options,
        files,
        0,
        tf.distribute.get_strategy(),
        False,
        corrupt_records.SkippedRecords(),
        0,
        2,
    )
    first, second = list(dataset)
    assert set(first["epoch"].numpy()) == {0} and set(second["epoch"].numpy()) == {1}
    ids = [batch["video_ids"].numpy() for batch in (first, second)]
    assert sorted(ids[0]) == sorted(ids[1]) and list(ids[0]) != list(ids[1])  # reshuffled
    frames = [
        batch["frame_indices"].numpy()[np.argsort(batch["video_ids"].numpy())]
        for batch in (first, second)
    ]
    assert frames[0].shape == frames[1].shape and not np.array_equal(frames[0], frames[1])


def test_epochs_start_where_a_resumed_phase_left_off():
    dataset = training_input.make_training_dataset(
        tiny_config(),
        tiny_options(SAMPLE, "unused", batch_size=30),
        sorted(tf.io.gfile.glob(SAMPLE)),
        0,
        tf.distribute.get_strategy(),
        False,
        corrupt_records.SkippedRecords(),
        3,
        5,
    )
    epochs = [int(batch["epoch"][0]) for batch in dataset]
    assert epochs == [3, 3, 4, 4]  # 59 videos in batches of 30, epochs 4 and 5 of 5
