"""Shared test set-up: the repository root on sys.path, quiet TensorFlow, real-data paths, the
one tiny model configuration every test builds from, and hand-made records."""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FRAME_SAMPLE = SHARED_DATA / "yt8m_2018_frame_sample"
VIDEO_SAMPLE = SHARED_DATA / "yt8m_2018_video_sample"
VOCABULARY = SHARED_DATA / "vocabulary_2018.csv"


def tiny_config(**overrides):
    """The tests' RunConfig: a hierarchical teacher with one layer of 8 LSTM cells and no
    dropout, reading the YouTube-8M features (rgb 1024 + audio 128) and labels (3,862 classes)
    of up to 40 frames; `overrides` change any field (model, frame_stride, num_classes, ...)."""
    from runs import config

    values = {
        "model": "HierarchicalTeacherModel",
        "num_classes": 3862,
        "max_frames": 40,
        "lstm_cells": 8,
        "lstm_layers": 1,
        "dropout": 0.0,
        "block_size": 4,
        "teacher_block_size": 8,
    }
    values.update(overrides)
    return config.RunConfig(**values)


def tiny_options(train_data_pattern, train_dir, **overrides):
    """The tests' TrainOptions: small batches, a log line and no checkpoint every step."""
    from runs import config

    values = {"batch_size": 10, "log_every_n_steps": 1, "checkpoint_steps": 100}
    values.update(overrides)
    return config.TrainOptions(
        train_data_pattern=str(train_data_pattern), train_dir=str(train_dir), **values
    )


def train_tiny_teacher(train_dir, pattern=None, **options):
    """A tiny teacher trained on the real frame-level samples (2 steps unless told); its dir."""
    from training import tasks, trainer

    settings = {"batch_size": 16, "max_steps": 2}
    settings.update(options)
    pattern = pattern or FRAME_SAMPLE / "*.tfrecord"
    trainer.train(tasks.SupervisedTask(tiny_config()), tiny_options(pattern, train_dir, **settings))
    return str(train_dir)


# Hand-made records for the malformed-input tests.


def sequence_example(video_id, labels, frames, id_key="id"):
    """A SequenceExample from {feature name: list of per-frame byte strings}."""
    import tensorflow as tf  # after TF_CPP_MIN_LOG_LEVEL is set

    example = tf.train.SequenceExample()
    example.context.feature[id_key].bytes_list.value.append(video_id.encode())
    example.context.feature["labels"].int64_list.value.extend(labels)
    for name, frame_bytes in frames.items():
        feature_list = example.feature_lists.feature_list[name]
        for value in frame_bytes:
            feature_list.feature.add().bytes_list.value.append(value)
    return example.SerializeToString()


def random_frames(rng, num_frames, sizes=(1024, 128), names=("rgb", "audio")):
    """{name: num_frames random uint8 frames as bytes}; `rng` a numpy Generator."""
    import numpy as np

    return {
        name: [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for _ in range(num_frames)]
        for name, size in zip(names, sizes, strict=True)
    }


def write_records(path, records):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def frame_sample_records():
    """The serialized records of the real frame-level sample, in file order."""
    import tensorflow as tf

    files = sorted(str(path) for path in FRAME_SAMPLE.glob("*"))
    return [record.numpy() for record in tf.data.TFRecordDataset(files)]


def short_video_train_set(root, num_videos, num_classes, seed, min_frames, max_frames):
    """A synthetic train split of short videos (2 shards, up to 2 labels) in `root`; its pattern."""
    from datasets import synthetic

    spec = synthetic.SyntheticDatasetSpec(
        min_frames=min_frames, max_frames=max_frames, max_labels=2
    )
    synthetic.write_dataset(str(root), num_videos, 2, num_classes, seed=seed, spec=spec)
    return str(root / "train-*.tfrecord")


def seed_entries(name, method, gaps):
    """Result entries of one grid model, one per seed (1, 2, ...) with the given GAPs: k = 100
    for the teacher, 10 for the others."""
    return [
        {
            "name": name,
            "method": method,
            "k": 100 if method == "teacher" else 10,
            "seed": seed,
            "gap": gap,
        }
        for seed, gap in enumerate(gaps, start=1)
    ]
