"""Which format for a student's frame cache: YouTube-8M TFRecords or `tf.data.Dataset.save`?

    .venv/bin/python docs/measure_cache_format.py --output_dir=/tmp/cache_format

On synthetic videos of 120-300 frames, for --frame_stride=10, measures side by side (median of
`--repeats` interleaved runs of `--epochs` passes, the first batch of each untimed): bytes on
disk per video and videos/s per core of
- `full_records`: the student reader on the full records (what a cache must beat);
- `tfrecord_cache`: the student reader on the frame cache (frame_cache.py, portable YT8M records);
- `dataset_save`: `tf.data.Dataset.load` of the reader's selected uint8 batches written once with
  `tf.data.Dataset.save` (the format `Dataset.snapshot` also writes), unbatched and rebatched.
Prints one JSON object; BUILD_NOTES records the figures.
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_environment  # noqa: F401,E402 (first: quiets TensorFlow before it loads)

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import readers  # noqa: E402
from datasets import synthetic  # noqa: E402
from pipeline import frame_cache  # noqa: E402
from runs import config  # noqa: E402

flags.DEFINE_string("output_dir", "/tmp/cache_format", "Where the data sets go.")
flags.DEFINE_integer("num_videos", 640, "Synthetic videos.")
flags.DEFINE_integer("repeats", 5, "Interleaved passes per format.")
flags.DEFINE_integer("batch_size", 64, "Videos per batch.")
flags.DEFINE_integer("epochs", 8, "Passes over the data in one timed pipeline.")
FLAGS = flags.FLAGS


def directory_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def videos_per_second(dataset):
    """Videos/s over a pass, its first batch (tracing, opening files) untimed."""
    batches = iter(dataset)
    next(batches)
    start = time.perf_counter()
    videos = 0
    for batch in batches:
        videos += int(tf.shape(batch["num_frames"])[0])
    return videos / (time.perf_counter() - start)


def main(unused_argv):
    full_dir = os.path.join(FLAGS.output_dir, "full")
    cache_dir = os.path.join(FLAGS.output_dir, "cache")
    saved_dir = os.path.join(FLAGS.output_dir, "saved")
    spec = synthetic.SyntheticDatasetSpec(min_frames=120, max_frames=300)
    if not tf.io.gfile.exists(full_dir):
        synthetic.write_dataset(full_dir, FLAGS.num_videos, 8, 100, seed=1, spec=spec)
    model_config = config.RunConfig(num_classes=100, frame_stride=10)
    full_pattern = os.path.join(full_dir, "*.tfrecord")
    if not tf.io.gfile.exists(cache_dir):
        frame_cache.write_frame_cache(full_pattern, cache_dir, 10)
    reader = readers.reader_for(model_config)
    if not tf.io.gfile.exists(saved_dir):
        selected, _ = reader.make_dataset(full_pattern, FLAGS.batch_size)
        per_video = selected.map(
            lambda batch: (
                {key: batch[key] for key in ("video_ids", "labels", "num_frames")}
                | {"video_matrix": batch["video_matrix"]}
            )
        ).unbatch()
        per_video.save(saved_dir)

    def read_full():
        return reader.make_dataset(full_pattern, FLAGS.batch_size, num_epochs=FLAGS.epochs)[0]

    def read_cache():
        cache_pattern = os.path.join(cache_dir, "*.tfrecord")
        return reader.make_dataset(cache_pattern, FLAGS.batch_size, num_epochs=FLAGS.epochs)[0]

    def read_saved():
        loaded = tf.data.Dataset.load(saved_dir)
        batches = loaded.repeat(FLAGS.epochs).padded_batch(FLAGS.batch_size)
        return batches.prefetch(tf.data.AUTOTUNE)

    formats = {"full_records": read_full, "tfrecord_cache": read_cache, "dataset_save": read_saved}
    for make in formats.values():
        videos_per_second(make())  # warm-up: traces, file cache
    rates = {name: [] for name in formats}
    for _ in range(FLAGS.repeats):
        for name, make in formats.items():
            rates[name].append(videos_per_second(make()))
    cores = len(os.sched_getaffinity(0))
    sizes = {
        "full_records": directory_bytes(full_dir),
        "tfrecord_cache": directory_bytes(cache_dir),
        "dataset_save": directory_bytes(saved_dir),
    }
    result = {
        name: {
            "videos_per_s": round(statistics.median(rates[name])),
            "per_core": round(statistics.median(rates[name]) / cores),
            "bytes_per_video": round(sizes[name] / FLAGS.num_videos),
        }
        for name in formats
    }
    result["cores"] = cores
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)
