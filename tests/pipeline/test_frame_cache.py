"""frame_cache.py and prepare_frames.py: a cache holds exactly the frames a student reads, the
readers read it as the full records, and models that cannot read it refuse it by name."""

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
    tiny_config,
    tiny_options,
    write_records,
)

import readers
import utils
from pipeline import frame_cache
from serving import predictor
from training import tasks, trainer

FULL_PATTERN = str(FRAME_SAMPLE / "*.tfrecord")


@pytest.fixture(scope="module")
def stride10_cache(tmp_path_factory):
    """The real frame-level samples cached for --frame_stride=10: (pattern, paths)."""
    output_dir = tmp_path_factory.mktemp("stride10")
    paths, skipped, written = frame_cache.write_frame_cache(FULL_PATTERN, str(output_dir), 10)
    assert skipped.count == 0 and written == 59
    return str(output_dir / "*.tfrecord"), paths


def read_videos(pattern, config, batch_size=16, **options):
    """{video id: (num_frames, frames [n, D], frame_indices [n])} as the model's reader gives."""
    reader = readers.reader_for(config, check_labels=False, **options)
    dataset, _ = reader.make_dataset(pattern, batch_size)
    videos = {}
    for batch in dataset:
        for video_id, count, matrix, indices in zip(
            batch["video_ids"].numpy(),
            batch["num_frames"].numpy(),
            batch["video_matrix"].numpy(),
            batch["frame_indices"].numpy(),
            strict=True,
        ):
            videos[video_id] = (count, matrix[:count], indices[:count])
    return videos


def test_a_cache_keeps_every_jth_frame_and_records_stride_and_length(stride10_cache):
    _, paths = stride10_cache
    full = {}
    for record in tf.data.TFRecordDataset(sorted(FRAME_SAMPLE.glob("*.tfrecord"))):
        example = tf.train.SequenceExample.FromString(record.numpy())
        full[example.context.feature["id"].bytes_list.value[0]] = example
    assert [path.rsplit("/", 1)[1] for path in paths] == sorted(
        path.name for path in FRAME_SAMPLE.glob("*.tfrecord")
    )
    cached = [
        tf.train.SequenceExample.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(paths)
    ]
    assert len(cached) == len(full)
    for example in cached:
        original = full[example.context.feature["id"].bytes_list.value[0]]
        context = example.context.feature
        num_frames = len(original.feature_lists.feature_list["rgb"].feature)
        assert context[frame_cache.CACHE_STRIDE_KEY].int64_list.value == [10]
        assert context[frame_cache.ORIGINAL_FRAMES_KEY].int64_list.value == [num_frames]
        assert context["labels"] == original.context.feature["labels"]
        for name in ("rgb", "audio"):
            frames = example.feature_lists.feature_list[name].feature
            original_frames = original.feature_lists.feature_list[name].feature
            assert list(frames) == list(original_frames)[::10]


@pytest.mark.parametrize("slice_records", [True, False])
@pytest.mark.parametrize("max_frames", [300, 37])
def test_a_student_reads_the_same_frames_from_the_cache_as_from_the_full_records(
    stride10_cache, slice_records, max_frames
):
    pattern, _ = stride10_cache
    config = tiny_config(frame_stride=10, max_frames=max_frames)
    full = read_videos(FULL_PATTERN, config, slice_records=slice_records)
    cached = read_videos(pattern, config, slice_records=slice_records)
    assert full.keys() == cached.keys() and len(full) == 59
    for video_id, (count, matrix, indices) in full.items():
        cached_count, cached_matrix, cached_indices = cached[video_id]
        assert cached_count == count
        np.testing.assert_array_equal(cached_matrix, matrix)
        np.testing.assert_array_equal(cached_indices, indices)


def test_a_batch_mixing_full_and_cached_records_reads_both_right(stride10_cache, tmp_path):
    _, paths = stride10_cache
    config = tiny_config(frame_stride=10, max_frames=300)
    mixed = ",".join([str(FRAME_SAMPLE / "clippedtrain0093.tfrecord"), paths[1], paths[2]])
    full = ",".join(
        str(FRAME_SAMPLE / name)
        for name in ("clippedtrain0093.tfrecord", *(path.rsplit("/", 1)[1] for path in paths[1:3]))
    )
    for slice_records in (True, False):
        expected = read_videos(full, config, batch_size=64, slice_records=slice_records)
        got = read_videos(mixed, config, batch_size=64, slice_records=slice_records)
        assert expected.keys() == got.keys()
        for video_id, (count, matrix, _) in expected.items():
            assert got[video_id][0] == count
            np.testing.assert_array_equal(got[video_id][1], matrix)


def test_the_same_student_checkpoint_predicts_the_same_from_the_cache(stride10_cache, tmp_path):
    pattern, _ = stride10_cache
    train_dir = tmp_path / "uniform10"
    config = tiny_config(frame_stride=10, max_frames=300)
    trainer.train(
        tasks.SupervisedTask(config),
        tiny_options(FULL_PATTERN, train_dir, batch_size=16, max_steps=2),
    )

    def predictions(input_pattern):
        rows = {}
        for video_ids, indexes, scores in predictor.iterate_predictions(
            input_pattern, 16, 20, train_dir=str(train_dir)
        ):
            for video_id, index_row, score_row in zip(video_ids, indexes, scores, strict=True):
                rows[video_id] = (index_row, score_row)
        return rows

    full, cached = predictions(FULL_PATTERN), predictions(pattern)
    assert full.keys() == cached.keys() and len(full) == 59
    for video_id, (indexes, scores) in full.items():
        np.testing.assert_allclose(cached[video_id][1], scores, rtol=0, atol=1e-6)
        # Equal scores may swap places; the classes with distinct scores may not.
        assert set(cached[video_id][0]) == set(indexes) or np.ptp(scores) < 1e-6


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"frame_stride": 1}, "reads every frame"),
        ({"frame_stride": 5}, "reads --frame_stride=5"),
        ({"frame_stride": 10, "frame_sampling": "random"}, "--frame_sampling=random"),
        ({"frame_stride": 10, "frame_sampling": "last"}, "--frame_sampling=last reads the last"),
        ({"frames_per_video": 30}, "--frames_per_video=30 (--frame_sampling=uniform) reads 30"),
    ],
)
def test_a_model_that_cannot_read_the_cache_refuses_it_naming_the_file_and_strides(
    stride10_cache, overrides, expected
):
    pattern, _ = stride10_cache
    reader = readers.reader_for(tiny_config(**overrides))
    with pytest.raises(utils.UserInputError) as error:
        reader.make_dataset(pattern, 8, flag_name="--eval_data_pattern")
    message = str(error.value)
    assert "--eval_data_pattern" in message and "clippedtrain0093.tfrecord" in message
    assert "written for --frame_stride=10" in message and expected in message


def test_training_from_random_offsets_refuses_the_cache_and_its_evaluation_reads_it(
    stride10_cache,
):
    pattern, _ = stride10_cache
    config = tiny_config(frame_stride=10, random_frame_offset=True)
    with pytest.raises(utils.UserInputError, match="--random_frame_offset .*trains on other"):
        readers.reader_for(config, training=True).make_dataset(pattern, 8)
    dataset, _ = readers.reader_for(config).make_dataset(pattern, 64)
    assert sum(int(tf.shape(batch["video_ids"])[0]) for batch in dataset) > 0


def test_a_teacher_distilled_from_every_frame_refuses_the_cache(stride10_cache):
    pattern, _ = stride10_cache
    reader = readers.reader_for(tiny_config(frame_stride=10), keep_all_frames=True)
    with pytest.raises(utils.UserInputError, match="every frame"):
        reader.make_dataset(pattern, 8)


@pytest.mark.parametrize("slice_records", [True, False])
def test_a_cached_record_of_another_stride_behind_a_full_first_file_fails_naming_the_video(
    stride10_cache, slice_records, tmp_path
):
    _, paths = stride10_cache
    import shutil

    from pipeline import corrupt_records

    # The first file is full, so only the reader's per-record check sees the cache.
    shutil.copy(FRAME_SAMPLE / "clippedtrain0093.tfrecord", tmp_path / "a-full.tfrecord")
    shutil.copy(paths[1], tmp_path / "b-cached.tfrecord")
    pattern = str(tmp_path / "*.tfrecord")
    reader = readers.reader_for(
        tiny_config(frame_stride=5), corrupt_record_policy="skip", slice_records=slice_records
    )
    dataset, files = reader.make_dataset(pattern, 64)
    with pytest.raises(utils.UserInputError) as error:
        list(corrupt_records.iterate_batches(dataset, files))
    message = str(error.value)
    assert "frame cache written for --frame_stride=" in message and "10" in message
    assert "--frame_stride=5" in message


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"frame_stride": 10, "frame_sampling": "first_middle_last"}, "--frame_stride=10"),
        ({"frames_per_video": 6, "frame_sampling": "first"}, "--frames_per_video=6"),
    ],
)
def test_a_cached_record_behind_a_full_first_file_fails_a_selection_it_does_not_hold(
    stride10_cache, overrides, expected, tmp_path
):
    """The cache's own stride, but frames at other places or a count: every record refused."""
    _, paths = stride10_cache
    import shutil

    from pipeline import corrupt_records

    shutil.copy(FRAME_SAMPLE / "clippedtrain0093.tfrecord", tmp_path / "a-full.tfrecord")
    shutil.copy(paths[1], tmp_path / "b-cached.tfrecord")
    reader = readers.reader_for(tiny_config(**overrides))
    dataset, files = reader.make_dataset(str(tmp_path / "*.tfrecord"), 64)
    with pytest.raises(utils.UserInputError) as error:
        list(corrupt_records.iterate_batches(dataset, files))
    message = str(error.value)
    assert "frame cache written for --frame_stride=" in message and expected in message
    assert f"--frame_sampling={overrides['frame_sampling']}" in message


def test_prepare_frames_skips_records_it_cannot_cache_and_fails_naming_them(tmp_path):
    rng = np.random.default_rng(0)
    good = sequence_example("good", [1], random_frames(rng, 12))
    no_audio = sequence_example("no-audio", [2], {"rgb": random_frames(rng, 3)["rgb"]})
    source = write_records(tmp_path / "mixed.tfrecord", [good, b"not a protobuf", no_audio])
    with pytest.raises(utils.UserInputError, match="in .*mixed.tfrecord: not a tf.train"):
        frame_cache.write_frame_cache(source, str(tmp_path / "failed"), 4)
    assert not list((tmp_path / "failed").glob("*.tfrecord"))
    paths, skipped, written = frame_cache.write_frame_cache(
        source, str(tmp_path / "cache"), 4, num_shards=2, corrupt_record_policy="skip"
    )
    assert written == 1 and skipped.count == 2
    assert [path.rsplit("/", 1)[1] for path in paths] == [
        "frames-stride4-00000-of-00002.tfrecord",
        "frames-stride4-00001-of-00002.tfrecord",
    ]
    videos = read_videos(str(tmp_path / "cache" / "*.tfrecord"), tiny_config(frame_stride=4))
    assert list(videos) == [b"good"] and videos[b"good"][0] == 3
    with pytest.raises(utils.UserInputError, match="already a frame cache"):
        frame_cache.write_frame_cache(paths[0], str(tmp_path / "twice"), 4)


def test_prepare_frames_command_line(tmp_path):
    script = str(REPO_ROOT / "prepare_frames.py")
    source = str(FRAME_SAMPLE / "clippedtrain0093.tfrecord")
    done = subprocess.run(
        [
            sys.executable,
            script,
            f"--input_data_pattern={source}",
            f"--output_dir={tmp_path}",
            "--frame_stride=1",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "--frame_stride must be >= 2" in done.stderr
    done = subprocess.run(
        [
            sys.executable,
            script,
            f"--input_data_pattern={source}",
            f"--output_dir={tmp_path}",
            "--frame_stride=3",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "--frame_stride=3 frame cache of" in done.stdout
    assert (tmp_path / "clippedtrain0093.tfrecord").exists()
