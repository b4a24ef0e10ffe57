"""Inference speed and memory of the teacher and the students, measured side by side.

    python benchmark.py --output_dir=benchmark_out          (what `make bench` runs)

On one synthetic data set in the YouTube-8M frame format (120-300 frames a video, as the 2018
videos), for each model size (`--presets`: `paper` = 1,024 cells x 2 layers, 3,862 classes;
`small` = the reproduction's small preset) and each model (the teacher on every frame, block 20;
students on 1 frame in j = 100/k, block 5, for k in `--ks`), it measures videos per second:

- `plain_read`: the shards read and batched with `tf.data.TFRecordDataset`, nothing parsed: the
  physical limit of the input;
- `pipeline`: the model's reader alone (read, parse, select frames, decode to uint8);
- `model`: the model alone (dequantize, LSTMs, output layer, top-k) on batches already in memory;
- `end_to_end`: what `inference.py` does per batch (`corrupt_records.iterate_batches`, the compiled
  model and top-k of `predictor.checkpoint_predictor`, results to numpy), from the TFRecords.

Every figure is the median of `--repeats` repeats; within a repeat the plain read and all
models are measured one after the other, so drift in the machine's speed affects them alike.
A measurement passes over the data as often as it takes to time at least `--min_seconds`; the
first batch of every pass is not timed, and every model is traced on all batch shapes before.
Models have random weights: speed does not depend on them.

Memory: `inference.py` runs in a child process on the data and on 4x the data (the same shards
listed four times under other names), for the teacher and the 10 % student of the first preset;
its peak RSS must not grow with the number of videos (inference streams).

Input for a GPU (`input`): a plain read of the full records, the teacher's reader, the
student-10 reader on the full records and on its frame cache (frame_cache.py), side by side, in
videos/s and per core of this process. `gpu_projection` (a projection, not a measurement) puts
them against a GPU's rates of the models alone (`--gpu_measurements`, for `--host_cores` cores).

Training (`training`): the median step time of the project's loop (trainer.py) for the teacher,
joint distillation and fine-tuning of the student, at one batch on the same data, and the
longest pause between epochs.

    python benchmark.py --quick --output_dir=/tmp/bq        (`make bench-quick`, about 1 min)

Writes `benchmark.json` (with the commit and the machine) and prints a table with the
teacher/student ratios.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import itertools
import json
import os
import statistics
import subprocess
import sys
import time

import tensorflow as tf
from absl import flags, logging

import benchmark_report
import config
import corrupt_records
import distribution
import model_zoo
import predictor
import readers
import record_batches
import synthetic_data
import tasks
import trainer
import utils

REPO_DIR = os.path.dirname(os.path.abspath(__file__))


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "output_dir",
        "benchmark_out",
        "Where the data, models and results go.",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "presets",
        ["small", "paper"],
        "Model sizes to measure: small, paper.",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "ks",
        ["5", "10", "25", "50"],
        "Students' % of frames (stride = 100 / k).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_videos", 640, "Videos in the synthetic benchmark set.", flag_values=flag_values
    )
    flags.DEFINE_integer("batch_size", 64, "Videos per batch.", flag_values=flag_values)
    flags.DEFINE_integer(
        "repeats",
        3,
        "Timed passes per measurement (the median is reported).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.", flag_values=flag_values)
    flags.DEFINE_float(
        "min_seconds",
        2.0,
        "Each measurement repeats passes over the data until it has timed this long.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "measure_memory",
        True,
        "Measure inference's peak RSS at 1x and 4x the data.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "host_cores",
        16,
        "CPU cores of the host that would feed one GPU, for the GPU projection.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "gpu_measurements",
        DEFAULT_GPU_MEASUREMENTS,
        "JSON of the paper's models' speed on a GPU (h200_architecture_bench.py); missing: no "
        "GPU projection.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "train_epochs",
        3,
        "Epochs of each timed training (teacher; joint and fine-tuning phases); 0: no training.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "train_batch_size",
        48,
        "Videos per training step, the same for every timed training. Not a divisor of "
        "--num_videos, so that every epoch ends on a partial batch, as real data does.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "quick",
        False,
        "A short run (about 2 minutes on 2 cores): "
        + ", ".join(f"--{name}={value}" for name, value in QUICK_SETTINGS.items())
        + "; overrides those flags.",
        flag_values=flag_values,
    )


NUM_SHARDS = 8
# The GPU's speed of the paper's models, measured outside this repository.
DEFAULT_GPU_MEASUREMENTS = os.path.join(
    REPO_DIR, os.pardir, "shared", "measurements", "h200_architecture.json"
)
# The GPU figures the projection takes: the model alone at this batch, per precision.
GPU_PROJECTION_BATCH = 1024
GPU_PRECISIONS = ("fp32", "fp16")
# The student of the input and training measurements: 1 frame in 10, uniform.
STUDENT_K = 10
# A timed pass of a reader reads the data as many times as it takes to give this many videos.
READER_PASS_VIDEOS = 4096
# The reads `measure_input` times, in its order.
INPUT_READS = ("plain_read", "teacher", "student_10_full_records", "student_10_cache")
# What --quick sets (it overrides these flags).
QUICK_SETTINGS = {
    "num_videos": 128,
    "repeats": 1,
    "min_seconds": 0.3,
    "presets": ["small"],
    "ks": [str(STUDENT_K)],
    "measure_memory": False,
    "train_epochs": 2,
}
MEMORY_DATA_COPIES = 4
# Model sizes. `small` is the reproduction's small preset; `paper` the paper's section 4.
PRESETS = {
    "small": {"lstm_cells": 64, "lstm_layers": 2, "num_classes": 10},
    "paper": {"lstm_cells": 1024, "lstm_layers": 2, "num_classes": 3862},
}
TEACHER_BLOCK_SIZE = 20


def parse_ks(values):
    """`--ks` -> sorted list of int percentages whose stride 100 / k is a whole number."""
    ks = []
    for value in values:
        try:
            k = int(value)
        except ValueError:
            raise utils.UserInputError(f"--ks: '{value}' is not an integer.") from None
        if not 0 < k < 100 or 100 % k:
            raise utils.UserInputError(
                f"--ks: {k} % needs a whole stride 100 / k; use e.g. 5, 10, 20, 25, 50."
            )
        ks.append(k)
    return sorted(set(ks))


def benchmark_models(preset, ks):
    """[(name, RunConfig)] of the teacher and the students of `preset`."""
    if preset not in PRESETS:
        raise utils.UserInputError(f"--presets: unknown preset '{preset}' (small, paper).")
    teacher = config.RunConfig(block_size=TEACHER_BLOCK_SIZE, **PRESETS[preset])
    entries = [("teacher", teacher)]
    for k in sorted(ks, reverse=True):
        student = teacher.replace(
            model=config.STUDENT_MODEL,
            block_size=config.STUDENT_BLOCK_SIZE,
            frame_stride=100 // k,
        )
        entries.append((f"student-{k}", student))
    return entries


def write_benchmark_data(data_dir, num_videos, num_classes):
    """The synthetic set (written once; a COMPLETE marker says it is whole); returns its pattern."""
    pattern = os.path.join(data_dir, "bench-*.tfrecord")
    marker = os.path.join(data_dir, "COMPLETE")
    if not tf.io.gfile.exists(marker):
        spec = synthetic_data.SyntheticDatasetSpec(min_frames=120, max_frames=300)
        synthetic_data.write_dataset(
            data_dir, num_videos, NUM_SHARDS, num_classes, seed=7, split="bench", spec=spec
        )
        utils.write_text_atomically(marker, f"{num_videos} videos\n")
    return pattern


def copies_of_data(pattern, copies_dir, copies):
    """A pattern over `copies` links to every shard of `pattern` (the same data, more videos)."""
    tf.io.gfile.makedirs(copies_dir)
    for copy in range(copies):
        for path in tf.io.gfile.glob(pattern):
            link = os.path.join(copies_dir, f"copy{copy}-{os.path.basename(path)}")
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(path), link)
    return os.path.join(copies_dir, "copy*-bench-*.tfrecord")


def save_untrained(run_config, train_dir):
    """A checkpoint of a freshly built model, loadable by eval.py and inference.py."""
    if tf.train.latest_checkpoint(train_dir):
        return train_dir
    model = model_zoo.build_model(run_config)
    tf.train.Checkpoint(model=model).save(os.path.join(train_dir, "ckpt"))
    run_config.save(train_dir)
    return train_dir


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
    def make_batches():
        for video_matrix, num_frames in cached_batches:
            indexes, _ = predict(video_matrix, num_frames)
            yield indexes.numpy()

    return timed_rate(make_batches, len, min_seconds)


def end_to_end_rate(reader, predict, pattern, batch_size, num_readers, min_seconds):
    """inference.py's loop (predictor.py): reader, model, top-k, numpy (the compiled model
    already traced)."""

    dataset, files = reader.make_dataset(pattern, batch_size, num_readers=num_readers)

    def make_batches():
        for batch in corrupt_records.iterate_batches(dataset, files):
            indexes, scores = predict(batch["video_matrix"], batch["num_frames"])
            yield batch["video_ids"].numpy(), indexes.numpy(), scores.numpy()

    return timed_rate(make_batches, lambda batch: len(batch[0]), min_seconds)


def measure_preset(
    preset, ks, pattern, work_dir, batch_size, repeats, num_readers, min_seconds, reader_epochs=1
):
    """Per model: median videos/s of the pipeline, the model alone and end to end.

    A timed pass of a reader alone (the plain read, `pipeline`) reads the data `reader_epochs`
    times.

    Each repeat first times a plain TFRecord read of the same shards, then every model in turn,
    so that a pipeline's rate is compared with a plain read taken minutes, not an hour, apart.

    Returns:
      (per-model result dicts, teacher first; the plain read's samples in videos/s).
    """
    entries = benchmark_models(preset, ks)
    prepared = []
    for name, run_config in entries:
        train_dir = save_untrained(run_config, os.path.join(work_dir, preset, name))
        reader, predict = predictor.checkpoint_predictor(train_dir, 20, "id")
        dataset, _ = reader.make_dataset(pattern, batch_size, num_readers=num_readers)
        cached = [(batch["video_matrix"], batch["num_frames"]) for batch in dataset]
        for video_matrix, num_frames in cached:  # traces every batch shape before timing
            predict(video_matrix, num_frames)
        prepared.append((name, run_config, train_dir, reader, predict, cached))
    samples = {name: {"pipeline": [], "model": [], "end_to_end": []} for name, _ in entries}
    plain_samples = []
    for repeat in range(repeats):
        plain_samples.append(
            plain_read_rate(pattern, batch_size, num_readers, min_seconds, reader_epochs)
        )
        for name, _, _, reader, predict, cached in prepared:
            samples[name]["pipeline"].append(
                pipeline_rate(reader, pattern, batch_size, num_readers, min_seconds, reader_epochs)
            )
            samples[name]["model"].append(model_rate(predict, cached, min_seconds))
            samples[name]["end_to_end"].append(
                end_to_end_rate(reader, predict, pattern, batch_size, num_readers, min_seconds)
            )
            logging.info("%s %s pass %d: %s", preset, name, repeat + 1, samples[name])
    results = []
    for name, run_config, train_dir, _, _, cached in prepared:
        entry = {
            "name": name,
            "k": 100 // run_config.frame_stride,
            "frame_stride": run_config.frame_stride,
            "block_size": run_config.block_size,
            "frames_per_video": sum(int(tf.reduce_sum(n)) for _, n in cached)
            / sum(int(n.shape[0]) for _, n in cached),
            "train_dir": train_dir,
        }
        for measure, values in samples[name].items():
            entry[f"{measure}_videos_per_second"] = statistics.median(values)
            entry[f"{measure}_samples"] = values
        entry["pipeline_of_plain_read"] = entry["pipeline_videos_per_second"] / statistics.median(
            plain_samples
        )
        results.append(entry)
    teacher = results[0]
    for entry in results:
        for measure in ("pipeline", "model", "end_to_end"):
            key = f"{measure}_videos_per_second"
            entry[f"{measure}_speedup"] = entry[key] / teacher[key]
    return results, plain_samples


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
        import frame_cache
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
    `cache_pattern` is given: files of `frame_cache.write_frame_cache`). A timed pass reads the
    data `reader_epochs` times.

    Returns:
      {"cores": cores this process may use, name: {"videos_per_s" (median of the repeats),
      "per_core", "bytes_per_video", "samples"}, "student_10_cache_over_teacher_per_core"
      (with a cache)}.
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
        gpu_student = rates[f"student-{STUDENT_K}"]
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


# Training: the step times of the project's own loop.


class StepTimingTrainer(trainer.Trainer):
    """trainer.Trainer that records when each training step starts and ends.

    `steps` gets one dict per step: `phase` (its name), `epoch` (0-based, of the phase),
    `start` and `end` (seconds of `clock`; `end` once the step's loss is computed) and `videos`.
    """

    def __init__(self, task, options, strategy, clock=time.perf_counter):
        super().__init__(task, options, strategy)
        self.clock = clock
        self.steps = []

    def run_steps(self, run, batches, logger, stop):
        compiled_step = run.step
        current_epoch = [0]

        def noting_epochs(batches):
            for batch in batches:
                epochs = utils.local_values(batch["epoch"]).numpy()
                if epochs.size:
                    current_epoch[0] = int(epochs.max())
                yield batch

        def timed_step(batch):
            start = self.clock()
            result = compiled_step(batch)
            float(result.loss)  # waits for the step to finish
            self.steps.append(
                {
                    "phase": run.phase.name,
                    "epoch": current_epoch[0],
                    "start": start,
                    "end": self.clock(),
                    "videos": int(result.num_examples),
                }
            )
            return result

        run.step = timed_step
        try:
            return super().run_steps(run, noting_epochs(batches), logger, stop)
        finally:
            run.step = compiled_step


def median_step_s(steps, phase):
    """Median seconds of `phase`'s steps (from `StepTimingTrainer.steps`), its first step (which
    traces the compiled step) left out when there are others."""
    durations = [step["end"] - step["start"] for step in steps if step["phase"] == phase]
    if len(durations) > 1:
        durations = durations[1:]
    return statistics.median(durations)


def epoch_pauses_s(steps):
    """Per change of epoch within a phase: the seconds from the start of the epoch's last step to
    the start of the next epoch's first, minus the phase's median such interval within an epoch
    (a normal step and what the loop does between two steps). Includes a slow last (partial)
    step, the end-of-epoch checkpoint and any wait for the next epoch's first batch.

    Returns:
      a list of {"phase", "epoch" (the epoch that ends), "pause_s"}.
    """
    pauses = []
    for phase in dict.fromkeys(step["phase"] for step in steps):
        phase_steps = [step for step in steps if step["phase"] == phase]
        pairs = list(itertools.pairwise(phase_steps))
        within = [
            after["start"] - before["start"]
            for before, after in pairs[1:]  # the first interval holds the trace
            if before["epoch"] == after["epoch"]
        ]
        if not within:
            continue
        normal = statistics.median(within)
        for before, after in pairs:
            if before["epoch"] != after["epoch"]:
                pauses.append(
                    {
                        "phase": phase,
                        "epoch": before["epoch"],
                        "pause_s": after["start"] - before["start"] - normal,
                    }
                )
    return pauses


def training_configs(sizes):
    """(teacher, student-10) RunConfigs of the model sizes `sizes` (RunConfig fields)."""
    teacher = config.RunConfig(block_size=TEACHER_BLOCK_SIZE, **sizes)
    student = teacher.replace(
        model=config.STUDENT_MODEL,
        block_size=config.STUDENT_BLOCK_SIZE,
        frame_stride=100 // STUDENT_K,
        teacher_block_size=TEACHER_BLOCK_SIZE,
    )
    return teacher, student


def timed_training(task, options):
    """Trains `task` from scratch with `options` (train_dir emptied first); the step records."""
    if tf.io.gfile.exists(options.train_dir):
        tf.io.gfile.rmtree(options.train_dir)
    strategy = distribution.make_strategy(options.strategy)
    timing = StepTimingTrainer(task, options, strategy)
    timing.fit()
    return timing.steps


def measure_training(pattern, work_dir, sizes, batch_size, epochs, num_readers):
    """Median step times of the teacher trained alone, of joint distillation (teacher and
    student-10 trained together) and of fine-tuning the student alone, at the same batch on the
    same data, with the project's loop (trainer.py), and the longest pause between epochs.

    Returns:
      {"teacher_step_s", "joint_step_s", "finetune_step_s", "epoch_pause_s" (the longest of
      `epoch_pauses_s`, 0 without one), "joint_over_teacher", "finetune_over_teacher",
      "first_step_s" (per phase: tracing included), "epoch_pauses" (every change of epoch),
      "steps" (per phase), "batch_size", "epochs", "model_sizes"}.
    """
    teacher_config, student_config = training_configs(sizes)
    options = config.TrainOptions(
        train_data_pattern=pattern,
        batch_size=batch_size,
        num_epochs=epochs,
        num_readers=num_readers,
    )
    teacher_steps = timed_training(
        tasks.make_task(teacher_config),
        options.replace(train_dir=os.path.join(work_dir, "teacher")),
    )
    student_steps = timed_training(
        tasks.make_task(
            student_config, config.DistillOptions(joint_epochs=epochs, finetune_epochs=epochs)
        ),
        options.replace(train_dir=os.path.join(work_dir, f"student-{STUDENT_K}")),
    )
    phases = {"teacher": "train", "joint": "distill", "finetune": "finetune"}
    records = {"teacher": teacher_steps, "joint": student_steps, "finetune": student_steps}
    result = {
        f"{name}_step_s": median_step_s(records[name], phase) for name, phase in phases.items()
    }
    pauses = epoch_pauses_s(teacher_steps) + epoch_pauses_s(student_steps)
    result["epoch_pause_s"] = max([0.0] + [pause["pause_s"] for pause in pauses])
    result["joint_over_teacher"] = result["joint_step_s"] / result["teacher_step_s"]
    result["finetune_over_teacher"] = result["finetune_step_s"] / result["teacher_step_s"]
    result["first_step_s"] = {
        name: next(step["end"] - step["start"] for step in records[name] if step["phase"] == phase)
        for name, phase in phases.items()
    }
    result["epoch_pauses"] = pauses
    result["steps"] = {
        name: sum(step["phase"] == phase for step in records[name])
        for name, phase in phases.items()
    }
    result.update(batch_size=batch_size, epochs=epochs, model_sizes=dict(sizes))
    return result


# What the report records about where it ran.


def measure_memory(train_dirs, pattern, copies_pattern, work_dir, batch_size):
    """Peak RSS (MiB) of inference on the data and on MEMORY_DATA_COPIES times the data."""
    memory = {}
    for name, train_dir in train_dirs.items():
        row = {}
        for label, data in (("1x", pattern), (f"{MEMORY_DATA_COPIES}x", copies_pattern)):
            output_file = os.path.join(work_dir, f"memory-{name}-{label}.csv")
            row[f"peak_rss_mib_{label}"] = child_peak_rss_mib(
                train_dir, data, output_file, batch_size
            )
            with open(output_file) as handle:
                row[f"videos_{label}"] = sum(1 for _ in handle) - 1
        row["growth"] = row[f"peak_rss_mib_{MEMORY_DATA_COPIES}x"] / row["peak_rss_mib_1x"]
        memory[name] = row
    return memory


# Runs a script as __main__ and, at exit, writes its process's peak RSS (VmHWM, kB) to a file.
# VmHWM belongs to the address space that exec created, so unlike wait4's ru_maxrss it does not
# include the parent's memory at the time of the fork.
PEAK_RSS_WRAPPER = """
import atexit, runpy, sys

def write_peak_rss(path=sys.argv[1]):
    with open("/proc/self/status") as status:
        peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as handle:
        handle.write(peak_kb)

atexit.register(write_peak_rss)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def child_peak_rss_mib(train_dir, pattern, output_file, batch_size):
    """Runs inference.py as a child process and returns its own peak RSS in MiB (Linux)."""
    peak_file = output_file + ".peak_rss_kb"
    command = [
        sys.executable,
        "-c",
        PEAK_RSS_WRAPPER,
        peak_file,
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "inference.py"),
        f"--train_dir={train_dir}",
        f"--input_data_pattern={pattern}",
        f"--output_file={output_file}",
        f"--batch_size={batch_size}",
    ]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(output_file + ".log", "w") as log:
        completed = subprocess.run(command, stdout=log, stderr=log, env=environment, check=False)
    if completed.returncode != 0:
        with open(output_file + ".log") as log:
            raise RuntimeError(f"inference.py failed:\n{log.read()[-2000:]}")
    with open(peak_file) as handle:
        return round(int(handle.read()) / 1024.0, 1)


def run_benchmark(
    output_dir,
    presets,
    ks,
    num_videos,
    batch_size,
    repeats,
    num_readers,
    measure_memory_too,
    min_seconds=2.0,
    measure_input_too=True,
    host_cores=16,
    gpu_measurements=DEFAULT_GPU_MEASUREMENTS,
    train_epochs=0,
    train_batch_size=48,
    train_sizes=None,
    reader_pass_videos=READER_PASS_VIDEOS,
):
    """Runs every measurement and writes `output_dir/benchmark.json`; returns the report.

    `presets` may be empty (no inference measurement); `measure_input_too` measures the readers
    (`input`, and `gpu_projection` when `gpu_measurements` exists); `train_epochs` > 0 times
    training (`training`) at `train_batch_size`, with the model sizes `train_sizes` (RunConfig
    fields; the small preset's when None). A timed pass of a reader alone reads the data as
    often as it takes to give `reader_pass_videos` videos.
    """
    if num_videos < 2 * batch_size:
        raise utils.UserInputError(
            f"--num_videos={num_videos} must be at least 2 batches (--batch_size={batch_size}): "
            "the first batch of each pass is not timed."
        )
    if repeats < 1:
        raise utils.UserInputError(f"--repeats={repeats} must be >= 1.")
    if min_seconds < 0:
        raise utils.UserInputError(f"--min_seconds={min_seconds} must be >= 0.")
    if host_cores < 1:
        raise utils.UserInputError(f"--host_cores={host_cores} must be >= 1.")
    if train_epochs < 0:
        raise utils.UserInputError(f"--train_epochs={train_epochs} must be >= 0.")
    ks = parse_ks(ks)
    for preset in presets:
        if preset not in PRESETS:
            raise utils.UserInputError(f"--presets: unknown preset '{preset}' (small, paper).")
    data_dir = os.path.join(output_dir, f"data-{num_videos}videos")
    pattern = write_benchmark_data(data_dir, num_videos, num_classes=10)
    machine = utils.machine_facts()
    report = {
        "commit": utils.source_commit(),
        "machine": machine,
        "num_videos": num_videos,
        "reader_epochs_per_pass": epochs_per_pass(num_videos, reader_pass_videos),
        "batch_size": batch_size,
        "repeats": repeats,
        "min_seconds": min_seconds,
        "presets": {},
        "plain_read_samples": {},
        "tensorflow": machine["tensorflow"],
        "cpu_count": machine["cpu_count"],
        "cores": machine["cores"],
    }
    if measure_input_too:
        teacher_config, student_config = training_configs(PRESETS["small"])
        cache_pattern = write_student_cache(
            pattern,
            os.path.join(output_dir, f"cache-{num_videos}videos-k{STUDENT_K}"),
            student_config,
        )
        report["input"] = measure_input(
            pattern,
            cache_pattern,
            teacher_config,
            student_config,
            batch_size,
            repeats,
            num_readers,
            min_seconds,
            epochs_per_pass(num_videos, reader_pass_videos),
        )
        gpu_rates = load_gpu_rates(gpu_measurements)
        if gpu_rates:
            report["gpu_projection"] = project_to_gpu(report["input"], gpu_rates, host_cores)
            report["gpu_projection"]["gpu_measurements"] = os.path.abspath(gpu_measurements)
    work_dir = os.path.join(output_dir, "models")
    for preset in presets:
        results, plain_samples = measure_preset(
            preset,
            ks,
            pattern,
            work_dir,
            batch_size,
            repeats,
            num_readers,
            min_seconds,
            epochs_per_pass(num_videos, reader_pass_videos),
        )
        report["presets"][preset] = results
        report["plain_read_samples"][preset] = plain_samples
    if presets:
        every_plain_sample = [
            rate for rates in report["plain_read_samples"].values() for rate in rates
        ]
        report["plain_read_videos_per_second"] = statistics.median(every_plain_sample)
        first = report["presets"][presets[0]]
        report["frames_per_video"] = first[0]["frames_per_video"]
    if presets and measure_memory_too:
        copies = copies_of_data(
            pattern, os.path.join(output_dir, f"data-x{MEMORY_DATA_COPIES}"), MEMORY_DATA_COPIES
        )
        chosen = {f"{presets[0]} {entry['name']}": entry["train_dir"] for entry in first}
        chosen = {
            name: train_dir
            for name, train_dir in chosen.items()
            if name.endswith(("teacher", "student-10"))
        }
        report["memory"] = measure_memory(chosen, pattern, copies, output_dir, batch_size)
    if train_epochs:
        report["training"] = measure_training(
            pattern,
            os.path.join(output_dir, "training"),
            train_sizes or PRESETS["small"],
            train_batch_size,
            train_epochs,
            num_readers,
        )
    utils.write_text_atomically(
        os.path.join(output_dir, "benchmark.json"), json.dumps(report, indent=2) + "\n"
    )
    return report


def main(unused_argv):
    flag_values = flags.FLAGS
    if flag_values.quick:
        for name, value in QUICK_SETTINGS.items():
            setattr(flag_values, name, value)
    with utils.exit_on_user_error():
        report = run_benchmark(
            flag_values.output_dir,
            flag_values.presets,
            flag_values.ks,
            flag_values.num_videos,
            flag_values.batch_size,
            flag_values.repeats,
            flag_values.num_readers,
            flag_values.measure_memory,
            flag_values.min_seconds,
            host_cores=flag_values.host_cores,
            gpu_measurements=flag_values.gpu_measurements,
            train_epochs=flag_values.train_epochs,
            train_batch_size=flag_values.train_batch_size,
        )
    print(benchmark_report.benchmark_markdown(report))
    print(f"Wrote {os.path.join(flag_values.output_dir, 'benchmark.json')}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
