"""Writes top-k predictions for every video of a data set as a Kaggle-format CSV.

    python inference.py --train_dir=/tmp/teacher \
        --input_data_pattern='data/test*.tfrecord' --output_file=/tmp/predictions.csv

The model comes from the latest checkpoint of --train_dir (rebuilt from model_flags.json) or from
a SavedModel (--saved_model_dir, see export_model.py). The CSV is the starter's:

    VideoId,LabelConfidencePairs
    <id>,<label> <score> <label> <score> ...      (top_k pairs, highest score first)

one line per input video, in a deterministic order (the sorted files, read interleaved). It is
written to a temporary file and renamed when complete, so --output_file never holds a partial
result. With --vocabulary_file, a second CSV (`<output stem>_names.csv`) lists each
(video, label) pair with the label's name, one row per pair.
"""

import csv
import io
import os
import time
import uuid

import tensorflow as tf
from absl import app, flags, logging

import distribution
import export_model
import readers
import utils

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
    train_dir, top_k, video_id_key, corrupt_record_policy="fail", strategy=None
):
    """Returns (reader, predict): predict maps a parsed batch to top-k indexes and scores.

    With several GPUs (or a given `strategy`) each batch is split over the replicas.
    """
    strategy = strategy or distribution.inference_strategy()
    model, model_flags, checkpoint_path = export_model.restore_model(train_dir, strategy=strategy)
    logging.info("Restored %s", checkpoint_path)
    reader = readers.reader_from_model_flags(
        model_flags, video_id_key=video_id_key, corrupt_record_policy=corrupt_record_policy
    )
    k = min(top_k, model_flags["num_classes"])

    def top_classes(outputs):
        class_scores, class_indexes = tf.math.top_k(outputs["predictions"], k=k, sorted=True)
        return class_indexes, class_scores

    return reader, distribution.predict_on_replicas(strategy, model, top_classes)


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
):
    """Yields (video_ids, class_indexes, class_scores) numpy arrays per batch, in input order.

    With `corrupt_record_policy="skip"` what is left out is tallied in `skipped` (a
    readers.SkippedRecords). A SavedModel parses the records itself, with the "fail" checks:
    there only damaged shards can be skipped.
    """
    skipped = skipped if skipped is not None else readers.SkippedRecords()
    if saved_model_dir:
        if not tf.io.gfile.isdir(saved_model_dir):
            raise utils.UserInputError(f"--saved_model_dir={saved_model_dir} does not exist.")
        loaded = tf.saved_model.load(saved_model_dir)
        serve = loaded.signatures["serving_default"]
        num_classes = loaded.signatures["predict"].structured_outputs["predictions"].shape[1]
        records, files = readers.make_record_batches(
            input_data_pattern,
            batch_size,
            num_readers=num_readers,
            flag_name="--input_data_pattern",
            corrupt_record_policy=corrupt_record_policy,
            skipped=skipped,
        )
        iterator = iter(records.prefetch(readers.AUTOTUNE))
        while True:
            with readers.data_errors(files):
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
            indexes = outputs["class_indexes"].numpy()[:, :top_k]
            scores = outputs["class_scores"].numpy()[:, :top_k]
            yield outputs["video_ids"].numpy(), indexes, scores
    else:
        reader, predict = checkpoint_predictor(
            train_dir, top_k, video_id_key, corrupt_record_policy, strategy
        )
        reader.skipped_records = skipped
        dataset, files = reader.make_dataset(
            input_data_pattern,
            batch_size,
            num_readers=num_readers,
            flag_name="--input_data_pattern",
        )
        for batch in readers.iterate_batches(dataset, files, skipped):
            indexes, scores = predict(batch["video_matrix"], batch["num_frames"])
            yield batch["video_ids"].numpy(), indexes.numpy(), scores.numpy()


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
):
    """Writes the Kaggle CSV (and the named CSV with a vocabulary) for every input video.

    A checkpoint's model runs on every local GPU when there are several (or under `strategy`).

    Returns:
      dict with `num_videos`, `seconds`, `output_file`, `named_output_file` (or None),
      `skipped_records` and `skipped` (what --corrupt_record_policy=skip left out).
    """
    readers.check_corrupt_record_policy(corrupt_record_policy)
    skipped = readers.SkippedRecords()
    if not output_file:
        raise utils.UserInputError("--output_file is required.")
    if not train_dir and not saved_model_dir:
        raise utils.UserInputError("Give --train_dir or --saved_model_dir.")
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


def define_flags():
    flags.DEFINE_string("train_dir", "", "Directory written by train.py (latest checkpoint).")
    flags.DEFINE_string("saved_model_dir", "", "A SavedModel from export_model.py instead.")
    flags.DEFINE_string("input_data_pattern", "", "File glob of the TFRecords to predict.")
    flags.DEFINE_string("output_file", "", "Where to write the Kaggle CSV.")
    flags.DEFINE_integer("top_k", 20, "Predictions written per video.")
    flags.DEFINE_integer("batch_size", 256, "Videos per batch.")
    flags.DEFINE_string("vocabulary_file", "", "Optional vocabulary CSV: also write label names.")
    flags.DEFINE_string("video_id_key", "id", "Context key of the video id.")
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.")
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
        if not flag_values.input_data_pattern:
            raise utils.UserInputError("--input_data_pattern is required.")
        result = run_inference(
            flag_values.input_data_pattern,
            flag_values.output_file,
            train_dir=flag_values.train_dir or None,
            saved_model_dir=flag_values.saved_model_dir or None,
            top_k=flag_values.top_k,
            batch_size=flag_values.batch_size,
            vocabulary_file=flag_values.vocabulary_file or None,
            video_id_key=flag_values.video_id_key,
            num_readers=flag_values.num_readers,
            corrupt_record_policy=flag_values.corrupt_record_policy,
        )
    if flag_values.corrupt_record_policy == "skip":
        print(readers.SkippedRecords.describe_summary(result["skipped"]))
    print(f"Wrote predictions for {result['num_videos']} videos to {result['output_file']}")
    if result["named_output_file"]:
        print(f"Wrote label names to {result['named_output_file']}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
