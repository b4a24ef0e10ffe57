"""The demo job (demo.py, `make demo`): on a synthetic data set in the YouTube-8M format, data,
train, eval, inference; deterministic, so a machine prints the same figures on every run.

1. writes a train and a validate split (SequenceExamples, rgb 1024 + audio 128 uint8 bytes
   per frame, 60 to 300 frames, labels caused by short events at random places; see
   datasets/synthetic.py)
2. trains a small HierarchicalTeacherModel on the train split (checkpoints in
   `output_dir/teacher`, resumable), with `--deterministic`: records in a fixed order and
   TensorFlow's op determinism on, so the seed fixes the run
3. evaluates it on the validate split (`output_dir/teacher/eval_metrics.json`)
4. writes the Kaggle CSV for the validate split (`output_dir/predictions.csv`)

and returns the metrics; `results_lines` formats them as demo.py prints them and README shows
them (`results/demo.json`, written by demo.py into its output directory and imported with
`results_report.py --import_demo`). The same steps with the CLIs are in the README.
"""

import os
import time

import eval_util
import utils
from datasets import synthetic
from runs import config
from serving import evaluator, predictor
from training import tasks, trainer


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
        deterministic=True,
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


# What the demo prints and README shows: the validation metrics, in this order.
RESULTS_HEADER = "=== demo results (synthetic validate split) ==="


def results_lines(metrics):
    """The demo's results as it prints them: the header, then one line per metric."""
    lines = [RESULTS_HEADER]
    lines += [f"  {name:<15s} {metrics[name]:.4f}" for name in eval_util.METRIC_LABELS]
    lines.append(f"  videos          {metrics['num_examples']}")
    return lines


def results_record(metrics, settings, seconds):
    """demo_results.json: the metrics with the settings, the commit and the machine of the run."""
    return {
        "metrics": {name: metrics[name] for name in (*eval_util.METRIC_LABELS, "num_examples")},
        "settings": settings,
        "seconds": round(seconds, 1),
        "commit": utils.source_commit(),
        "machine": utils.machine_facts(),
    }
