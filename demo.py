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

import importlib
import os
import time

from absl import app, flags, logging

import inference
import synthetic_data
import train
import utils

evaluation = importlib.import_module("eval")  # eval.py, named as in the starter

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "demo_out", "Where data, checkpoints and outputs go.")
flags.DEFINE_integer("num_train_videos", 1600, "Videos in the synthetic train split.")
flags.DEFINE_integer("num_validate_videos", 400, "Videos in the synthetic validate split.")
flags.DEFINE_integer("num_classes", 10, "Classes of the synthetic data set.")
flags.DEFINE_integer("lstm_cells", 64, "Cells per LSTM layer of the demo teacher.")
flags.DEFINE_integer("num_epochs", 4, "Passes over the train split.")
flags.DEFINE_integer("batch_size", 32, "Videos per training batch.")
flags.DEFINE_float("base_learning_rate", 0.003, "Initial learning rate.")
flags.DEFINE_integer("seed", 1, "Seed of the data and of the model.")


def generate_data(output_dir, num_train_videos, num_validate_videos, num_classes, seed):
    """Writes both splits unless they exist; returns their file patterns."""
    patterns = {}
    for split, num_videos in (("train", num_train_videos), ("validate", num_validate_videos)):
        # One directory per configuration: changing a flag never mixes in older shards.
        split_dir = os.path.join(
            output_dir, "data", f"{split}-{num_videos}videos-{num_classes}classes-seed{seed}"
        )
        patterns[split] = os.path.join(split_dir, f"{split}-*.tfrecord")
        marker = os.path.join(split_dir, "COMPLETE")
        if os.path.exists(marker):
            print(f"[data] {split}: reusing {patterns[split]}", flush=True)
            continue
        start = time.time()
        num_shards = max(1, min(8, num_videos // 150))
        synthetic_data.write_dataset(
            split_dir, num_videos, num_shards, num_classes, seed=seed, split=split
        )
        with open(marker, "w") as handle:
            handle.write("written\n")
        print(
            f"[data] {split}: {num_videos} videos in {num_shards} shards "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
    return patterns


def main(unused_argv):
    logging.set_verbosity(logging.INFO)
    output_dir = FLAGS.output_dir
    start = time.time()
    with utils.exit_on_user_error():
        patterns = generate_data(
            output_dir,
            FLAGS.num_train_videos,
            FLAGS.num_validate_videos,
            FLAGS.num_classes,
            FLAGS.seed,
        )
        train_dir = os.path.join(output_dir, "teacher")
        model_flags = train.normalise_model_flags(
            {
                "model": "HierarchicalTeacherModel",
                "frame_features": True,
                "feature_names": "rgb,audio",
                "feature_sizes": "1024,128",
                "num_classes": FLAGS.num_classes,
                "max_frames": 300,
                "frame_stride": 1,
                "frame_sampling": "uniform",
                "frame_sampling_seed": 0,
                "lstm_cells": FLAGS.lstm_cells,
                "lstm_layers": 2,
                "dropout": 0.5,
                "block_size": 20,
                "l2_penalty": 1e-8,
                "label_loss": "CrossEntropyLoss",
                "distill_mode": "final",
                "distill_weight": 10.0,
                "intermediate_weight": 1.0,
                "teacher_block_size": 20,
            }
        )
        steps_per_epoch = -(-FLAGS.num_train_videos // FLAGS.batch_size)
        options = train.TrainOptions(
            train_data_pattern=patterns["train"],
            train_dir=train_dir,
            batch_size=FLAGS.batch_size,
            base_learning_rate=FLAGS.base_learning_rate,
            num_epochs=FLAGS.num_epochs,
            checkpoint_steps=steps_per_epoch,
            max_steps=FLAGS.num_epochs * steps_per_epoch,  # a rerun does not train further
            log_every_n_steps=10,
            seed=FLAGS.seed,
        )
        try:
            model_flags = train.resolve_model_flags(
                train_dir, model_flags, set(model_flags), start_new_model=False
            )
        except utils.UserInputError:
            print(f"[train] the demo's flags changed: a new model in {train_dir}", flush=True)
            options.start_new_model = True
        print(
            f"[train] HierarchicalTeacherModel, {FLAGS.num_epochs} epochs of "
            f"{steps_per_epoch} steps, checkpoints in {train_dir}",
            flush=True,
        )
        trained = train.train(options, model_flags)
        print(f"[train] done at step {trained['global_step']}", flush=True)

        metrics = evaluation.run(train_dir, patterns["validate"], run_once=True, batch_size=64)
        print(f"[eval] {evaluation.format_metrics(metrics)}", flush=True)

        output_file = os.path.join(output_dir, "predictions.csv")
        written = inference.run_inference(
            patterns["validate"], output_file, train_dir=train_dir, batch_size=64
        )
        print(f"[inference] {written['num_videos']} videos -> {output_file}", flush=True)

    with open(output_file) as handle:
        head = handle.read().splitlines()[:3]
    print("\n=== demo results (synthetic validate split) ===")
    for name in ("gap", "avg_hit_at_one", "avg_perr", "map", "avg_loss"):
        print(f"  {name:<15s} {metrics[name]:.4f}")
    print(f"  videos          {metrics['num_examples']}")
    print(f"  metrics file    {os.path.join(train_dir, evaluation.EVAL_METRICS_FILE)}")
    print(f"  Kaggle CSV      {output_file}")
    for line in head:
        print(f"    {line[:96]}")
    print(f"  total time      {time.time() - start:.0f} s")


if __name__ == "__main__":
    app.run(main)
