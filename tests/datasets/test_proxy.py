"""The real-label proxy (proxy_data.py): real ids, labels and mean features, synthesized frames."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from conftest import SHARED_DATA, VIDEO_SAMPLE

import proxy_data
import readers
import utils
from datasets import proxy

TRAIN_REAL = SHARED_DATA / "yt8m_2018_video_train_real"
VALIDATE_PATTERN = str(VIDEO_SAMPLE / "*.tfrecord")
TRAIN_PATTERN = str(TRAIN_REAL / "*.tfrecord")
NUM_VIDEOS = 12
# Each dequantized value is within half a step of its float value and the float frames average
# to the real mean exactly, so their mean is within half a step; 1e-5 covers float32 round-off.
MEAN_BOUND = 2.0 / 255.0 + 1e-5


def read_real_records(pattern):
    """[(id, labels list, mean [1152] float32)] of video-level records, files in sorted order."""
    videos = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            mean = np.concatenate(
                [feature["mean_rgb"].float_list.value, feature["mean_audio"].float_list.value]
            ).astype(np.float32)
            videos.append(
                (
                    feature["id"].bytes_list.value[0].decode(),
                    list(feature["labels"].int64_list.value),
                    mean,
                )
            )
    return videos


def read_proxy_records(directory):
    """[(id, labels list, rgb uint8 [T, 1024], audio uint8 [T, 128])] in shard order."""
    videos = []
    for path in sorted(pathlib.Path(directory).glob("*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            example = tf.train.SequenceExample.FromString(record)
            frames = {
                name: np.array(
                    [
                        np.frombuffer(frame.bytes_list.value[0], np.uint8)
                        for frame in example.feature_lists.feature_list[name].feature
                    ]
                )
                for name in ("rgb", "audio")
            }
            videos.append(
                (
                    example.context.feature["id"].bytes_list.value[0].decode(),
                    list(example.context.feature["labels"].int64_list.value),
                    frames["rgb"],
                    frames["audio"],
                )
            )
    return videos


def shard_bytes(directory):
    return {
        path.name: path.read_bytes() for path in sorted(pathlib.Path(directory).glob("*.tfrecord"))
    }


@pytest.fixture(scope="module")
def statistics():
    return proxy.compute_train_statistics(TRAIN_PATTERN)


@pytest.fixture(scope="module")
def real_validate():
    return read_real_records(VALIDATE_PATTERN)


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory, statistics):
    directory = tmp_path_factory.mktemp("proxy") / "validate"
    written = proxy.write_proxy_dataset(
        str(directory),
        "validate",
        input_pattern=VALIDATE_PATTERN,
        num_shards=2,
        max_videos=NUM_VIDEOS,
        seed=3,
        statistics=statistics,
    )
    assert written.num_videos == NUM_VIDEOS
    assert [pathlib.Path(path).name for path in written.paths] == [
        "validate-00000-of-00002.tfrecord",
        "validate-00001-of-00002.tfrecord",
    ]
    return directory


@pytest.fixture(scope="module")
def proxy_videos(proxy_dir):
    return read_proxy_records(proxy_dir)


def test_train_statistics_match_the_real_training_means(statistics):
    real_train = read_real_records(TRAIN_PATTERN)
    means = np.array([mean for _, _, mean in real_train], np.float64)
    assert statistics.num_videos == len(real_train) == 5900
    np.testing.assert_allclose(statistics.feature_std, means.std(axis=0), rtol=1e-6, atol=1e-9)
    counts = np.bincount(
        np.concatenate([np.unique(labels) for _, labels, _ in real_train]),
        minlength=proxy.NUM_CLASSES,
    )
    np.testing.assert_array_equal(statistics.class_counts, counts)


def test_ids_and_labels_are_the_real_ones(proxy_videos, real_validate):
    assert [(video_id, labels) for video_id, labels, _, _ in proxy_videos] == [
        (video_id, labels) for video_id, labels, _ in real_validate[:NUM_VIDEOS]
    ]


def test_frame_means_give_back_the_real_means(proxy_videos, real_validate):
    errors = []
    for (_, _, rgb, audio), (_, _, real_mean) in zip(proxy_videos, real_validate, strict=False):
        frames = tf.concat([utils.dequantize(rgb), utils.dequantize(audio)], axis=1).numpy()
        errors.append(np.abs(frames.astype(np.float64).mean(axis=0) - real_mean))
    errors = np.array(errors)
    assert errors.max() <= MEAN_BOUND
    # The frames' variation dithers the rounding: the typical error is ~ step / sqrt(12 T).
    assert errors.mean() < MEAN_BOUND / 8


def test_frames_vary_within_the_frame_count_range(proxy_videos):
    for _, _, rgb, audio in proxy_videos:
        assert 60 <= len(rgb) <= 300
        assert rgb.shape[1:] == (1024,) and audio.shape == (len(rgb), 128)
        # Not a constant video: shots and per-frame noise around the mean.
        assert np.median(rgb.astype(np.float64).std(axis=0)) > 10


def test_the_frame_reader_reads_the_proxy(proxy_dir, proxy_videos):
    reader = readers.YT8MFrameFeatureReader(num_classes=3862)
    dataset, files = reader.make_dataset(str(proxy_dir / "*.tfrecord"), batch_size=5)
    assert len(files) == 2
    seen = {}
    for batch in dataset:
        for video_id, num_frames, labels in zip(
            batch["video_ids"].numpy(),
            batch["num_frames"].numpy(),
            batch["labels"].numpy(),
            strict=True,
        ):
            seen[video_id.decode()] = (int(num_frames), np.flatnonzero(labels).tolist())
    assert seen == {
        video_id: (len(rgb), sorted(set(labels))) for video_id, labels, rgb, _ in proxy_videos
    }


def test_same_seed_same_bytes_other_seed_other_frames(tmp_path, proxy_dir, statistics):
    arguments = dict(input_pattern=VALIDATE_PATTERN, max_videos=NUM_VIDEOS, statistics=statistics)
    proxy.write_proxy_dataset(str(tmp_path / "same"), "validate", num_shards=2, seed=3, **arguments)
    assert shard_bytes(tmp_path / "same") == shard_bytes(proxy_dir)

    proxy.write_proxy_dataset(
        str(tmp_path / "other"), "validate", num_shards=2, seed=4, **arguments
    )
    first = read_proxy_records(proxy_dir)
    second = read_proxy_records(tmp_path / "other")
    assert [video[:2] for video in first] == [video[:2] for video in second]
    for (_, _, rgb, _), (_, _, other_rgb, _) in zip(first, second, strict=True):
        assert rgb.shape != other_rgb.shape or not np.array_equal(rgb, other_rgb)

    # A video's frames do not depend on the sharding.
    proxy.write_proxy_dataset(str(tmp_path / "one"), "validate", num_shards=1, seed=3, **arguments)
    for (_, _, rgb, audio), (_, _, one_rgb, one_audio) in zip(
        first, read_proxy_records(tmp_path / "one"), strict=True
    ):
        np.testing.assert_array_equal(rgb, one_rgb)
        np.testing.assert_array_equal(audio, one_audio)


def test_top_classes_keeps_only_videos_of_those_classes(tmp_path, statistics, real_validate):
    counts = statistics.class_counts
    top = proxy.top_class_ids(counts, 5)
    # The five most frequent training classes: no other class is more frequent than any of them.
    assert len(top) == 5 and counts[top].min() >= np.delete(counts, top).max()
    proxy.write_proxy_dataset(
        str(tmp_path),
        "validate",
        input_pattern=VALIDATE_PATTERN,
        num_shards=1,
        max_videos=8,
        top_classes=5,
        seed=3,
        statistics=statistics,
    )
    expected = [
        (video_id, [label for label in labels if label in top])
        for video_id, labels, _ in real_validate
        if set(labels) & set(top.tolist())
    ][:8]
    assert [video[:2] for video in read_proxy_records(tmp_path)] == expected
    assert len(expected) == 8


def test_top_class_ties_go_to_the_lower_class_id():
    counts = np.array([3, 5, 5, 0, 7])
    np.testing.assert_array_equal(proxy.top_class_ids(counts, 2), [1, 4])
    with pytest.raises(utils.UserInputError, match="--top_classes must be in \\[1, 4\\]"):
        proxy.top_class_ids(counts, 5)


def write_video_level_records(path, videos):
    """A video-level TFRecord file of (id, labels, mean_rgb, mean_audio)."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for video_id, labels, mean_rgb, mean_audio in videos:
            example = tf.train.Example()
            feature = example.features.feature
            feature["id"].bytes_list.value.append(video_id.encode())
            feature["labels"].int64_list.value.extend(labels)
            feature["mean_rgb"].float_list.value.extend(mean_rgb)
            feature["mean_audio"].float_list.value.extend(mean_audio)
            writer.write(example.SerializeToString())


def test_means_at_the_edge_of_the_range_are_kept_without_clipping(tmp_path, statistics):
    rng = np.random.default_rng(0)
    highest, lowest = proxy.HIGHEST_VALUE, proxy.LOWEST_VALUE
    edge_rgb = rng.uniform(-1, 1, 1024).astype(np.float32)
    edge_rgb[:100] = highest  # every real frame 255
    edge_rgb[100:200] = lowest  # every real frame 0
    edge_rgb[200:300] = np.float32(highest - 0.01)
    edge_rgb[300:400] = np.float32(lowest + 0.03)  # two steps above level 0
    edge_rgb[400:410] = np.float32(lowest + 0.003)  # within half a step of level 0
    videos = [
        ("edge", [1, 2], edge_rgb, np.full(128, np.float32(1.99))),
        ("mid", [3], np.zeros(1024, np.float32), rng.uniform(-2, 2, 128).astype(np.float32)),
    ]
    write_video_level_records(tmp_path / "input.tfrecord", videos)
    proxy.write_proxy_dataset(
        str(tmp_path / "out"),
        "validate",
        input_pattern=str(tmp_path / "input.tfrecord"),
        num_shards=1,
        shot_noise=3.0,
        frame_noise=3.0,
        statistics=statistics,
    )
    written = read_proxy_records(tmp_path / "out")
    for (_, _, mean_rgb, mean_audio), (_, _, rgb, audio) in zip(videos, written, strict=True):
        frame_mean = (
            np.concatenate(
                [
                    proxy.synthetic.dequantize(rgb),
                    proxy.synthetic.dequantize(audio),
                ],
                axis=1,
            )
            .astype(np.float64)
            .mean(axis=0)
        )
        assert np.abs(frame_mean - np.concatenate([mean_rgb, mean_audio])).max() <= MEAN_BOUND
    edge_frames = written[0][2]
    assert (edge_frames[:, :100] == 255).all() and (edge_frames[:, 100:200] == 0).all()
    # The near-edge dimensions still vary, shrunk to stay in range; one 0.003 above level 0 may
    # go no lower than level 0's value, so its small variation mostly rounds to level 0.
    assert (edge_frames[:, 200:400].std(axis=0) > 0).all()
    assert edge_frames[:, 400:410].max() <= 1 and (edge_frames[:, 400:410] == 0).mean() > 0.9


def test_bad_input_pattern_names_the_flag(tmp_path, statistics):
    with pytest.raises(utils.UserInputError, match="--validate_data_pattern: no files match"):
        proxy.write_proxy_dataset(
            str(tmp_path),
            "validate",
            input_pattern=str(tmp_path / "missing" / "*.tfrecord"),
            statistics=statistics,
        )


def test_wrong_feature_size_names_the_file_and_feature(tmp_path, statistics):
    path = tmp_path / "small.tfrecord"
    write_video_level_records(path, [("abcd", [1], np.zeros(100), np.zeros(128))])
    with pytest.raises(utils.UserInputError) as error:
        proxy.write_proxy_dataset(
            str(tmp_path / "out"), "validate", input_pattern=str(path), statistics=statistics
        )
    message = str(error.value)
    assert "--validate_data_pattern" in message and str(path) in message
    assert "'mean_rgb' has 100 floats, expected 1024" in message and "'abcd'" in message


@pytest.mark.parametrize(
    "arguments, flag",
    [
        ({"shot_noise": -1.0}, "--shot_noise"),
        ({"min_frames": 0}, "--min_frames"),
        ({"min_frames": 50, "max_frames": 40}, "--max_frames"),
        ({"mean_shot_length": 0.5}, "--mean_shot_length"),
        ({"num_shards": 13, "max_videos": 12}, "--num_shards"),
        ({"max_videos": 0}, "--max_videos"),
        ({"top_classes": 4000}, "--top_classes"),
    ],
)
def test_bad_values_name_the_flag(tmp_path, statistics, arguments, flag):
    with pytest.raises(utils.UserInputError, match=flag):
        proxy.write_proxy_dataset(
            str(tmp_path),
            "validate",
            input_pattern=VALIDATE_PATTERN,
            statistics=statistics,
            **arguments,
        )
    assert not list(tmp_path.iterdir())


def test_command_line_reports_a_bad_pattern_in_one_line(tmp_path, capsys):
    flag_values = flags.FlagValues()
    proxy_data.define_flags(flag_values)
    flag_values(
        [
            "proxy_data.py",
            f"--output_dir={tmp_path}",
            f"--train_data_pattern={tmp_path}/nothing*.tfrecord",
        ]
    )
    with pytest.raises(SystemExit) as exit_request:
        proxy_data.main(["proxy_data.py"], flag_values)
    assert exit_request.value.code == 1
    error_output = capsys.readouterr().err.strip()
    assert error_output.startswith("ERROR: --train_data_pattern: no files match")
    assert "\n" not in error_output


def test_command_line_writes_each_split_in_its_folder(tmp_path, capsys):
    train_input = tmp_path / "train_input.tfrecord"
    rng = np.random.default_rng(1)
    write_video_level_records(
        train_input,
        [
            (f"v{index:03d}", [index % 3], rng.uniform(-1, 1, 1024), rng.uniform(-1, 1, 128))
            for index in range(6)
        ],
    )
    flag_values = flags.FlagValues()
    proxy_data.define_flags(flag_values)
    flag_values(
        [
            "proxy_data.py",
            f"--output_dir={tmp_path / 'proxy'}",
            f"--train_data_pattern={train_input}",
            f"--validate_data_pattern={VALIDATE_PATTERN}",
            "--max_videos=3",
            "--num_shards=1",
            "--max_frames=80",
        ]
    )
    assert proxy_data.main(["proxy_data.py"], flag_values) == 0
    assert [video[0] for video in read_proxy_records(tmp_path / "proxy" / "train")] == [
        "v000",
        "v001",
        "v002",
    ]
    assert len(read_proxy_records(tmp_path / "proxy" / "validate")) == 3
    printed = capsys.readouterr().out
    assert "--num_classes=3862" in printed
    assert "Wrote the train split: 3 videos in 1 shards" in printed
    assert "Wrote the validate split: 3 videos in 1 shards" in printed
