"""The benchmark's input for a GPU: each reader's videos/s per core, and the GPU projection.

    rates = benchmark_input.measure_input(pattern, cache_pattern, teacher_config, student_config,
                                          batch_size, repeats, num_readers, min_seconds)
    projection = benchmark_input.project_to_gpu(rates, benchmark_input.load_gpu_rates(path), 16)

Input for a GPU (`input` in benchmark.json): a plain read of the full records, the teacher's
reader, the student-10 reader on the full records and on its frame cache (frame_cache.py), side by
side, in videos/s and per core of this process (the teacher and student of
`benchmark_training.training_configs`). `gpu_projection` (a projection, not a measurement) puts
them against a GPU's rates of the models alone (`--gpu_measurements`, for `--host_cores` cores).

The timer of every measurement (`timed_rate`) and the readers' rates (`plain_read_rate`,
`pipeline_rate`) live here too; benchmark.py's inference measurements use them.
"""

import json
import os
import statistics
import time

import tensorflow as tf
from absl import logging

import readers
import utils
from experiments import benchmark_training
from pipeline import corrupt_records, record_batches
from runs import config
from serving import cpu_inference
from training import training_input

REPO_DIR = utils.REPO_DIR
# The GPU's speed of the paper's models, measured outside this repository.
DEFAULT_GPU_MEASUREMENTS = os.path.join(
    REPO_DIR, os.pardir, "shared", "measurements", "h200_architecture.json"
)
# The GPU figures the projection takes: the model alone at this batch, per precision.
GPU_PROJECTION_BATCH = 1024
GPU_PRECISIONS = ("fp32", "fp16")
# A timed pass of a reader reads the data as many times as it takes to give this many videos.
READER_PASS_VIDEOS = 4096
# The reads `measure_input` times, in its order.
INPUT_READS = (
    "plain_read",
    "teacher",
    "student_10_full_records",
    "training_unordered",
    "training_ordered",
    "student_10_cache",
)


# The timer and the readers' rates, shared with benchmark.py's inference measurements.


def timed_rate(make_batches, count_videos, min_seconds, clock=time.perf_counter):
    """Videos per second over passes of `make_batches()` lasting at least `min_seconds` in all.

    The first batch of every pass is not timed (pipeline start-up, the first call of the
    compiled model); passes are repeated until the timed part adds up to `min_seconds`, so
    that fast models are not timed over a fraction of a second. `clock` gives seconds.
    """
    num_videos = 0
    elapsed = 0.0
    while num_videos == 0 or elapsed < min_seconds:
        iterator = iter(make_batches())
        if next(iterator, None) is None:
            return float("nan")
        start = clock()
        for batch in iterator:
            num_videos += count_videos(batch)
        elapsed += clock() - start
        if num_videos == 0:  # a single batch: nothing was timed
            return float("nan")
    return num_videos / elapsed


# The readers' rates below build their dataset once and start a new iterator for each pass:
# building it traces the reader's functions (1-2 s on 2 cores), and starting an iterator takes
# about 0.5 s, both untimed; a pass reads the data `epochs_per_pass` times, so that a fast
# reader's pass is not a single timed batch and --min_seconds is reached in a few passes.


def epochs_per_pass(num_videos, pass_videos=READER_PASS_VIDEOS):
    """Passes over `num_videos` that make up one timed pass of a reader: `pass_videos` at least."""
    return max(1, -(-pass_videos // num_videos))


def plain_read_rate(pattern, batch_size, num_readers, min_seconds, num_epochs=1):
    records, _ = record_batches.make_record_batches(
        pattern, batch_size, num_epochs=num_epochs, num_readers=num_readers
    )
    records = records.prefetch(tf.data.AUTOTUNE)
    return timed_rate(lambda: records, lambda batch: int(batch.shape[0]), min_seconds)


def pipeline_rate(reader, pattern, batch_size, num_readers, min_seconds, num_epochs=1):
    dataset, _ = reader.make_dataset(
        pattern, batch_size, num_epochs=num_epochs, num_readers=num_readers
    )
    return timed_rate(lambda: dataset, lambda batch: int(batch["num_frames"].shape[0]), min_seconds)


def model_rate(predict, cached_batches, min_seconds):
    """The model alone on batches already in memory: `predict` -> top-k, to numpy."""

    def make_batches():
        for video_matrix, num_frames in cached_batches:
            indexes, _ = predict(video_matrix, num_frames)
            yield indexes.numpy()

    return timed_rate(make_batches, len, min_seconds)


def end_to_end_rate(reader, predict, pattern, batch_size, num_readers, min_seconds):
    """inference.py's loop (predictor.py): reader (with inference's input options,
    cpu_inference.py), model, top-k, numpy (the compiled model already traced)."""

    dataset, files = reader.make_dataset(pattern, batch_size, num_readers=num_readers)
    dataset = cpu_inference.input_dataset(dataset)

    def make_batches():
        for batch in corrupt_records.iterate_batches(dataset, files):
            indexes, scores = predict(batch["video_matrix"], batch["num_frames"])
            yield batch["video_ids"].numpy(), indexes.numpy(), scores.numpy()

    return timed_rate(make_batches, lambda batch: len(batch[0]), min_seconds)


def training_input_rate(run_config, pattern, batch_size, num_readers, min_seconds, ordered):
    """Videos/s of the training pipeline (training_input.py: shuffled epochs, the frames drawn
    per epoch, parsing) for `run_config`, its shards interleaved in a fixed order
    (--ordered_input, the default) or as they arrive."""
    options = config.TrainOptions(
        train_data_pattern=pattern,
        batch_size=batch_size,
        num_readers=num_readers,
        ordered_input=ordered,
    )
    files = utils.glob_data_files(pattern, "--train_data_pattern")
    strategy = tf.distribute.get_strategy()
    skipped = corrupt_records.SkippedRecords()
    dataset = training_input.make_training_dataset(
        run_config, options, files, 0, strategy, False, skipped, 0, 1
    )
    return timed_rate(lambda: dataset, lambda batch: int(batch["num_frames"].shape[0]), min_seconds)


# The input side: videos a second each reader gives, and per core of this process.


def process_cores():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def count_records(files):
    """The number of records in the TFRecord `files` (a list of paths)."""
    return int(
        tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    )


def bytes_per_video(pattern):
    """Bytes on disk of the files matching `pattern` over the videos (records) they hold."""
    files = utils.glob_data_files(pattern)
    total_bytes = sum(tf.io.gfile.stat(path).length for path in files)
    return total_bytes / count_records(files)


def write_student_cache(pattern, cache_dir, student_config):
    """The frame cache of `student_config`'s frames of `pattern` (frame_cache.py; written once,
    a COMPLETE marker lists its files); its comma-separated files, or None without frame_cache.py.
    """
    try:
        from pipeline import frame_cache
    except ImportError:
        logging.warning("frame_cache.py is missing: the frame cache's reader is not measured.")
        return None
    marker = os.path.join(cache_dir, "COMPLETE")
    if not tf.io.gfile.exists(marker):
        if tf.io.gfile.exists(cache_dir):
            tf.io.gfile.rmtree(cache_dir)
        files, _, _ = frame_cache.write_frame_cache(
            pattern,
            cache_dir,
            student_config.frame_stride,
            feature_names=student_config.feature_names,
        )
        utils.write_text_atomically(marker, "".join(f"{path}\n" for path in files))
    with tf.io.gfile.GFile(marker) as handle:
        return ",".join(line.strip() for line in handle if line.strip())


def measure_input(
    pattern,
    cache_pattern,
    teacher_config,
    student_config,
    batch_size,
    repeats,
    num_readers,
    min_seconds,
    reader_epochs=1,
):
    """Videos/s of each way of reading, measured side by side, and per core of this process.

    Each repeat times, one after the other: a plain TFRecord read of the full records
    (`plain_read`), the teacher's reader on every frame (`teacher`), the student's reader on the
    full records (`student_10_full_records`) and on its frame cache (`student_10_cache`, when
    `cache_pattern` is given: files of `frame_cache.write_frame_cache`), and the teacher's
    training pipeline (one shuffled epoch a pass) in its fixed order, the default
    (`training_ordered`), and with shards taken as they arrive (`training_unordered`,
    --noordered_input). A timed pass of a reader
    reads the data `reader_epochs` times.

    Returns:
      {"cores": cores this process may use, name: {"videos_per_s" (median of the repeats),
      "per_core", "bytes_per_video", "samples"}, "student_10_cache_over_teacher_per_core"
      (with a cache), "training_ordered_over_unordered"}.
    """
    teacher_reader = readers.reader_for(teacher_config)
    student_reader = readers.reader_for(student_config)
    sources = {
        "plain_read": pattern,
        "teacher": pattern,
        "student_10_full_records": pattern,
    }
    measures = {
        "plain_read": lambda: plain_read_rate(
            pattern, batch_size, num_readers, min_seconds, reader_epochs
        ),
        "teacher": lambda: pipeline_rate(
            teacher_reader, pattern, batch_size, num_readers, min_seconds, reader_epochs
        ),
        "student_10_full_records": lambda: pipeline_rate(
            student_reader, pattern, batch_size, num_readers, min_seconds, reader_epochs
        ),
    }
    for name, ordered in (("training_unordered", False), ("training_ordered", True)):
        sources[name] = pattern
        measures[name] = lambda ordered=ordered: training_input_rate(
            teacher_config, pattern, batch_size, num_readers, min_seconds, ordered
        )
    if cache_pattern:
        sources["student_10_cache"] = cache_pattern
        measures["student_10_cache"] = lambda: pipeline_rate(
            student_reader, cache_pattern, batch_size, num_readers, min_seconds, reader_epochs
        )
    samples = {name: [] for name in measures}
    for repeat in range(repeats):
        for name, measure in measures.items():
            samples[name].append(measure())
        logging.info("input pass %d: %s", repeat + 1, samples)
    cores = process_cores()
    result = {"cores": cores}
    sizes = {source: bytes_per_video(source) for source in set(sources.values())}
    for name, values in samples.items():
        rate = statistics.median(values)
        result[name] = {
            "videos_per_s": rate,
            "per_core": rate / cores,
            "bytes_per_video": sizes[sources[name]],
            "samples": values,
        }
    result["training_ordered_over_unordered"] = (
        result["training_ordered"]["videos_per_s"] / result["training_unordered"]["videos_per_s"]
    )
    if cache_pattern:
        result["student_10_cache_over_teacher_per_core"] = (
            result["student_10_cache"]["per_core"] / result["teacher"]["per_core"]
        )
    return result


# What a GPU fed by the host would do: a projection from the readers' rates per core.


def load_gpu_rates(path, batch=GPU_PROJECTION_BATCH):
    """{precision: {model name ("teacher", "student-10", ...): videos/s}} of the models alone on
    the GPU at `batch`, from h200_architecture_bench.py's JSON; None (logged) when `path` is
    missing."""
    if not path or not tf.io.gfile.exists(path):
        logging.warning("--gpu_measurements=%s not found: no GPU projection.", path)
        return None
    with tf.io.gfile.GFile(path) as handle:
        measurements = json.load(handle)
    rates = {}
    for entry in measurements["inference"]:
        if entry["batch"] == batch and entry["precision"] in GPU_PRECISIONS:
            rates[entry["precision"]] = {
                name: value for name, value in entry.items() if name not in ("precision", "batch")
            }
    return rates


def project_to_gpu(input_rates, gpu_rates, host_cores):
    """End-to-end videos/s of one GPU fed by `host_cores` cores like this machine's.

    A model's projected rate is the lower of its reader's rate per core x `host_cores` and the
    GPU's rate of the model alone (whichever is the bottleneck sets the pace). The student's is
    the better of its reader on the full records and on its frame cache (when measured).

    Args:
      input_rates: `measure_input`'s result.
      gpu_rates: `load_gpu_rates`'s result.
      host_cores: cores feeding one GPU.

    Returns:
      {"host_cores", "host_videos_per_s": {reader: videos/s on host_cores}, precision:
      {"teacher_videos_per_s", "student_10_full_records_videos_per_s",
      ["student_10_cache_videos_per_s"], "student_10_videos_per_s" (the best),
      "student_10_over_teacher", "gpu_teacher_videos_per_s", "gpu_student_10_videos_per_s"}}.
    """
    students = [
        name for name in ("student_10_full_records", "student_10_cache") if name in input_rates
    ]
    host = {name: input_rates[name]["per_core"] * host_cores for name in ["teacher", *students]}
    projection = {"host_cores": host_cores, "host_videos_per_s": host}
    for precision, rates in gpu_rates.items():
        gpu_student = rates[f"student-{benchmark_training.STUDENT_K}"]
        row = {
            "gpu_teacher_videos_per_s": rates["teacher"],
            "gpu_student_10_videos_per_s": gpu_student,
            "teacher_videos_per_s": min(host["teacher"], rates["teacher"]),
        }
        for name in students:
            row[f"{name}_videos_per_s"] = min(host[name], gpu_student)
        row["student_10_videos_per_s"] = max(row[f"{name}_videos_per_s"] for name in students)
        row["student_10_over_teacher"] = (
            row["student_10_videos_per_s"] / row["teacher_videos_per_s"]
        )
        projection[precision] = row
    return projection
