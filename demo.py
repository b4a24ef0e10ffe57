"""The whole job on a synthetic data set in the YouTube-8M format: data, train, eval, inference.

    python demo.py --output_dir=demo_out        (what `make demo` runs)

1. writes a train and a validate split (SequenceExamples, rgb 1024 + audio 128 uint8 bytes per
   frame, 60 to 300 frames, labels caused by short events at random places; see synthetic_data.py)
2. trains a small HierarchicalTeacherModel on the train split (checkpoints in
   `output_dir/teacher`, resumable)
3. evaluates it on the validate split (`output_dir/teacher/eval_metrics.json`)
4. writes the Kaggle CSV for the validate split (`output_dir/predictions.csv`)

and prints the metrics. The same steps with the CLIs are in the README.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os
import time

from absl import flags, logging

import eval_util
import utils
from datasets import synthetic
from runs import config
from serving import evaluator, predictor
from training import tasks, trainer


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


def generate_data(
    output_dir, num_train_videos, num_validate_videos, num_classes, seed, report=print
):
    """Writes both splits unless they exist; returns their file patterns. `report` takes each
    progress line."""
    patterns = {}
    for split, num_videos in (("train", num_train_videos), ("validate", num_validate_videos)):
        # One directory per configuration: changing a flag never mixes in older shards.
        split_dir = os.path.join(
            output_dir, "data", f"{split}-{num_videos}videos-{num_classes}classes-seed{seed}"
        )
        patterns[split] = os.path.join(split_dir, f"{split}-*.tfrecord")
        marker = os.path.join(split_dir, "COMPLETE")
        if os.path.exists(marker):
            report(f"[data] {split}: reusing {patterns[split]}")
            continue
        start = time.time()
        num_shards = max(1, min(8, num_videos // 150))
        synthetic.write_dataset(
            split_dir, num_videos, num_shards, num_classes, seed=seed, split=split
        )
        with open(marker, "w") as handle:
            handle.write("written\n")
        report(
            f"[data] {split}: {num_videos} videos in {num_shards} shards "
            f"({time.time() - start:.0f} s)"
        )
    return patterns


def run_demo(
    output_dir,
    num_train_videos=1600,
    num_validate_videos=400,
    num_classes=10,
    lstm_cells=64,
    num_epochs=4,
    batch_size=32,
    base_learning_rate=0.003,
    seed=1,
    report=print,
):
    """The whole job; returns the eval metrics and the CSV's path. `report` takes each line."""
    patterns = generate_data(
        output_dir, num_train_videos, num_validate_videos, num_classes, seed, report
    )
    train_dir = os.path.join(output_dir, "teacher")
    run_config = config.RunConfig(
        model="HierarchicalTeacherModel",
        num_classes=num_classes,
        lstm_cells=lstm_cells,
        lstm_layers=2,
        block_size=20,
    )
    steps_per_epoch = -(-num_train_videos // batch_size)
    options = config.TrainOptions(
        train_data_pattern=patterns["train"],
        train_dir=train_dir,
        batch_size=batch_size,
        base_learning_rate=base_learning_rate,
        num_epochs=num_epochs,
        checkpoint_steps=steps_per_epoch,
        log_every_n_steps=10,
        seed=seed,
    )
    try:
        run_config = config.resolve_run_config(
            train_dir, run_config, set(config.RunConfig.flag_names()), start_new_model=False
        )
    except utils.UserInputError:
        report(f"[train] the demo's flags changed: a new model in {train_dir}")
        options = options.replace(start_new_model=True)
    report(
        f"[train] HierarchicalTeacherModel, {num_epochs} epochs of {steps_per_epoch} steps, "
        f"checkpoints in {train_dir}"
    )
    trained = trainer.train(tasks.make_task(run_config), options)
    report(f"[train] done at step {trained['global_step']}")

    metrics = evaluator.evaluate_checkpoints(
        train_dir, patterns["validate"], run_once=True, batch_size=64
    )
    report(f"[eval] {evaluator.format_metrics(metrics)}")

    output_file = os.path.join(output_dir, "predictions.csv")
    written = predictor.run_inference(
        patterns["validate"], output_file, train_dir=train_dir, batch_size=64
    )
    report(f"[inference] {written['num_videos']} videos -> {output_file}")
    return metrics, output_file


def main(unused_argv):
    logging.set_verbosity(logging.INFO)
    flag_values = flags.FLAGS
    start = time.time()
    with utils.exit_on_user_error():
        metrics, output_file = run_demo(
            flag_values.output_dir,
            num_train_videos=flag_values.num_train_videos,
            num_validate_videos=flag_values.num_validate_videos,
            num_classes=flag_values.num_classes,
            lstm_cells=flag_values.lstm_cells,
            num_epochs=flag_values.num_epochs,
            batch_size=flag_values.batch_size,
            base_learning_rate=flag_values.base_learning_rate,
            seed=flag_values.seed,
            report=lambda line: print(line, flush=True),
        )
    with open(output_file) as handle:
        head = handle.read().splitlines()[:3]
    print("\n=== demo results (synthetic validate split) ===")
    for name in eval_util.METRIC_LABELS:
        print(f"  {name:<15s} {metrics[name]:.4f}")
    print(f"  videos          {metrics['num_examples']}")
    train_dir = os.path.join(flag_values.output_dir, "teacher")
    print(f"  metrics file    {os.path.join(train_dir, evaluator.EVAL_METRICS_FILE)}")
    print(f"  Kaggle CSV      {output_file}")
    for line in head:
        print(f"    {line[:96]}")
    print(f"  total time      {time.time() - start:.0f} s")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
