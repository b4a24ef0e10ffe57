"""Evaluates the checkpoints of a --train_dir on a labelled data set with the Kaggle metrics.

    python eval.py --train_dir=/tmp/teacher --eval_data_pattern='data/validate*.tfrecord' \
        --run_once

The model is rebuilt from `train_dir/model_flags.json`. Each checkpoint is evaluated on the whole
set once: GAP (top-20, the Kaggle metric), Hit@1, PERR, mAP and the loss are printed, written to
`train_dir/eval_metrics.json` (replaced atomically) and to TensorBoard under `train_dir/eval`.
Without --run_once it waits for new checkpoints, as the starter does.
"""

import json
import os
import time

import tensorflow as tf
from absl import app, flags, logging

import distribution
import eval_util
import export_model
import losses
import readers
import utils

EVAL_METRICS_FILE = "eval_metrics.json"


def evaluate_checkpoint(
    train_dir,
    eval_data_pattern,
    checkpoint_path=None,
    batch_size=256,
    top_k=20,
    video_id_key="id",
    num_readers=4,
    corrupt_record_policy="fail",
    strategy=None,
):
    """Evaluates one checkpoint on every video matching `eval_data_pattern`.

    With several GPUs (or a given `strategy`) each batch is split over the replicas.

    Args:
      train_dir: directory written by train.py.
      eval_data_pattern: comma-separated globs of labelled TFRecords.
      checkpoint_path: the checkpoint; the latest in train_dir when None.
      batch_size: videos per batch.
      top_k: predictions per video counted by GAP.
      video_id_key: context key of the video id.
      num_readers: shards read in parallel.
      corrupt_record_policy: "fail" or "skip" (readers.py).
      strategy: a tf.distribute strategy to split batches over; None: several GPUs if found.

    Returns:
      dict with `gap`, `avg_hit_at_one`, `avg_perr`, `map`, `avg_loss`, `num_examples`,
      `global_step`, `checkpoint`, `eval_seconds`, `videos_per_second`, `skipped_records`
      (left out by the "skip" policy; 0 with "fail") and `skipped` (what they were).
    """
    strategy = strategy or distribution.inference_strategy()
    model, model_flags, checkpoint_path = export_model.restore_model(
        train_dir, checkpoint_path, strategy
    )
    reader = readers.reader_from_model_flags(
        model_flags, video_id_key=video_id_key, corrupt_record_policy=corrupt_record_policy
    )
    dataset, files = reader.make_dataset(
        eval_data_pattern, batch_size, num_readers=num_readers, flag_name="--eval_data_pattern"
    )
    label_loss_fn = getattr(losses, model_flags["label_loss"])()

    predict = distribution.predict_on_replicas(strategy, model)
    metrics = eval_util.EvaluationMetrics(model_flags["num_classes"], top_k, None)
    start = time.time()
    for batch in readers.iterate_batches(dataset, files, reader.skipped_records):
        outputs = predict(batch["video_matrix"], batch["num_frames"])
        loss = label_loss_fn.calculate_loss(
            outputs["predictions"], batch["labels"], logits=outputs["logits"]
        )
        metrics.accumulate(outputs["predictions"].numpy(), batch["labels"].numpy(), float(loss))
    elapsed = time.time() - start
    results = metrics.get()
    num_examples = int(results["num_examples"])
    if num_examples == 0:
        raise utils.UserInputError(f"--eval_data_pattern={eval_data_pattern} holds no videos.")
    return {
        "gap": float(results["gap"]),
        "avg_hit_at_one": float(results["avg_hit_at_one"]),
        "avg_perr": float(results["avg_perr"]),
        "map": float(results["map"]),
        "avg_loss": float(results["avg_loss"]),
        "num_examples": num_examples,
        "global_step": checkpoint_step(checkpoint_path),
        "checkpoint": checkpoint_path,
        "eval_seconds": elapsed,
        "videos_per_second": num_examples / max(elapsed, 1e-9),
        "skipped_records": reader.skipped_records.count,
        "skipped": reader.skipped_records.summary(),
    }


def checkpoint_step(checkpoint_path):
    """The step a CheckpointManager checkpoint was saved at (its `-N` suffix), or -1."""
    suffix = checkpoint_path.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def write_metrics(train_dir, metrics):
    """Writes `train_dir/eval_metrics.json` atomically and the scalars to TensorBoard."""
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    utils.write_text_atomically(os.path.join(train_dir, EVAL_METRICS_FILE), text)
    writer = tf.summary.create_file_writer(os.path.join(train_dir, "eval"))
    with writer.as_default(step=max(metrics["global_step"], 0)):
        for name in ("gap", "avg_hit_at_one", "avg_perr", "map", "avg_loss"):
            tf.summary.scalar(name, metrics[name])
    writer.flush()


def format_metrics(metrics):
    """One line with every metric."""
    return (
        f"step {metrics['global_step']} | {metrics['num_examples']} videos | "
        f"GAP {metrics['gap']:.4f} | Hit@1 {metrics['avg_hit_at_one']:.4f} | "
        f"PERR {metrics['avg_perr']:.4f} | mAP {metrics['map']:.4f} | "
        f"loss {metrics['avg_loss']:.4f}"
        + (
            f" | {metrics['skipped_records']} record(s) skipped"
            if metrics["skipped_records"]
            else ""
        )
    )


def run(train_dir, eval_data_pattern, run_once, timeout_secs=None, **evaluate_options):
    """Evaluates the latest checkpoint (run_once) or each new one as it appears.

    Returns:
      the metrics of the last checkpoint evaluated.

    Raises:
      utils.UserInputError: when no checkpoint appeared before the timeout.
    """
    if tf.io.gfile.isdir(train_dir):  # (it may not exist yet while training starts)
        utils.check_writable_dir(train_dir, "--train_dir")  # eval_metrics.json goes there
    if run_once:
        checkpoints = [None]
    else:
        checkpoints = tf.train.checkpoints_iterator(train_dir, timeout=timeout_secs)
    metrics = None
    for checkpoint_path in checkpoints:
        metrics = evaluate_checkpoint(
            train_dir, eval_data_pattern, checkpoint_path=checkpoint_path, **evaluate_options
        )
        write_metrics(train_dir, metrics)
        logging.info(format_metrics(metrics))
        print(format_metrics(metrics), flush=True)
    if metrics is None:
        raise utils.UserInputError(
            f"No checkpoint appeared in {train_dir} within --timeout_secs={timeout_secs}."
        )
    return metrics


def define_flags():
    flags.DEFINE_string("train_dir", "/tmp/yt8m_model/", "Directory written by train.py.")
    flags.DEFINE_string("eval_data_pattern", "", "File glob of the labelled TFRecords.")
    flags.DEFINE_bool("run_once", False, "Evaluate the latest checkpoint once and exit.")
    flags.DEFINE_integer("batch_size", 256, "Videos per batch.")
    flags.DEFINE_integer("top_k", 20, "Predictions per video counted by GAP.")
    flags.DEFINE_string("video_id_key", "id", "Context key of the video id.")
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.")
    flags.DEFINE_integer("timeout_secs", 0, "Stop waiting for checkpoints after this (0: never).")
    flags.DEFINE_enum(
        "corrupt_record_policy",
        "fail",
        readers.CORRUPT_RECORD_POLICIES,
        readers.CORRUPT_RECORD_POLICY_HELP,
    )


def main(unused_argv):
    flag_values = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    with utils.exit_on_user_error():
        if not flag_values.eval_data_pattern:
            raise utils.UserInputError("--eval_data_pattern is required.")
        if flag_values.batch_size < 1 or flag_values.top_k < 1:
            raise utils.UserInputError("--batch_size and --top_k must be >= 1.")
        run(
            flag_values.train_dir,
            flag_values.eval_data_pattern,
            flag_values.run_once,
            timeout_secs=flag_values.timeout_secs or None,
            batch_size=flag_values.batch_size,
            top_k=flag_values.top_k,
            video_id_key=flag_values.video_id_key,
            num_readers=flag_values.num_readers,
            corrupt_record_policy=flag_values.corrupt_record_policy,
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
