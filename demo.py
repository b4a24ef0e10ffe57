"""Command line: the whole job on a synthetic data set in the YouTube-8M format: data, train,
eval, inference (experiments/demo_job.py).

    python demo.py --output_dir=demo_out        (what `make demo` runs)

Prints the metrics and writes them, with the commit and the machine, to
`output_dir/demo_results.json`.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import json
import os
import time

from absl import flags, logging

import utils
from experiments import demo_job
from serving import evaluator

RESULTS_FILE = "demo_results.json"


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "output_dir", "demo_out", "Where data, checkpoints and outputs go.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "num_train_videos", 1600, "Videos in the synthetic train split.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "num_validate_videos",
        400,
        "Videos in the synthetic validate split.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_classes", 10, "Classes of the synthetic data set.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "lstm_cells", 64, "Cells per LSTM layer of the demo teacher.", flag_values=flag_values
    )
    flags.DEFINE_integer("num_epochs", 4, "Passes over the train split.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 32, "Videos per training batch.", flag_values=flag_values)
    flags.DEFINE_float(
        "base_learning_rate", 0.003, "Initial learning rate.", flag_values=flag_values
    )
    flags.DEFINE_integer("seed", 1, "Seed of the data and of the model.", flag_values=flag_values)


def main(unused_argv):
    logging.set_verbosity(logging.INFO)
    flag_values = flags.FLAGS
    start = time.time()
    with utils.exit_on_user_error():
        settings = {
            "num_train_videos": flag_values.num_train_videos,
            "num_validate_videos": flag_values.num_validate_videos,
            "num_classes": flag_values.num_classes,
            "lstm_cells": flag_values.lstm_cells,
            "num_epochs": flag_values.num_epochs,
            "batch_size": flag_values.batch_size,
            "base_learning_rate": flag_values.base_learning_rate,
            "seed": flag_values.seed,
        }
        metrics, output_file = demo_job.run_demo(
            flag_values.output_dir, report=lambda line: print(line, flush=True), **settings
        )
        record = demo_job.results_record(metrics, settings, time.time() - start)
        results_file = os.path.join(flag_values.output_dir, RESULTS_FILE)
        utils.write_text_atomically(results_file, json.dumps(record, indent=1) + "\n")
    with open(output_file) as handle:
        head = handle.read().splitlines()[:3]
    print()
    for line in demo_job.results_lines(metrics):
        print(line)
    train_dir = os.path.join(flag_values.output_dir, "teacher")
    print(f"  metrics file    {os.path.join(train_dir, evaluator.EVAL_METRICS_FILE)}")
    print(f"  Kaggle CSV      {output_file}")
    for line in head:
        print(f"    {line[:96]}")
    print(f"  results file    {results_file}")
    print(f"  total time      {time.time() - start:.0f} s")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
