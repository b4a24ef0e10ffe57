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
  model and top-k of `predictor.checkpoint_predictor`, results to numpy), from the TFRecords,
  with inference's input options (cpu_inference.py).

Every figure is the median of `--repeats` repeats; within a repeat the plain read and all
models are measured one after the other, so drift in the machine's speed affects them alike.
A measurement passes over the data as often as it takes to time at least `--min_seconds`; the
first batch of every pass is not timed, and every model is traced on all batch shapes before.
Models have random weights: speed does not depend on them.

Memory: `inference.py` runs in a child process on the data and on 4x the data (the same shards
listed four times under other names), for the teacher and the student at k = 10 of the first
preset; its peak RSS must not grow with the number of videos (inference streams).

With the small preset's teacher and student-10, it also measures the input for a GPU (`input`,
and the projection `gpu_projection`: benchmark_input.py, where the timer and the readers' rates
above live too) and training step times (`training`: benchmark_training.py). For the presets of
`litert_presets`, the teacher and student-10 exported to LiteRT with each quantization: size,
score difference, GAP of the trained small models, one-thread latency and peak memory
(`litert`: benchmark_litert.py).

    python benchmark.py --quick --output_dir=/tmp/bq        (`make bench-quick`, about 1 min)

Writes `benchmark.json` (with the commit and the machine) and prints a table with the
teacher/student ratios.
"""

import json
import os
import statistics
import subprocess
import sys

import tensorflow as tf
from absl import logging

import model_zoo
import utils
from datasets import synthetic
from experiments import (
    benchmark_adaptive,
    benchmark_input,
    benchmark_litert,
    benchmark_models,
    benchmark_training,
)
from runs import config
from serving import predictor

NUM_SHARDS = 8
# What --quick sets (it overrides these flags).
QUICK_SETTINGS = {
    "num_videos": 128,
    "repeats": 1,
    "min_seconds": 0.3,
    "presets": ["small"],
    "ks": [str(benchmark_training.STUDENT_K)],
    "measure_memory": False,
    "train_epochs": 2,
    "litert_presets": [],
    "adaptive_presets": [],
}
MEMORY_DATA_COPIES = 4


def parse_batch_sizes(values, num_videos):
    """`--adaptive_batch_sizes` -> ints, each at most half of `num_videos`.

    Raises:
      utils.UserInputError: naming the flag and the value.
    """
    sizes = []
    for value in values:
        try:
            size = int(value)
        except ValueError:
            size = 0
        if size < 1 or 2 * size > num_videos:
            raise utils.UserInputError(
                f"--adaptive_batch_sizes: '{value}' must be a number of videos from 1 to half of "
                f"--num_videos={num_videos} (the first batch of each pass is not timed)."
            )
        sizes.append(size)
    return sizes


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


def write_benchmark_data(data_dir, num_videos, num_classes):
    """The synthetic set (written once; a COMPLETE marker says it is whole); returns its pattern."""
    pattern = os.path.join(data_dir, "bench-*.tfrecord")
    marker = os.path.join(data_dir, "COMPLETE")
    if not tf.io.gfile.exists(marker):
        spec = synthetic.SyntheticDatasetSpec(min_frames=120, max_frames=300)
        synthetic.write_dataset(
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


def measure_preset(
    preset,
    ks,
    pattern,
    work_dir,
    batch_size,
    repeats,
    num_readers,
    min_seconds,
    reader_epochs=1,
    family="hierarchical",
):
    """Per model of `family`: median videos/s of the pipeline, the model alone and end to end,
    and its cost (`benchmark_models.model_cost`).

    A timed pass of a reader alone (the plain read, `pipeline`) reads the data `reader_epochs`
    times.

    Each repeat first times a plain TFRecord read of the same shards, then every model in turn,
    so that a pipeline's rate is compared with a plain read taken minutes, not an hour, apart.

    Returns:
      (per-model result dicts, teacher first; the plain read's samples in videos/s).
    """
    entries = benchmark_models.benchmark_models(preset, ks, family)
    prepared = []
    for name, run_config in entries:
        place = name if family == "hierarchical" else f"{family}-{name}"
        train_dir = benchmark_models.save_untrained(
            run_config, os.path.join(work_dir, preset, place)
        )
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
            benchmark_input.plain_read_rate(
                pattern, batch_size, num_readers, min_seconds, reader_epochs
            )
        )
        for name, _, _, reader, predict, cached in prepared:
            samples[name]["pipeline"].append(
                benchmark_input.pipeline_rate(
                    reader, pattern, batch_size, num_readers, min_seconds, reader_epochs
                )
            )
            samples[name]["model"].append(benchmark_input.model_rate(predict, cached, min_seconds))
            samples[name]["end_to_end"].append(
                benchmark_input.end_to_end_rate(
                    reader, predict, pattern, batch_size, num_readers, min_seconds
                )
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
            **benchmark_models.model_cost(model_zoo.build_model(run_config), cached),
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


# Memory: inference's peak RSS, in a child process, on the data and on copies of it.


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
        os.path.join(utils.REPO_DIR, "inference.py"),
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
    gpu_measurements=benchmark_input.DEFAULT_GPU_MEASUREMENTS,
    train_epochs=0,
    train_batch_size=48,
    train_sizes=None,
    reader_pass_videos=benchmark_input.READER_PASS_VIDEOS,
    quick=False,
    families=tuple(config.FAMILIES),
    litert_presets=(),
    litert_options=None,
    adaptive_presets=(),
    adaptive_batch_sizes=(),
):
    """Runs every measurement and writes `output_dir/benchmark.json`; returns the report.

    Besides the hierarchical models of each preset, each of the other `families` is measured
    (its teacher and student-10, `families` in the report, per family and preset).

    `presets` may be empty (no inference measurement); `measure_input_too` measures the readers
    (`input`, and `gpu_projection` when `gpu_measurements` exists); `train_epochs` > 0 times
    training (`training`) at `train_batch_size`, with the model sizes `train_sizes` (RunConfig
    fields; the small preset's when None). A timed pass of a reader alone reads the data as
    often as it takes to give `reader_pass_videos` videos. `quick` marks the report as
    benchmark.py --quick's (QUICK_SETTINGS), so that its table says so. `litert_presets` are
    measured as device models (`litert`; `litert_options`: benchmark_litert.measure_litert's
    keyword arguments). For `adaptive_presets`, the NeXtVLAD student-10 with exit stages against
    the same student reading every frame (`adaptive`: benchmark_adaptive.py), at each of
    `adaptive_batch_sizes` (none: `batch_size`).
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
    families = benchmark_models.parse_families(families)
    for preset in presets:
        if preset not in benchmark_models.PRESETS:
            raise utils.UserInputError(f"--presets: unknown preset '{preset}' (small, paper).")
    for flag, chosen in (
        ("--litert_presets", litert_presets),
        ("--adaptive_presets", adaptive_presets),
    ):
        for preset in chosen:
            if preset not in benchmark_models.PRESETS:
                raise utils.UserInputError(f"{flag}: unknown preset '{preset}' (small, paper).")
    if adaptive_presets:
        adaptive_batch_sizes = parse_batch_sizes(adaptive_batch_sizes, num_videos)
    data_dir = os.path.join(output_dir, f"data-{num_videos}videos")
    pattern = write_benchmark_data(data_dir, num_videos, num_classes=10)
    machine = utils.machine_facts()
    report = {
        "commit": utils.source_commit(),
        "machine": machine,
        "num_videos": num_videos,
        "reader_epochs_per_pass": benchmark_input.epochs_per_pass(num_videos, reader_pass_videos),
        "batch_size": batch_size,
        "repeats": repeats,
        "quick": quick,
        "min_seconds": min_seconds,
        "presets": {},
        "plain_read_samples": {},
        "tensorflow": machine["tensorflow"],
        "cpu_count": machine["cpu_count"],
        "cores": machine["cores"],
    }
    if measure_input_too:
        teacher_config, student_config = benchmark_training.training_configs(
            benchmark_models.PRESETS["small"]
        )
        cache_pattern = benchmark_input.write_student_cache(
            pattern,
            os.path.join(output_dir, f"cache-{num_videos}videos-k{benchmark_training.STUDENT_K}"),
            student_config,
        )
        report["input"] = benchmark_input.measure_input(
            pattern,
            cache_pattern,
            teacher_config,
            student_config,
            batch_size,
            repeats,
            num_readers,
            min_seconds,
            benchmark_input.epochs_per_pass(num_videos, reader_pass_videos),
        )
        gpu_rates = benchmark_input.load_gpu_rates(gpu_measurements)
        if gpu_rates:
            report["gpu_projection"] = benchmark_input.project_to_gpu(
                report["input"], gpu_rates, host_cores
            )
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
            benchmark_input.epochs_per_pass(num_videos, reader_pass_videos),
        )
        report["presets"][preset] = results
        report["plain_read_samples"][preset] = plain_samples
        for family in families:
            if family == "hierarchical":
                continue
            family_results, _ = measure_preset(
                preset,
                ks,
                pattern,
                work_dir,
                batch_size,
                repeats,
                num_readers,
                min_seconds,
                benchmark_input.epochs_per_pass(num_videos, reader_pass_videos),
                family=family,
            )
            report.setdefault("families", {}).setdefault(family, {})[preset] = family_results
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
        report["training"] = benchmark_training.measure_training(
            pattern,
            os.path.join(output_dir, "training"),
            train_sizes or benchmark_models.PRESETS["small"],
            train_batch_size,
            train_epochs,
            num_readers,
        )
    if litert_presets:
        report["litert"] = benchmark_litert.measure_litert(
            pattern, os.path.join(output_dir, "litert"), litert_presets, **(litert_options or {})
        )
    if adaptive_presets:
        report["adaptive"] = benchmark_adaptive.measure_adaptive(
            pattern,
            os.path.join(output_dir, "adaptive"),
            adaptive_presets,
            list(adaptive_batch_sizes) or [batch_size],
            num_readers,
            min_seconds,
            repeats,
        )
    utils.write_text_atomically(
        os.path.join(output_dir, "benchmark.json"), json.dumps(report, indent=2) + "\n"
    )
    return report
