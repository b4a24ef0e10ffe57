"""Tests of frame_selection.py: which frames a model reading 1 frame in j sees, directly and
as the reader carries the choice out on the real YouTube-8M sample."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, random_frames, sequence_example, write_records

import readers
import utils
from pipeline import corrupt_records, frame_selection
from runs.config import RunConfig


def read_all(reader, pattern, batch_size=16):
    dataset, files = reader.make_dataset(pattern, batch_size)
    batches = list(corrupt_records.iterate_batches(dataset, files, reader.skipped_records))
    return batches


def test_uniform_selection_is_every_jth_frame_below_each_count():
    indices, counts = frame_selection.select_frame_indices(
        tf.constant([10, 3, 0]), tf.constant(10), 4, "uniform", tf.constant(["a", "b", "c"])
    )
    assert counts.numpy().tolist() == [3, 1, 0]
    assert indices.numpy().tolist() == [[0, 4, 8]] * 3


def test_seeded_random_selection_depends_on_the_video_not_its_batch():
    def select(video_ids, num_frames, num_input_frames):
        return frame_selection.select_frame_indices(
            tf.constant(num_frames),
            tf.constant(num_input_frames),
            3,
            "random",
            tf.constant(video_ids),
            sampling_seed=5,
        )

    alone, alone_count = select(["vid1"], [20], 20)
    together, counts = select(["other", "vid1"], [40, 20], 40)
    assert int(alone_count[0]) == int(counts[1]) == 7
    np.testing.assert_array_equal(together[1, :7], alone[0, :7])
    assert not together[1, 7:].numpy().any()
    chosen = alone[0].numpy()
    assert np.all(np.diff(chosen) > 0) and chosen[-1] < 20


def test_a_random_offset_shifts_the_uniform_frames_and_draws_anew():
    num_frames = tf.constant([0, 1, 7, 25, 30, 300])
    offsets = {count: set() for count in (7, 300)}
    for _ in range(20):
        indices, counts = frame_selection.select_frame_indices(
            num_frames, tf.constant(300), 10, "uniform", tf.constant(["v"] * 6), random_offset=True
        )
        for row, count in enumerate(num_frames.numpy()):
            selected = indices[row, : counts[row]].numpy()
            assert not indices[row, counts[row] :].numpy().any()
            if count == 0:
                assert counts[row] == 0
                continue
            offset = selected[0]
            assert 0 <= offset < min(10, count)
            np.testing.assert_array_equal(selected, np.arange(offset, count, 10))
            if count in offsets:
                offsets[count].add(int(offset))
    assert len(offsets[300]) > 3 and offsets[7] <= set(range(7)) and len(offsets[7]) > 1


def test_a_random_offset_needs_uniform_frames_at_a_stride():
    frame_selection.check_random_frame_offset(False, 1, "random")
    frame_selection.check_random_frame_offset(True, 10, "uniform")
    with pytest.raises(
        utils.UserInputError, match="--random_frame_offset.*--frame_sampling=random"
    ):
        frame_selection.check_random_frame_offset(True, 10, "random")
    with pytest.raises(
        utils.UserInputError, match="--random_frame_offset needs --frame_stride > 1"
    ):
        frame_selection.check_random_frame_offset(True, 1, "uniform")


def test_a_model_with_a_random_offset_trains_shifted_and_evaluates_from_frame_zero():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    config = RunConfig(frame_stride=10, random_frame_offset=True)
    full, _ = full_and_selected(pattern)
    training = readers.reader_for(config, training=True)
    shifted = 0
    for batch in read_all(training, pattern):
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            count = int(batch["num_frames"][row])
            indices = batch["frame_indices"][row, :count].numpy()
            num_frames = full[video_id].shape[0]
            np.testing.assert_array_equal(indices, np.arange(indices[0], num_frames, 10))
            matrix = batch["video_matrix"][row, :count].numpy()
            np.testing.assert_array_equal(matrix, full[video_id][indices])
            shifted += indices[0] > 0
    assert shifted > 40  # 59 videos, offsets 0-9
    evaluation = readers.reader_for(config, training=False)
    for batch in read_all(evaluation, pattern):
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            count = int(batch["num_frames"][row])
            indices = batch["frame_indices"][row, :count].numpy()
            np.testing.assert_array_equal(indices, np.arange(0, full[video_id].shape[0], 10))


def test_check_frame_selection_names_the_flag():
    frame_selection.check_frame_selection(1, "random")
    with pytest.raises(utils.UserInputError, match="--frame_stride must be >= 1, got 0"):
        frame_selection.check_frame_selection(0, "uniform")
    with pytest.raises(utils.UserInputError, match="--frame_sampling=sometimes: choose one of"):
        frame_selection.check_frame_selection(2, "sometimes")


def full_and_selected(pattern, **options):
    """Reads the same files with all frames and with a selecting reader, keyed by video id."""
    full = {}
    for batch in read_all(readers.YT8MFrameFeatureReader(), pattern):
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            count = int(batch["num_frames"][row])
            full[video_id] = batch["video_matrix"][row, :count].numpy()
    selected = {}
    for batch in read_all(readers.YT8MFrameFeatureReader(**options), pattern):
        for row, video_id in enumerate(batch["video_ids"].numpy()):
            count = int(batch["num_frames"][row])
            assert not batch["video_matrix"][row, count:].numpy().any()
            selected[video_id] = (
                batch["video_matrix"][row, :count].numpy(),
                batch["frame_indices"][row, :count].numpy(),
            )
    return full, selected


def test_uniform_stride_selects_every_jth_frame_of_real_videos():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    full, selected = full_and_selected(pattern, frame_stride=10)
    assert len(selected) == 59
    for video_id, (matrix, indices) in selected.items():
        num_frames = full[video_id].shape[0]
        assert matrix.shape[0] == -(-num_frames // 10)  # ceil(N / 10)
        np.testing.assert_array_equal(indices, np.arange(0, num_frames, 10))
        np.testing.assert_array_equal(matrix, full[video_id][::10])


def test_stride_longer_than_the_video_gives_its_first_frame(tmp_path):
    rng = np.random.default_rng(7)
    frames = random_frames(rng, 3)
    path = write_records(tmp_path / "a.tfrecord", [sequence_example("tiny", [1], frames)])
    for sampling in ("uniform", "random"):
        reader = readers.YT8MFrameFeatureReader(
            num_classes=10, frame_stride=20, frame_sampling=sampling, sampling_seed=1
        )
        batch = read_all(reader, path)[0]
        assert int(batch["num_frames"][0]) == 1
        if sampling == "uniform":
            expected = np.frombuffer(frames["rgb"][0], np.uint8)
            np.testing.assert_array_equal(batch["video_matrix"][0, 0, :1024], expected)


def test_random_sampling_is_ordered_and_seeded():
    pattern = str(FRAME_SAMPLE / "*.tfrecord")
    full, first = full_and_selected(
        pattern, frame_stride=4, frame_sampling="random", sampling_seed=3
    )
    _, again = full_and_selected(pattern, frame_stride=4, frame_sampling="random", sampling_seed=3)
    _, other_seed = full_and_selected(
        pattern, frame_stride=4, frame_sampling="random", sampling_seed=4
    )
    differs = 0
    for video_id, (matrix, indices) in first.items():
        num_frames = full[video_id].shape[0]
        assert len(indices) == -(-num_frames // 4)
        assert np.all(np.diff(indices) > 0) and indices[0] >= 0 and indices[-1] < num_frames
        np.testing.assert_array_equal(matrix, full[video_id][indices])
        np.testing.assert_array_equal(again[video_id][1], indices)
        differs += not np.array_equal(other_seed[video_id][1], indices)
    assert differs == len(first)
    # Not uniform: the gaps between chosen frames vary.
    assert any(len(set(np.diff(indices))) > 1 for _, indices in first.values())


def test_unseeded_random_sampling_changes_between_reads():
    pattern = str(FRAME_SAMPLE / "paddlevideo_example_SjJ3.tfrecord")
    reader = readers.YT8MFrameFeatureReader(frame_stride=10, frame_sampling="random")
    dataset, _ = reader.make_dataset(pattern, 1, num_epochs=2)
    first, second = [batch["frame_indices"].numpy() for batch in dataset]
    assert first.shape == second.shape == (1, 17)
    assert not np.array_equal(first, second)


def test_bad_selection_flags_are_rejected():
    with pytest.raises(utils.UserInputError, match="--frame_stride"):
        readers.YT8MFrameFeatureReader(frame_stride=0)
    with pytest.raises(utils.UserInputError, match="--frame_sampling"):
        readers.YT8MFrameFeatureReader(frame_sampling="sometimes")
