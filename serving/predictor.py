"""Top-k predictions for every video of a data set, written as the starter's Kaggle CSV.

    predictor.run_inference("data/test*.tfrecord", "/tmp/predictions.csv", train_dir=...)

The model comes from the latest checkpoint of a train_dir (checkpoints.py), from a SavedModel
(saved_model.py) or from a LiteRT model (litert_runtime.py, read through the frame selection of
the model_flags.json beside it). The CSV is the starter's:

    VideoId,LabelConfidencePairs
    <id>,<label> <score> <label> <score> ...      (top_k pairs, highest score first)

one line per input video, in a deterministic order (the sorted files, read interleaved), or,
read through tf.data service (data_service_input.py), in the order its workers deliver. It is
written to a temporary file and renamed when complete, so the output never holds a partial
result. With a vocabulary, a second CSV (`<output stem>_names.csv`) lists each (video, label)
pair with the label's name, one row per pair.
"""

import csv
import io
import os
import time
import uuid

import numpy as np
import tensorflow as tf
from absl import logging

import readers
import utils
from pipeline import corrupt_records, data_service_input, record_batches
from runs import checkpoints, distribution
from serving import cpu_inference, early_exit

CSV_HEADER = "VideoId,LabelConfidencePairs\n"


def format_lines(video_ids, class_indexes, class_scores):
    """Kaggle CSV lines for one batch.

    Args:
      video_ids: `[batch]` bytes or str.
      class_indexes: `[batch, top_k]` ints, highest score first.
      class_scores: `[batch, top_k]` floats, in the same order.

    Returns:
      list of lines "id,label score label score ...\\n" (scores as "%g", as the starter).
    """
    lines = []
    for video_id, indexes, scores in zip(video_ids, class_indexes, class_scores, strict=True):
        if isinstance(video_id, bytes):
            video_id = video_id.decode("utf-8")
        pairs = " ".join(
            f"{int(index)} {float(score):g}" for index, score in zip(indexes, scores, strict=True)
        )
        lines.append(f"{video_id},{pairs}\n")
    return lines


def load_vocabulary(vocabulary_file):
    """Reads the YouTube-8M vocabulary CSV (`Index,...,Name,...`) into {index: name}."""
    if not tf.io.gfile.exists(vocabulary_file):
        raise utils.UserInputError(f"--vocabulary_file={vocabulary_file} does not exist.")
    with tf.io.gfile.GFile(vocabulary_file, "r") as handle:
        rows = csv.DictReader(handle)
        if not rows.fieldnames or "Index" not in rows.fieldnames or "Name" not in rows.fieldnames:
            raise utils.UserInputError(
                f"--vocabulary_file={vocabulary_file} needs the columns Index and Name."
            )
        vocabulary = {}
        for line_number, row in enumerate(rows, start=2):
            try:
                vocabulary[int(row["Index"])] = row["Name"]
            except (TypeError, ValueError):
                raise utils.UserInputError(
                    f"--vocabulary_file={vocabulary_file} line {line_number}: Index "
                    f"{row['Index']!r} is not an integer."
                ) from None
        return vocabulary


def named_output_path(output_file):
    """`dir/predictions.csv` -> `dir/predictions_names.csv`."""
    stem, extension = os.path.splitext(output_file)
    return f"{stem}_names{extension or '.csv'}"


def checkpoint_predictor(
    train_dir,
    top_k,
    video_id_key,
    corrupt_record_policy="fail",
    strategy=None,
    exit_threshold=-1.0,
    frames_read=None,
):
    """Returns (reader, predict): predict maps a parsed batch to top-k indexes and scores.

    With several GPUs (or a given `strategy`) each batch is split over the replicas. A model
    that reads in stages stops each video early by its exit rule when `exit_threshold` >= 0
    (early_exit.py), on this machine's devices, and appends the frames each video read
    (`[batch]`) to the list `frames_read`.
    """
    strategy = strategy or distribution.inference_strategy()
    model, config, checkpoint_path = checkpoints.restore_model(train_dir, strategy=strategy)
    logging.info("Restored %s", checkpoint_path)
    # Inference does not use the labels: unlabelled or differently labelled data is read.
    reader = readers.reader_for(
        config,
        video_id_key=video_id_key,
        corrupt_record_policy=corrupt_record_policy,
        check_labels=False,
    )

    if exit_threshold >= 0:
        exits = early_exit.exit_predictor(train_dir, model, config, exit_threshold)
        return reader, exit_top_classes(exits, top_k, frames_read)

    def finish(outputs):
        return top_classes(outputs["predictions"], top_k)

    predict = distribution.predict_on_replicas(strategy, model, finish)
    return reader, cpu_inference.predict_function(model, predict)


def exit_top_classes(exit_predictor, top_k, frames_read=None):
    """predict(video_matrix, num_frames) -> top-k indexes and scores of an
    `early_exit.ExitPredictor`, the frames each video read (`[batch]`) appended to the list
    `frames_read` when given."""

    @tf.function(reduce_retracing=True)
    def top_and_frames_read(video_matrix, num_frames):
        # Top-k in the predictor's own graph: only k classes per video come back.
        outputs = exit_predictor.predict_in_stages(video_matrix, num_frames)
        return top_classes(outputs["predictions"], top_k), outputs["frames_read"]

    def predict(video_matrix, num_frames):
        (indexes, scores), frames = top_and_frames_read(video_matrix, num_frames)
        if frames_read is not None:
            frames_read.append(frames.numpy())
        return indexes, scores

    return predict


def top_classes(predictions, top_k):
    """(class_indexes, class_scores) `[batch, k]` of `predictions [batch, num_classes]`, highest
    first (ties: lower class index first), k = min(top_k, num_classes)."""
    k = min(top_k, predictions.shape[1])
    class_scores, class_indexes = tf.math.top_k(predictions, k=k, sorted=True)
    return class_indexes, class_scores


def litert_predictor(litert_model, top_k, video_id_key, corrupt_record_policy="fail"):
    """Returns (reader, predict) for a .tflite file, as `checkpoint_predictor` does: the reader
    of the model_flags.json beside it and a predict of top-k indexes and scores."""
    from serving import litert_export  # LiteRT is loaded only when a .tflite is served

    model, run_config, info = litert_export.load_litert(litert_model)
    logging.info("Loaded %s (%s)", litert_model, info.get("quantization", "?"))
    reader = readers.reader_for(
        run_config,
        video_id_key=video_id_key,
        corrupt_record_policy=corrupt_record_policy,
        check_labels=False,
    )

    def predict(video_matrix, num_frames):
        return top_classes(model.predict(video_matrix, num_frames)["predictions"], top_k)

    return reader, predict


def iterate_predictions(
    input_data_pattern,
    batch_size,
    top_k,
    train_dir=None,
    saved_model_dir=None,
    video_id_key="id",
    num_readers=4,
    corrupt_record_policy="fail",
    skipped=None,
    strategy=None,
    tf_data_service_address="",
    tf_data_service_job_name="",
    litert_model=None,
    exit_threshold=-1.0,
    frames_read=None,
):
    """Yields (video_ids, class_indexes, class_scores) numpy arrays per batch, in input order.

    The frames each video read (`[batch]` per batch) are appended to the list `frames_read`
    when given: with `exit_threshold` >= 0 a checkpoint's model that reads in stages stops each
    video by its exit rule (early_exit.py), as a SavedModel exported with one does.

    With `corrupt_record_policy="skip"` what is left out is tallied in `skipped` (a
    corrupt_records.SkippedRecords). A SavedModel parses the records itself, with the "fail" checks:
    there only damaged shards can be skipped. A LiteRT model (`litert_model`, a .tflite file)
    reads the records as its checkpoint's model does, one video per call.

    With `tf_data_service_address` (`grpc://host:port`) the records are read, and for a
    checkpoint's model parsed, by that tf.data service (data_service_input.py) in the job
    `tf_data_service_job_name` ("": a new one for this run). It hands each file to one of its
    workers (DYNAMIC sharding): every video is predicted exactly once unless a service worker
    fails, but the batches come in the order the workers finish them.
    """
    data_service_input.check_service_options(tf_data_service_address, corrupt_record_policy)
    skipped = skipped if skipped is not None else corrupt_records.SkippedRecords()
    job_name = data_service_input.read_once_job_name(tf_data_service_job_name, "inference")

    def through_service(dataset):
        if not tf_data_service_address:
            return dataset
        return data_service_input.distribute_dataset(dataset, tf_data_service_address, job_name)

    if saved_model_dir:
        if not tf.io.gfile.isdir(saved_model_dir):
            raise utils.UserInputError(f"--saved_model_dir={saved_model_dir} does not exist.")
        loaded = tf.saved_model.load(saved_model_dir)
        serve = loaded.signatures["serving_default"]
        num_classes = loaded.signatures["predict"].structured_outputs["predictions"].shape[1]
        records, files = record_batches.make_record_batches(
            input_data_pattern,
            batch_size,
            num_readers=num_readers,
            flag_name="--input_data_pattern",
            corrupt_record_policy=corrupt_record_policy,
            skipped=skipped,
        )
        iterator = iter(through_service(records.prefetch(tf.data.AUTOTUNE)))
        while True:
            with corrupt_records.data_errors(files):
                try:
                    serialized = next(iterator)
                except StopIteration:
                    return
                outputs = serve(serialized_examples=serialized)
            exported_k = outputs["class_indexes"].shape[1]
            if exported_k < min(top_k, num_classes):
                raise utils.UserInputError(
                    f"--top_k={top_k} but the SavedModel in {saved_model_dir} returns "
                    f"{exported_k} classes per video; export it again with --top_k={top_k}."
                )
            if frames_read is not None:  # exported with exits: the frames of its stages read
                frames_read.append(outputs.get("frames_read", outputs["num_frames"]).numpy())
            indexes = outputs["class_indexes"].numpy()[:, :top_k]
            scores = outputs["class_scores"].numpy()[:, :top_k]
            yield outputs["video_ids"].numpy(), indexes, scores
    else:
        if litert_model:
            reader, predict = litert_predictor(
                litert_model, top_k, video_id_key, corrupt_record_policy
            )
        else:
            reader, predict = checkpoint_predictor(
                train_dir,
                top_k,
                video_id_key,
                corrupt_record_policy,
                strategy,
                exit_threshold,
                frames_read,
            )
        reader.skipped_records = skipped
        dataset, files = reader.make_dataset(
            input_data_pattern,
            batch_size,
            num_readers=num_readers,
            flag_name="--input_data_pattern",
        )
        if tf_data_service_address:
            dataset = through_service(dataset)
        else:
            dataset = cpu_inference.input_dataset(dataset)
        for batch in corrupt_records.iterate_batches(dataset, files, skipped):
            indexes, scores = predict(batch["video_matrix"], batch["num_frames"])
            if frames_read is not None and exit_threshold < 0:
                frames_read.append(batch["num_frames"].numpy())
            yield batch["video_ids"].numpy(), np.asarray(indexes), np.asarray(scores)


def run_inference(
    input_data_pattern,
    output_file,
    train_dir=None,
    saved_model_dir=None,
    top_k=20,
    batch_size=256,
    vocabulary_file=None,
    video_id_key="id",
    num_readers=4,
    corrupt_record_policy="fail",
    strategy=None,
    tf_data_service_address="",
    tf_data_service_job_name="",
    litert_model=None,
    exit_threshold=-1.0,
):
    """Writes the Kaggle CSV (and the named CSV with a vocabulary) for every input video.

    A checkpoint's model runs on every local GPU when there are several (or under `strategy`).
    With `tf_data_service_address` the input is read through tf.data service
    (`iterate_predictions`): one line per video as well, in the order the service's workers
    deliver them.

    A model that reads in stages stops each video early by its exit rule when
    `exit_threshold` >= 0 (early_exit.py).

    Returns:
      dict with `num_videos`, `seconds`, `output_file`, `named_output_file` (or None),
      `mean_frames_read` (None for a SavedModel), `skipped_records` and `skipped` (what
      --corrupt_record_policy=skip left out).
    """
    corrupt_records.check_corrupt_record_policy(corrupt_record_policy)
    data_service_input.check_service_options(tf_data_service_address, corrupt_record_policy)
    skipped = corrupt_records.SkippedRecords()
    if not output_file:
        raise utils.UserInputError("--output_file is required.")
    if not train_dir and not saved_model_dir and not litert_model:
        raise utils.UserInputError("Give --train_dir, --saved_model_dir or --litert_model.")
    if top_k < 1 or batch_size < 1:
        raise utils.UserInputError("--top_k and --batch_size must be >= 1.")
    if output_file.endswith("/") or tf.io.gfile.isdir(output_file):
        raise utils.UserInputError(f"--output_file={output_file} is a directory; name a file.")
    utils.check_writable_dir(os.path.dirname(output_file) or ".", "--output_file")
    vocabulary = load_vocabulary(vocabulary_file) if vocabulary_file else None
    named_file = named_output_path(output_file) if vocabulary is not None else None

    suffix = f".tmp-{uuid.uuid4().hex}"
    temporary_files = [output_file + suffix] + ([named_file + suffix] if named_file else [])
    start = time.time()
    num_videos = 0
    frames_read = []
    try:
        with tf.io.gfile.GFile(temporary_files[0], "w") as out:
            named_out = tf.io.gfile.GFile(temporary_files[1], "w") if named_file else None
            try:
                out.write(CSV_HEADER)
                if named_out:
                    named_out.write("VideoId,Label,Name,Confidence\n")
                for video_ids, indexes, scores in iterate_predictions(
                    input_data_pattern,
                    batch_size,
                    top_k,
                    train_dir=train_dir,
                    saved_model_dir=saved_model_dir,
                    video_id_key=video_id_key,
                    num_readers=num_readers,
                    corrupt_record_policy=corrupt_record_policy,
                    skipped=skipped,
                    strategy=strategy,
                    tf_data_service_address=tf_data_service_address,
                    tf_data_service_job_name=tf_data_service_job_name,
                    litert_model=litert_model,
                    exit_threshold=exit_threshold,
                    frames_read=frames_read,
                ):
                    out.write("".join(format_lines(video_ids, indexes, scores)))
                    if named_out:
                        named_out.write(format_named_rows(video_ids, indexes, scores, vocabulary))
                    num_videos += len(video_ids)
                    logging.info(
                        "%d videos, %.1f videos/s", num_videos, num_videos / (time.time() - start)
                    )
            finally:
                if named_out:
                    named_out.close()
        for temporary, final in zip(temporary_files, [output_file, named_file], strict=False):
            tf.io.gfile.rename(temporary, final, overwrite=True)
    finally:
        for temporary in temporary_files:
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
    return {
        "num_videos": num_videos,
        "seconds": time.time() - start,
        "output_file": output_file,
        "named_output_file": named_file,
        "mean_frames_read": (
            float(np.sum([np.sum(counts) for counts in frames_read])) / num_videos
            if frames_read and num_videos
            else None
        ),
        "skipped_records": skipped.count,
        "skipped": skipped.summary(),
    }


def format_named_rows(video_ids, class_indexes, class_scores, vocabulary):
    """CSV rows `VideoId,Label,Name,Confidence` for one batch (names quoted as needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for video_id, indexes, scores in zip(video_ids, class_indexes, class_scores, strict=True):
        if isinstance(video_id, bytes):
            video_id = video_id.decode("utf-8")
        for index, score in zip(indexes, scores, strict=True):
            name = vocabulary.get(int(index), "")
            writer.writerow([video_id, int(index), name, f"{float(score):g}"])
    return buffer.getvalue()
