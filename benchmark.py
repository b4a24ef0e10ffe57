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

Writes `benchmark.json` and prints a table with the teacher/student ratios.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import json
import os
import statistics
import subprocess
import sys
import time

import tensorflow as tf
from absl import flags, logging

import config
import corrupt_records
import model_zoo
import predictor
import record_batches
import synthetic_data
import utils


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


NUM_SHARDS = 8
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


def plain_read_rate(pattern, batch_size, num_readers, min_seconds):
    def make_batches():
        records, _ = record_batches.make_record_batches(
            pattern, batch_size, num_readers=num_readers
        )
        return records.prefetch(tf.data.AUTOTUNE)

    return timed_rate(make_batches, lambda batch: int(batch.shape[0]), min_seconds)


def pipeline_rate(reader, pattern, batch_size, num_readers, min_seconds):
    def make_batches():
        return reader.make_dataset(pattern, batch_size, num_readers=num_readers)[0]

    return timed_rate(make_batches, lambda batch: int(batch["num_frames"].shape[0]), min_seconds)


def model_rate(predict, cached_batches, min_seconds):
    def make_batches():
        for video_matrix, num_frames in cached_batches:
            indexes, _ = predict(video_matrix, num_frames)
            yield indexes.numpy()

    return timed_rate(make_batches, len, min_seconds)


def end_to_end_rate(reader, predict, pattern, batch_size, num_readers, min_seconds):
    """inference.py's loop (predictor.py): reader, model, top-k, numpy (the compiled model
    already traced)."""

    def make_batches():
        dataset, files = reader.make_dataset(pattern, batch_size, num_readers=num_readers)
        for batch in corrupt_records.iterate_batches(dataset, files):
            indexes, scores = predict(batch["video_matrix"], batch["num_frames"])
            yield batch["video_ids"].numpy(), indexes.numpy(), scores.numpy()

    return timed_rate(make_batches, lambda batch: len(batch[0]), min_seconds)


def measure_preset(preset, ks, pattern, work_dir, batch_size, repeats, num_readers, min_seconds):
    """Per model: median videos/s of the pipeline, the model alone and end to end.

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
        plain_samples.append(plain_read_rate(pattern, batch_size, num_readers, min_seconds))
        for name, _, _, reader, predict, cached in prepared:
            samples[name]["pipeline"].append(
                pipeline_rate(reader, pattern, batch_size, num_readers, min_seconds)
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


def format_table(report):
    """The report as a text table: videos/s and the teacher/student speed-ups."""
    plain = report["plain_read_videos_per_second"]
    lines = [
        f"plain TFRecord read: {plain:,.0f} videos/s "
        f"({report['num_videos']} videos, {report['frames_per_video']:.0f} frames on average, "
        f"batch {report['batch_size']})",
        "",
        f"{'preset':<7} {'model':<11} {'frames':>6} {'pipeline v/s':>13} {'of plain':>8} "
        f"{'model v/s':>10} {'end-to-end v/s':>15} {'speed-up':>8}",
    ]
    for preset, results in report["presets"].items():
        for entry in results:
            lines.append(
                f"{preset:<7} {entry['name']:<11} {entry['frames_per_video']:>6.1f} "
                f"{entry['pipeline_videos_per_second']:>13,.0f} "
                f"{entry['pipeline_of_plain_read']:>8.0%} "
                f"{entry['model_videos_per_second']:>10,.1f} "
                f"{entry['end_to_end_videos_per_second']:>15,.1f} "
                f"{entry['end_to_end_speedup']:>7.2f}x"
            )
    for name, row in report.get("memory", {}).items():
        lines.append(
            f"peak RSS of inference.py, {name}: {row['peak_rss_mib_1x']:,.0f} MiB on "
            f"{row['videos_1x']} videos, {row[f'peak_rss_mib_{MEMORY_DATA_COPIES}x']:,.0f} MiB on "
            f"{row[f'videos_{MEMORY_DATA_COPIES}x']} ({row['growth']:.2f}x)"
        )
    return "\n".join(lines)


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
):
    """Runs every measurement and writes `output_dir/benchmark.json`; returns the report."""
    if num_videos < 2 * batch_size:
        raise utils.UserInputError(
            f"--num_videos={num_videos} must be at least 2 batches (--batch_size={batch_size}): "
            "the first batch of each pass is not timed."
        )
    if repeats < 1:
        raise utils.UserInputError(f"--repeats={repeats} must be >= 1.")
    if min_seconds < 0:
        raise utils.UserInputError(f"--min_seconds={min_seconds} must be >= 0.")
    ks = parse_ks(ks)
    for preset in presets:
        if preset not in PRESETS:
            raise utils.UserInputError(f"--presets: unknown preset '{preset}' (small, paper).")
    data_dir = os.path.join(output_dir, f"data-{num_videos}videos")
    pattern = write_benchmark_data(data_dir, num_videos, num_classes=10)
    report = {
        "num_videos": num_videos,
        "batch_size": batch_size,
        "repeats": repeats,
        "min_seconds": min_seconds,
        "presets": {},
        "plain_read_samples": {},
        "tensorflow": tf.__version__,
        "cpu_count": os.cpu_count(),
    }
    work_dir = os.path.join(output_dir, "models")
    for preset in presets:
        results, plain_samples = measure_preset(
            preset, ks, pattern, work_dir, batch_size, repeats, num_readers, min_seconds
        )
        report["presets"][preset] = results
        report["plain_read_samples"][preset] = plain_samples
    every_plain_sample = [rate for rates in report["plain_read_samples"].values() for rate in rates]
    report["plain_read_videos_per_second"] = statistics.median(every_plain_sample)
    first = report["presets"][presets[0]]
    report["frames_per_video"] = first[0]["frames_per_video"]
    if measure_memory_too:
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
    utils.write_text_atomically(
        os.path.join(output_dir, "benchmark.json"), json.dumps(report, indent=2) + "\n"
    )
    return report


def main(unused_argv):
    flag_values = flags.FLAGS
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
        )
    print(format_table(report))
    print(f"Wrote {os.path.join(flag_values.output_dir, 'benchmark.json')}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
