"""Tests of datasets/synthetic.py and its command line synthetic_data.py: format, determinism,
splits, temporal labels, validation, CLI."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from datasets import synthetic

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL_SPEC = synthetic.SyntheticDatasetSpec(feature_sizes=(64, 16), min_frames=30, max_frames=80)
HALF_STEP = 0.5 * 4.0 / 255.0


def read_shards(paths, video_id_key="id", feature_names=("rgb", "audio")):
    """Parses shards with the plain TF parser -> list of (id, labels, {name: uint8 [T, D]})."""
    context_features = {
        video_id_key: tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
    }
    sequence_features = {
        name: tf.io.FixedLenSequenceFeature([], dtype=tf.string) for name in feature_names
    }
    videos = []
    for record in tf.data.TFRecordDataset(paths):
        context, sequences = tf.io.parse_single_sequence_example(
            record, context_features=context_features, sequence_features=sequence_features
        )
        frames = {}
        for name in feature_names:
            rows = [np.frombuffer(row, dtype=np.uint8) for row in sequences[name].numpy()]
            frames[name] = rows
        videos.append(
            (
                context[video_id_key].numpy().decode(),
                tf.sparse.to_dense(context["labels"]).numpy(),
                frames,
            )
        )
    return videos


def auc(scores, positives):
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    pos, neg = scores[positives], scores[~positives]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def test_quantize_inverts_dequantize_within_half_a_step():
    values = np.linspace(-2.0, 2.0, 20001, dtype=np.float32)
    error = np.abs(synthetic.dequantize(synthetic.quantize(values)) - values)
    assert error.max() <= HALF_STEP + 1e-6
    all_codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(synthetic.quantize(synthetic.dequantize(all_codes)), all_codes)
    # Matches the dataset's formula, and out-of-range values clip.
    np.testing.assert_allclose(
        synthetic.dequantize(all_codes),
        all_codes.astype(np.float64) * 4 / 255 + 4 / 512 - 2,
        atol=1e-6,
    )
    np.testing.assert_array_equal(synthetic.quantize([-5.0, 5.0]), [0, 255])


def test_shards_round_trip_in_youtube8m_format(tmp_path):
    paths = synthetic.write_dataset(
        str(tmp_path), num_videos=10, num_shards=3, num_classes=12, seed=7
    )
    assert [os.path.basename(p) for p in paths] == [
        f"train-0000{k}-of-00003.tfrecord" for k in range(3)
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)

    videos = read_shards(paths)
    expected = list(synthetic.iter_videos(10, 12, seed=7))
    assert len(videos) == 10
    assert len({video_id for video_id, _, _ in videos}) == 10
    for (video_id, labels, frames), (expected_id, expected_video) in zip(
        videos, expected, strict=True
    ):
        assert video_id == expected_id
        assert 1 <= len(labels) <= 5
        assert np.all((labels >= 0) & (labels < 12))
        np.testing.assert_array_equal(labels, np.unique(labels))
        np.testing.assert_array_equal(labels, expected_video.labels)
        num_frames = len(frames["rgb"])
        assert 60 <= num_frames <= 300
        assert len(frames["audio"]) == num_frames
        assert all(row.size == 1024 for row in frames["rgb"])
        assert all(row.size == 128 for row in frames["audio"])
        for name in ("rgb", "audio"):
            np.testing.assert_array_equal(np.stack(frames[name]), expected_video.features[name])

    # Each frame has the real dataset's framing: 9 bytes of protobuf around 1024 / 128 values.
    record = next(iter(tf.data.TFRecordDataset(paths[0]))).numpy()
    example = tf.train.SequenceExample.FromString(record)
    for name, size in (("rgb", 1024), ("audio", 128)):
        feature_list = example.feature_lists.feature_list[name]
        assert len(feature_list.SerializeToString()) == len(feature_list.feature) * (size + 9)


def test_video_id_key_and_feature_names_are_configurable(tmp_path):
    spec = dataclasses.replace(SMALL_SPEC, feature_names=("mean_a", "mean_b"))
    paths = synthetic.write_dataset(
        str(tmp_path),
        num_videos=3,
        num_shards=1,
        num_classes=5,
        seed=0,
        split="validate",
        file_prefix="val",
        video_id_key="video_id",
        spec=spec,
    )
    assert os.path.basename(paths[0]) == "val-00000-of-00001.tfrecord"
    videos = read_shards(paths, video_id_key="video_id", feature_names=("mean_a", "mean_b"))
    assert [video_id for video_id, _, _ in videos] == [f"syn-validate-0000{k}" for k in range(3)]
    assert all(row.size == 64 for row in videos[0][2]["mean_a"])
    assert all(row.size == 16 for row in videos[0][2]["mean_b"])


def test_same_arguments_give_identical_bytes_and_seeds_differ(tmp_path):
    def shard_bytes(directory, seed, num_shards=2):
        paths = synthetic.write_dataset(
            str(tmp_path / directory), 6, num_shards, 8, seed, spec=SMALL_SPEC
        )
        return [Path(p).read_bytes() for p in paths]

    first = shard_bytes("a", seed=3)
    assert first == shard_bytes("b", seed=3)
    assert first != shard_bytes("c", seed=4)
    # The videos do not depend on how they are sharded.
    assert b"".join(first) == b"".join(shard_bytes("d", seed=3, num_shards=1))


def test_splits_share_class_patterns_but_not_videos():
    spec = SMALL_SPEC
    patterns = synthetic.make_class_patterns(6, 11, spec.feature_sizes)
    # Patterns depend on the seed only (not on num_classes); each row has unit RMS.
    more = synthetic.make_class_patterns(9, 11, spec.feature_sizes)
    for few, many in zip(patterns, more, strict=True):
        np.testing.assert_array_equal(few, many[:6])
        np.testing.assert_allclose(np.sqrt((few**2).mean(axis=1)), 1.0, rtol=1e-5)
    other_seed = synthetic.make_class_patterns(6, 12, spec.feature_sizes)
    assert not np.allclose(patterns[0], other_seed[0])

    train = list(synthetic.iter_videos(4, 6, seed=11, split="train", spec=spec))
    validate = list(synthetic.iter_videos(4, 6, seed=11, split="validate", spec=spec))
    assert {i for i, _ in train}.isdisjoint({i for i, _ in validate})
    for (_, train_video), (_, validate_video) in zip(train, validate, strict=True):
        assert train_video.features["rgb"].tobytes() != validate_video.features["rgb"].tobytes()


def temporal_aucs(num_videos, num_classes, seed, spec, split):
    """Per class: AUC of max-over-time projection and of the frame-0 projection on rgb."""
    rgb_patterns = synthetic.make_class_patterns(num_classes, seed, spec.feature_sizes)[0]
    directions = rgb_patterns / np.linalg.norm(rgb_patterns, axis=1, keepdims=True)
    max_scores, frame0_scores = [], []
    truth = np.zeros((num_videos, num_classes), dtype=bool)
    for index, (_, video) in enumerate(
        synthetic.iter_videos(num_videos, num_classes, seed, split, spec)
    ):
        projection = synthetic.dequantize(video.features["rgb"]) @ directions.T  # [T, C]
        max_scores.append(projection.max(axis=0))
        frame0_scores.append(projection[0])
        truth[index, video.labels] = True
    max_scores, frame0_scores = np.array(max_scores), np.array(frame0_scores)
    max_auc = [auc(max_scores[:, c], truth[:, c]) for c in range(num_classes)]
    frame0_auc = [auc(frame0_scores[:, c], truth[:, c]) for c in range(num_classes)]
    return float(np.mean(max_auc)), float(np.mean(frame0_auc))


@pytest.mark.parametrize(
    "spec, num_videos, num_classes",
    [(SMALL_SPEC, 300, 8), (synthetic.SyntheticDatasetSpec(), 100, 6)],
    ids=["small-features", "default-1024-128"],
)
def test_labels_are_temporal_events_not_a_fixed_frame(spec, num_videos, num_classes):
    # The eval split is scored with the patterns of the shared seed: they carry over from train.
    max_auc, frame0_auc = temporal_aucs(num_videos, num_classes, 5, spec, split="validate")
    print(f"max-over-time AUC {max_auc:.3f}, frame-0 AUC {frame0_auc:.3f}")
    assert max_auc > 0.9
    assert frame0_auc < 0.65


def test_events_are_short_and_anywhere():
    spec = SMALL_SPEC
    starts, covers_frame0 = [], 0
    for _, video in synthetic.iter_videos(200, 8, seed=2, spec=spec):
        per_label = {}
        for event in video.events:
            assert spec.min_event_length <= event.length <= spec.max_event_length
            assert 0 <= event.start <= video.num_frames - event.length
            per_label[event.class_index] = per_label.get(event.class_index, 0) + 1
            starts.append(event.start / video.num_frames)
            covers_frame0 += event.start == 0
        assert sorted(per_label) == video.labels.tolist()
        assert all(2 <= count <= 4 for count in per_label.values())
    assert covers_frame0 / len(starts) < 0.05
    assert 0.35 < np.mean(starts) < 0.55


def test_class_skew_favours_low_classes():
    spec = dataclasses.replace(SMALL_SPEC, feature_sizes=(4, 4), min_frames=5, max_frames=5)
    counts = np.zeros(10)
    for skew, expect_flat in ((0.0, True), (1.5, False)):
        counts[:] = 0
        skewed = dataclasses.replace(spec, class_skew=skew)
        for _, video in synthetic.iter_videos(400, 10, seed=0, spec=skewed):
            counts[video.labels] += 1
        ratio = counts[0] / counts[-1]
        assert (ratio < 1.6) if expect_flat else (ratio > 3.0)


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"num_videos": 0}, "num_videos"),
        ({"num_shards": 0}, "num_shards"),
        ({"num_shards": 5, "num_videos": 4}, "num_shards"),
        ({"num_classes": 0}, "num_classes"),
        ({"seed": -1}, "seed"),
        ({"spec": dataclasses.replace(SMALL_SPEC, min_frames=90)}, "min_frames"),
        ({"spec": dataclasses.replace(SMALL_SPEC, min_frames=0)}, "min_frames"),
        ({"spec": dataclasses.replace(SMALL_SPEC, min_labels=3, max_labels=2)}, "min_labels"),
        ({"spec": dataclasses.replace(SMALL_SPEC, max_labels=9)}, "max_labels"),
        ({"spec": dataclasses.replace(SMALL_SPEC, feature_sizes=(64,))}, "feature_sizes"),
        ({"spec": dataclasses.replace(SMALL_SPEC, feature_sizes=(64, 0))}, "feature_sizes"),
        ({"spec": dataclasses.replace(SMALL_SPEC, max_event_length=31)}, "max_event_length"),
        ({"spec": dataclasses.replace(SMALL_SPEC, background_ar=1.0)}, "background_ar"),
        ({"split": ""}, "split"),
        ({"video_id_key": ""}, "video_id_key"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(tmp_path, overrides, name):
    arguments = dict(
        output_dir=str(tmp_path / "out"),
        num_videos=4,
        num_shards=1,
        num_classes=8,
        seed=0,
        spec=SMALL_SPEC,
    )
    arguments.update(overrides)
    with pytest.raises(ValueError, match=name):
        synthetic.write_dataset(**arguments)
    assert not (tmp_path / "out").exists()


def run_cli(*flags):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "synthetic_data.py"), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_writes_shards_and_prints_them(tmp_path):
    result = run_cli(f"--output_dir={tmp_path}", "--num_videos=4", "--num_shards=2")
    assert result.returncode == 0, result.stderr
    for shard in range(2):
        path = tmp_path / f"train-0000{shard}-of-00002.tfrecord"
        assert path.exists()
        assert str(path) in result.stdout
    assert "Wrote 4 videos" in result.stdout


def test_cli_rejects_bad_flag_with_one_line_error(tmp_path):
    result = run_cli(f"--output_dir={tmp_path}", "--num_videos=0")
    assert result.returncode != 0
    assert "num_videos" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_visible_label_fraction_counts_labels_with_an_event_on_a_strided_frame():
    spec = synthetic.SyntheticDatasetSpec(min_frames=30, max_frames=60, max_labels=3)
    assert synthetic.visible_label_fraction(20, 5, seed=4, spec=spec, frame_stride=1) == 1.0
    pairs = visible = 0
    for _, video in synthetic.iter_videos(20, 5, seed=4, split="validate", spec=spec):
        for label in video.labels:
            pairs += 1
            frames = {
                frame
                for event in video.events
                if event.class_index == label
                for frame in range(event.start, event.start + event.length)
            }
            visible += any(frame % 10 == 0 for frame in frames)
    fraction = synthetic.visible_label_fraction(20, 5, seed=4, spec=spec, frame_stride=10)
    assert fraction == visible / pairs and 0 < fraction < 1
