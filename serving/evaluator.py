"""Evaluates a trained model's checkpoints on a labelled data set with the Kaggle metrics.

    metrics = evaluator.evaluate_checkpoint(train_dir, "data/validate*.tfrecord")

The model is rebuilt from `train_dir/model_flags.json` (checkpoints.py) and reads the frames it
was trained on (readers.py), here or through tf.data service (data_service_input.py, which
hands each file to one of its workers: every video once, barring a service worker's failure).
Each checkpoint is evaluated on the whole set once with `eval_util.EvaluationMetrics`, whose
metrics are passed through as they are (GAP at top-20, the Kaggle metric, Hit@1, PERR, mAP, the
per-class APs and the loss); `write_metrics` writes them to `train_dir/eval_metrics.json`
(replaced atomically) and to TensorBoard under `train_dir/eval`.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

import eval_util
import losses
import readers
import utils
from pipeline import corrupt_records, data_service_input
from runs import checkpoints, distribution
from serving import cpu_inference, early_exit

EVAL_METRICS_FILE = "eval_metrics.json"
PROGRESS_SECONDS = 30.0  # a progress line at most this often while a checkpoint is evaluated


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
    tf_data_service_address="",
    tf_data_service_job_name="",
    exit_threshold=-1.0,
    clock=time.monotonic,
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
      corrupt_record_policy: "fail" or "skip" (corrupt_records.py).
      strategy: a tf.distribute strategy to split batches over; None: several GPUs if found.
      tf_data_service_address: `grpc://host:port` of a tf.data service dispatcher that reads
        and parses the data (data_service_input.py); "": read here. The files are handed out
        to its workers one at a time (DYNAMIC sharding), so every video is evaluated exactly
        once unless a service worker fails (its files' videos are then missing, and
        `num_examples` says so).
      tf_data_service_job_name: the service job's name, with the checkpoint's name appended
        (each checkpoint gets its own job); "": a new name for each evaluation. Two
        evaluations given the same name at the same time would split the videos.
      exit_threshold: for a model that reads in stages (--exit_stages), the agreement target
        of its exit rule (early_exit.py; calibrated by train.py): each video stops after the
        first stage that reaches it. Below 0: every stage is read.
      clock: seconds, for the timing (injectable).

    Returns:
      `EvaluationMetrics.get()`'s dict (gap, avg_hit_at_one, avg_perr, map, aps, avg_loss,
      num_examples) plus `global_step`, `checkpoint`, `eval_seconds`, `videos_per_second`,
      `mean_frames_read`, `skipped_records` (left out by the "skip" policy; 0 with "fail") and
      `skipped` (what); with an exit rule, `exit_threshold`, `exit_thresholds` (the confidence
      of each stage) and `exit_stage_shares` (the share of videos that stopped after each).
    """
    data_service_input.check_service_options(tf_data_service_address, corrupt_record_policy)
    strategy = strategy or distribution.inference_strategy()
    model, config, checkpoint_path = checkpoints.restore_model(train_dir, checkpoint_path, strategy)
    reader = readers.reader_for(
        config, video_id_key=video_id_key, corrupt_record_policy=corrupt_record_policy
    )
    dataset, files = reader.make_dataset(
        eval_data_pattern, batch_size, num_readers=num_readers, flag_name="--eval_data_pattern"
    )
    if tf_data_service_address:
        checkpoint_name = os.path.basename(checkpoint_path)
        job_name = data_service_input.read_once_job_name(
            tf_data_service_job_name and f"{tf_data_service_job_name}-{checkpoint_name}", "eval"
        )
        dataset = data_service_input.distribute_dataset(dataset, tf_data_service_address, job_name)
    else:
        dataset = cpu_inference.input_dataset(dataset)
    exit_rule = {}
    if exit_threshold >= 0:
        predict = early_exit.exit_predictor(train_dir, model, config, exit_threshold)
        exit_rule = {"exit_threshold": exit_threshold, "exit_thresholds": predict.thresholds}
    else:
        predict = cpu_inference.predict_function(
            model, distribution.predict_on_replicas(strategy, model)
        )
    results = evaluate_predictions(
        predict,
        config,
        reader,
        dataset,
        files,
        eval_data_pattern,
        checkpoint_path,
        top_k,
        video_id_key,
        clock,
    )
    results.update(
        global_step=checkpoints.checkpoint_step(checkpoint_path),
        checkpoint=checkpoint_path,
        **exit_rule,
    )
    return results


def evaluate_predictions(
    predict, config, reader, dataset, files, data_pattern, name, top_k, video_id_key, clock
):
    """The metrics of `predict(video_matrix, num_frames)` -> `{predictions, logits}` over every
    batch of `dataset` (read by `reader` from `files`, matching `data_pattern`); `name` is the
    model in progress lines.

    Returns:
      `EvaluationMetrics.get()`'s dict plus `eval_seconds`, `videos_per_second`,
      `skipped_records` and `skipped`.
    """
    label_loss_fn = losses.LOSSES.get(config.label_loss)()
    metrics = eval_util.EvaluationMetrics(config.num_classes, top_k, None)
    start = last_progress = clock()
    estimated_videos = None  # estimated at the first progress line: a short eval never pays
    batches = corrupt_records.iterate_batches(
        dataset, files, reader.skipped_records, video_id_key=video_id_key
    )
    frames_read = 0
    exit_stages = np.zeros([config.exit_stages], np.int64)
    for batch in batches:
        outputs = predict(batch["video_matrix"], batch["num_frames"])
        # A model that stops videos early says what it read; the others read every frame given.
        frames_read += int(np.sum(outputs.get("frames_read", batch["num_frames"])))
        if "exit_stage" in outputs:
            exit_stages += np.bincount(outputs["exit_stage"], minlength=config.exit_stages)
        loss = label_loss_fn.calculate_loss(
            tf.convert_to_tensor(outputs["predictions"]),
            batch["labels"],
            logits=tf.convert_to_tensor(outputs["logits"]),
        )
        metrics.accumulate(np.asarray(outputs["predictions"]), batch["labels"].numpy(), float(loss))
        now = clock()
        if now - last_progress >= PROGRESS_SECONDS:
            last_progress = now
            if estimated_videos is None:
                estimated_videos = estimate_video_count(files) or 0
            logging.info(
                "Evaluating %s: %s",
                name,
                describe_progress(metrics.num_examples, now - start, estimated_videos),
            )
    elapsed = clock() - start
    if metrics.num_examples == 0:
        raise utils.UserInputError(f"--eval_data_pattern={data_pattern} holds no videos.")
    results = metrics.get()
    results.update({name: float(results[name]) for name in eval_util.METRIC_LABELS})
    results.update(
        num_examples=int(results["num_examples"]),
        eval_seconds=elapsed,
        videos_per_second=results["num_examples"] / max(elapsed, 1e-9),
        mean_frames_read=frames_read / results["num_examples"],
        skipped_records=reader.skipped_records.count,
        skipped=reader.skipped_records.summary(),
    )
    if exit_stages.sum():
        results["exit_stage_shares"] = (exit_stages / exit_stages.sum()).tolist()
    return results


def evaluate_litert(
    litert_model,
    eval_data_pattern,
    batch_size=256,
    top_k=20,
    video_id_key="id",
    num_readers=4,
    corrupt_record_policy="fail",
    clock=time.monotonic,
):
    """Evaluates a LiteRT model (a .tflite file of export_model.py --format=litert) on every
    video matching `eval_data_pattern`, read through the frame selection of the model_flags.json
    beside it; `evaluate_checkpoint`'s metrics, with `global_step` the exported checkpoint's
    (-1 when unknown) and `checkpoint` the .tflite file."""
    from serving import litert_export  # LiteRT is loaded only when a .tflite is evaluated

    model, run_config, info = litert_export.load_litert(litert_model)
    reader = readers.reader_for(
        run_config, video_id_key=video_id_key, corrupt_record_policy=corrupt_record_policy
    )
    dataset, files = reader.make_dataset(
        eval_data_pattern, batch_size, num_readers=num_readers, flag_name="--eval_data_pattern"
    )
    dataset = cpu_inference.input_dataset(dataset)
    results = evaluate_predictions(
        model.predict,
        run_config,
        reader,
        dataset,
        files,
        eval_data_pattern,
        litert_model,
        top_k,
        video_id_key,
        clock,
    )
    exported = info.get("checkpoint") or ""
    results.update(
        global_step=checkpoints.checkpoint_step(exported) if exported else -1,
        checkpoint=litert_model,
        quantization=info.get("quantization", ""),
    )
    return results


def estimate_video_count(files):
    """About how many videos `files` hold: the records of the first file, scaled by the bytes
    of all of them (YouTube-8M's shards hold videos of similar sizes); one plain read of one
    file. None when the first file cannot be read or is empty."""
    try:
        sizes = [tf.io.gfile.stat(path).length for path in files]
        first_count = int(
            tf.data.TFRecordDataset(files[0]).reduce(np.int64(0), lambda count, _: count + 1)
        )
    except (tf.errors.OpError, IndexError):
        return None
    if not sizes[0] or not first_count:
        return None
    return max(1, round(first_count * sum(sizes) / sizes[0]))


def describe_progress(videos_done, seconds, estimated_videos):
    """'N videos, R videos/s' and, with an estimate of all the videos, 'of about M' and the
    time left at the rate so far."""
    rate = videos_done / max(seconds, 1e-9)
    if not estimated_videos or estimated_videos <= videos_done:
        return f"{videos_done} videos, {rate:.1f} videos/s"
    seconds_left = (estimated_videos - videos_done) / max(rate, 1e-9)
    minutes, seconds_left = divmod(round(seconds_left), 60)
    left = f"{minutes} min {seconds_left} s" if minutes else f"{seconds_left} s"
    return (
        f"{videos_done} of about {estimated_videos} videos, {rate:.1f} videos/s, about {left} left"
    )


def write_metrics(train_dir, metrics):
    """Writes `train_dir/eval_metrics.json` atomically and the metrics to TensorBoard."""
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    utils.write_text_atomically(os.path.join(train_dir, EVAL_METRICS_FILE), text)
    writer = tf.summary.create_file_writer(os.path.join(train_dir, "eval"))
    with writer.as_default(step=max(metrics["global_step"], 0)):
        for name in eval_util.METRIC_LABELS:
            tf.summary.scalar(name, metrics[name])
    writer.flush()


def format_metrics(metrics):
    """One line with every metric."""
    parts = [f"step {metrics['global_step']}", f"{metrics['num_examples']} videos"]
    parts += [f"{label} {metrics[name]:.4f}" for name, label in eval_util.METRIC_LABELS.items()]
    if "mean_frames_read" in metrics:
        parts.append(f"{metrics['mean_frames_read']:.1f} frames read per video")
    if "exit_stage_shares" in metrics:
        shares = ", ".join(f"{share:.0%}" for share in metrics["exit_stage_shares"])
        parts.append(f"stopped after each stage: {shares}")
    if metrics["skipped_records"]:
        parts.append(f"{metrics['skipped_records']} record(s) skipped")
    return " | ".join(parts)


def log_metrics(metrics):
    logging.info(format_metrics(metrics))


def evaluate_checkpoints(
    train_dir, eval_data_pattern, run_once, timeout_secs=None, report=log_metrics, **options
):
    """Evaluates the latest checkpoint (run_once) or each new one as it appears, writing the
    metrics of each (`write_metrics`) and passing them to `report`.

    Args:
      options: keyword arguments of `evaluate_checkpoint`.

    Returns:
      the metrics of the last checkpoint evaluated.

    Raises:
      utils.UserInputError: when no checkpoint appeared before the timeout.
    """
    if tf.io.gfile.isdir(train_dir):  # (it may not exist yet while training starts)
        utils.check_writable_dir(train_dir, "--train_dir")  # eval_metrics.json goes there
    if run_once:
        checkpoint_paths = [None]
    else:
        checkpoint_paths = tf.train.checkpoints_iterator(train_dir, timeout=timeout_secs)
    metrics = None
    for checkpoint_path in checkpoint_paths:
        metrics = evaluate_checkpoint(
            train_dir, eval_data_pattern, checkpoint_path=checkpoint_path, **options
        )
        write_metrics(train_dir, metrics)
        report(metrics)
    if metrics is None:
        raise utils.UserInputError(
            f"No checkpoint appeared in {train_dir} within --timeout_secs={timeout_secs}."
        )
    return metrics
