"""Command line: inference speed and memory of the teacher and the students, side by side.

    python benchmark.py --output_dir=benchmark_out          (what `make bench` runs)
    python benchmark.py --quick --output_dir=/tmp/bq        (`make bench-quick`, about 1 min)

What is measured and how: experiments/benchmark_suite.py.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os

from absl import flags

import utils
from experiments import benchmark_input, benchmark_report
from experiments.benchmark_suite import QUICK_SETTINGS, run_benchmark
from runs import config


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
    flags.DEFINE_list(
        "families",
        list(config.FAMILIES),
        "Model families measured: each one's teacher and student-10 (hierarchical: every k).",
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
        benchmark_input.DEFAULT_GPU_MEASUREMENTS,
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
    flags.DEFINE_list(
        "litert_presets",
        ["small", "paper"],
        "Model sizes whose teacher and student-10 are exported to LiteRT with each quantization "
        "and measured on one thread (the small ones trained for GAP); empty: none.",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "adaptive_presets",
        ["small", "paper"],
        "Model sizes whose NeXtVLAD student-10 is measured end to end with exit stages (the "
        "shares of videos stopping after each stage set as the trained student's on the proxy) "
        "against the same student reading every frame, from the records and from its frame "
        "cache; empty: none.",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "adaptive_batch_sizes",
        ["64", "256"],
        "Videos per batch at which the adaptive student is measured: --batch_size's default and "
        "inference.py's and eval.py's default (its stages cost per batch as well as per video).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "litert_latency_calls",
        30,
        "Timed calls of each LiteRT model (median and 95th percentile reported).",
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
            quick=flag_values.quick,
            families=flag_values.families,
            litert_presets=flag_values.litert_presets,
            litert_options={"latency_calls": flag_values.litert_latency_calls},
            adaptive_presets=flag_values.adaptive_presets,
            adaptive_batch_sizes=flag_values.adaptive_batch_sizes,
        )
    print(benchmark_report.benchmark_markdown(report))
    print(f"Wrote {os.path.join(flag_values.output_dir, 'benchmark.json')}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
