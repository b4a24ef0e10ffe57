"""Tests of frame_selection.py: which frames of each video a model sees (1 in j, or k of each
video, by each sampling), directly and as the reader carries the choice out on the real
YouTube-8M sample and on hand-made records."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, random_frames, sequence_example, tiny_config, write_records

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


def selected_rows(num_frames, frame_sampling, frame_stride=1, frames_per_video=0, **options):
    """(each video's selected indices as a list, the padded width T') for videos of
    `num_frames` frames, checking that every row is 0 past its count."""
    indices, counts = frame_selection.select_frame_indices(
        tf.constant(num_frames),
        tf.constant(max(num_frames)),
        frame_stride,
        frame_sampling,
        tf.constant([f"video{row}" for row in range(len(num_frames))]),
        frames_per_video=frames_per_video,
        **options,
    )
    rows = []
    for row, count in zip(indices.numpy(), counts.numpy(), strict=True):
        if frame_sampling != "uniform" or frames_per_video:  # a stride's rows are not masked
            assert not row[count:].any()
        rows.append(row[:count].tolist())
    return rows, indices.shape[1]


@pytest.mark.parametrize(
    "frame_sampling, expected",
    [
        # k = 6 of videos of 0, 4, 30 and 31 frames; a video shorter than k gives all its frames.
        ("uniform", [[], [0, 1, 2, 3], [0, 5, 10, 15, 20, 25], [0, 5, 10, 15, 20, 25]]),
        ("first", [[], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]),
        ("middle", [[], [0, 1, 2, 3], [12, 13, 14, 15, 16, 17], [12, 13, 14, 15, 16, 17]]),
        ("last", [[], [0, 1, 2, 3], [24, 25, 26, 27, 28, 29], [25, 26, 27, 28, 29, 30]]),
        (
            "first_middle_last",
            [[], [0, 1, 2, 3], [0, 1, 14, 15, 28, 29], [0, 1, 14, 15, 29, 30]],
        ),
    ],
)
def test_a_count_of_frames_selects_k_frames_whatever_the_length(frame_sampling, expected):
    rows, width = selected_rows([0, 4, 30, 31], frame_sampling, frames_per_video=6)
    assert rows == expected and width == 6  # T' = min(k, T)
    _, short_width = selected_rows([2, 4], frame_sampling, frames_per_video=6)
    assert short_width == 4


@pytest.mark.parametrize(
    "frame_sampling, expected",
    [
        # j = 10: ceil(N / 10) frames of videos of 0, 5, 30 and 31 frames.
        ("first", [[], [0], [0, 1, 2], [0, 1, 2, 3]]),
        ("middle", [[], [2], [13, 14, 15], [13, 14, 15, 16]]),
        ("last", [[], [4], [27, 28, 29], [27, 28, 29, 30]]),
        # 4 = 1 + 2 + 1: the middle takes the one left over; 3 = 1 + 1 + 1.
        ("first_middle_last", [[], [2], [0, 14, 29], [0, 14, 15, 30]]),
    ],
)
def test_with_a_stride_a_place_in_the_video_takes_one_frame_in_j(frame_sampling, expected):
    rows, width = selected_rows([0, 5, 30, 31], frame_sampling, frame_stride=10)
    assert rows == expected and width == 4  # T' = ceil(T / j)


def test_first_middle_last_spreads_what_is_left_over_symmetrically():
    sizes = frame_selection.first_middle_last_sizes(tf.constant([0, 1, 2, 3, 4, 5, 6, 7]))
    assert [size.numpy().tolist() for size in sizes] == [
        [0, 0, 1, 1, 1, 2, 2, 2],  # start (and as many at the end)
        [0, 1, 0, 1, 2, 1, 2, 3],  # middle
    ]


@pytest.mark.parametrize("frame_sampling", frame_selection.FRAME_SAMPLINGS)
def test_every_selection_keeps_time_order_and_counts_by_stride_or_count(frame_sampling):
    num_frames = list(range(0, 45))
    for frame_stride, frames_per_video in ((1, 0), (3, 0), (10, 0), (1, 1), (1, 6), (1, 10)):
        rows, width = selected_rows(
            num_frames, frame_sampling, frame_stride, frames_per_video, sampling_seed=2
        )
        for length, row in zip(num_frames, rows, strict=True):
            count = (
                min(frames_per_video, length) if frames_per_video else -(-length // frame_stride)
            )
            assert len(row) == count
            assert all(0 <= index < length for index in row)
            assert row == sorted(set(row))  # in time order, none twice
            if count == length:
                assert row == list(range(length))
            if frame_sampling in ("first", "middle", "last"):
                assert row == list(range(row[0], row[0] + count)) if count else row == []
        assert width == (min(frames_per_video, 44) if frames_per_video else -(-44 // frame_stride))


def test_a_count_of_k_strides_reads_the_strides_frames():
    strided, _ = selected_rows([60, 57], "uniform", frame_stride=6)
    counted, _ = selected_rows([60, 57], "uniform", frames_per_video=10)
    assert counted[0] == strided[0] == list(range(0, 60, 6))
    assert counted[1] == [i * 57 // 10 for i in range(10)]  # floor(i * N / k)


def test_a_random_phase_shifts_a_count_within_its_spacing():
    num_frames = [0, 4, 30, 300]
    first_frames = set()
    for _ in range(20):
        rows, _ = selected_rows(num_frames, "uniform", frames_per_video=10, random_offset=True)
        assert rows[:2] == [[], [0, 1, 2, 3]]  # no more frames than k: all of them
        for length, row in zip(num_frames[2:], rows[2:], strict=True):
            # floor((i * N + m) / k) for one m in [0, N): a phase in [0, N / k).
            assert any(row == [(i * length + m) // 10 for i in range(10)] for m in range(length))
        first_frames.add(rows[3][0])
    assert first_frames <= set(range(30)) and len(first_frames) > 3
    seeded = [
        selected_rows(
            num_frames, "uniform", frames_per_video=10, random_offset=True, sampling_seed=4
        )[0]
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_seeded_random_frames_at_a_count_depend_on_the_video_and_seed_only():
    def select(video_ids, num_frames, seed=5):
        indices, counts = frame_selection.select_frame_indices(
            tf.constant(num_frames),
            tf.constant(max(num_frames)),
            1,
            "random",
            tf.constant(video_ids),
            sampling_seed=seed,
            frames_per_video=6,
        )
        return indices.numpy(), counts.numpy()

    alone, _ = select(["vid1"], [20])
    together, counts = select(["other", "vid1"], [40, 20])
    np.testing.assert_array_equal(together[1], alone[0])
    assert counts.tolist() == [6, 6]
    assert not np.array_equal(select(["vid1"], [20], seed=6)[0], alone)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((1, "uniform", -1), "--frames_per_video must be >= 0"),
        ((10, "first", 6), "--frames_per_video=6 and --frame_stride=10"),
        ((1, "uniform", 50, 40), "--frames_per_video=50 is larger than --max_frames=40"),
    ],
)
def test_a_count_is_checked_naming_its_flag(arguments, message):
    with pytest.raises(utils.UserInputError, match=message):
        frame_selection.check_frame_selection(*arguments)


def test_a_random_offset_shifts_uniform_spacing_only():
    frame_selection.check_random_frame_offset(True, 1, "uniform", 6, 40)
    for frame_sampling in ("first", "middle", "last", "first_middle_last"):
        with pytest.raises(
            utils.UserInputError,
            match=f"--random_frame_offset .*--frame_sampling={frame_sampling} reads .*no phase",
        ):
            frame_selection.check_random_frame_offset(True, 10, frame_sampling)
    with pytest.raises(utils.UserInputError, match="--frames_per_video below --max_frames=40"):
        frame_selection.check_random_frame_offset(True, 1, "uniform", 40, 40)


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


@pytest.fixture(scope="module")
def short_and_long_videos(tmp_path_factory):
    """Records of videos of 2, 9 and 40 random frames: (pattern, {video id: [N, D] uint8})."""
    rng = np.random.default_rng(11)
    records, frames_by_video = [], {}
    for video_id, num_frames in (("two", 2), ("nine", 9), ("forty", 40)):
        frames = random_frames(rng, num_frames)
        records.append(sequence_example(video_id, [1], frames))
        frames_by_video[video_id.encode()] = np.concatenate(
            [
                np.frombuffer(b"".join(frames[name]), np.uint8).reshape(num_frames, -1)
                for name in ("rgb", "audio")
            ],
            axis=1,
        )
    path = tmp_path_factory.mktemp("videos") / "videos.tfrecord"
    return write_records(path, records), frames_by_video


# k = 6 frames of the videos of 9 and 40 frames; the 2-frame one gives both of its frames.
K_FRAMES_OF_NINE_AND_FORTY = {
    "uniform": ([0, 1, 3, 4, 6, 7], [0, 6, 13, 20, 26, 33]),
    "first": ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]),
    "last": ([3, 4, 5, 6, 7, 8], [34, 35, 36, 37, 38, 39]),
    "first_middle_last": ([0, 1, 3, 4, 7, 8], [0, 1, 19, 20, 38, 39]),
}


@pytest.mark.parametrize(
    "frame_sampling, slice_records",
    [
        ("first", True),
        ("last", True),
        ("first_middle_last", True),
        ("first_middle_last", False),
        ("uniform", False),
    ],
)
def test_a_model_reading_k_frames_decodes_the_frames_its_sampling_places(
    short_and_long_videos, frame_sampling, slice_records
):
    """Cut out of the records (slicing) or gathered after the parser, the same frames."""
    pattern, frames_by_video = short_and_long_videos
    nine, forty = K_FRAMES_OF_NINE_AND_FORTY[frame_sampling]
    config = tiny_config(num_classes=10, frames_per_video=6, frame_sampling=frame_sampling)
    reader = readers.reader_for(config, slice_records=slice_records)
    assert (reader.frames_per_video, reader.frame_sampling) == (6, frame_sampling)
    batch = read_all(reader, pattern)[0]
    assert batch["video_matrix"].shape[1] == 6  # min(k, T)
    for row, video_id in enumerate(batch["video_ids"].numpy()):
        count = int(batch["num_frames"][row])
        indices = batch["frame_indices"][row, :count].numpy().tolist()
        assert indices == {b"two": [0, 1], b"nine": nine, b"forty": forty}[video_id]
        np.testing.assert_array_equal(
            batch["video_matrix"][row, :count], frames_by_video[video_id][indices]
        )
        assert not batch["video_matrix"][row, count:].numpy().any()
        assert not batch["frame_indices"][row, count:].numpy().any()
