r"""Writes top-k predictions for every video of a data set as a Kaggle-format CSV.

    python inference.py --train_dir=/tmp/teacher \
        --input_data_pattern='data/test*.tfrecord' --output_file=/tmp/predictions.csv

The command line of predictor.py. The model comes from the latest checkpoint of --train_dir
(rebuilt from model_flags.json), from a SavedModel (--saved_model_dir, see export_model.py) or
from a LiteRT model (--litert_model, a .tflite file of export_model.py --format=litert, whose
videos are read through the frame selection of the model_flags.json beside it).
The CSV is the starter's:

    VideoId,LabelConfidencePairs
    <id>,<label> <score> <label> <score> ...      (top_k pairs, highest score first)

one line per input video, in a deterministic order (the sorted files, read interleaved). It is
written to a temporary file and renamed when complete, so --output_file never holds a partial
result. With --vocabulary_file, a second CSV (`<output stem>_names.csv`) lists each
(video, label) pair with the label's name, one row per pair. With
--tf_data_service_address=grpc://host:port the records are read (and parsed) by that tf.data
service (data_service.py), each file by one of its workers: still one line per video, unless a
service worker fails, in the order the workers deliver them.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

from absl import flags, logging

import utils
from pipeline import corrupt_records, data_service_input
from serving import predictor


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "train_dir",
        "",
        "Directory written by train.py (latest checkpoint).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "saved_model_dir", "", "A SavedModel from export_model.py instead.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "litert_model",
        "",
        "A .tflite file from export_model.py --format=litert instead.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "input_data_pattern", "", "File glob of the TFRecords to predict.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "output_file", "", "Where to write the Kaggle CSV.", flag_values=flag_values
    )
    flags.DEFINE_integer("top_k", 20, "Predictions written per video.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 256, "Videos per batch.", flag_values=flag_values)
    flags.DEFINE_string(
        "vocabulary_file",
        "",
        "Optional vocabulary CSV: also write label names.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "video_id_key", "id", "Context key of the video id.", flag_values=flag_values
    )
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.", flag_values=flag_values)
    flags.DEFINE_enum(
        "corrupt_record_policy",
        "fail",
        corrupt_records.CORRUPT_RECORD_POLICIES,
        corrupt_records.CORRUPT_RECORD_POLICY_HELP,
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "exit_threshold",
        -1.0,
        "A checkpoint's model that reads in stages (--exit_stages): stop each video after the "
        "first stage whose confidence reaches the threshold calibrated for this agreement with "
        "reading every stage, in [0, 1] (eval.py's flag). Below 0: read every stage.",
        flag_values=flag_values,
    )
    data_service_input.define_flags(flag_values)


def main(unused_argv):
    flag_values = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    with utils.exit_on_user_error():
        if not flag_values.input_data_pattern:
            raise utils.UserInputError("--input_data_pattern is required.")
        result = predictor.run_inference(
            flag_values.input_data_pattern,
            flag_values.output_file,
            train_dir=flag_values.train_dir or None,
            saved_model_dir=flag_values.saved_model_dir or None,
            litert_model=flag_values.litert_model or None,
            top_k=flag_values.top_k,
            batch_size=flag_values.batch_size,
            vocabulary_file=flag_values.vocabulary_file or None,
            video_id_key=flag_values.video_id_key,
            num_readers=flag_values.num_readers,
            corrupt_record_policy=flag_values.corrupt_record_policy,
            tf_data_service_address=flag_values.tf_data_service_address,
            tf_data_service_job_name=flag_values.tf_data_service_job_name,
            exit_threshold=flag_values.exit_threshold,
        )
    if flag_values.corrupt_record_policy == "skip":
        print(corrupt_records.SkippedRecords.describe_summary(result["skipped"]))
    print(f"Wrote predictions for {result['num_videos']} videos to {result['output_file']}")
    if result["mean_frames_read"] is not None:
        print(f"Read {result['mean_frames_read']:.1f} frames per video on average")
    if result["named_output_file"]:
        print(f"Wrote label names to {result['named_output_file']}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
