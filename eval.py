r"""Evaluates the checkpoints of a --train_dir on a labelled data set with the Kaggle metrics.

    python eval.py --train_dir=/tmp/teacher --eval_data_pattern='data/validate*.tfrecord' \
        --run_once

The command line of evaluator.py: the model is rebuilt from `train_dir/model_flags.json`. Each
checkpoint is evaluated on the whole set once: GAP (top-20, the Kaggle metric), Hit@1, PERR, mAP
and the loss are printed, written to `train_dir/eval_metrics.json` (replaced atomically) and to
TensorBoard under `train_dir/eval`. Without --run_once it waits for new checkpoints, as the
starter does. With --tf_data_service_address=grpc://host:port the data is read and parsed by
that tf.data service (data_service.py), each file by one of its workers: every video is still
evaluated once, unless a service worker fails.

    python eval.py --litert_model=/tmp/student10_litert/model.tflite \
        --eval_data_pattern='data/validate*.tfrecord'

evaluates a LiteRT model of export_model.py --format=litert instead, once, reading the videos
through the frame selection of the model_flags.json beside it; the metrics are written beside
it (`eval_metrics.json`).
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os

from absl import flags, logging

import utils
from pipeline import corrupt_records, data_service_input
from serving import evaluator


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string(
        "train_dir", "/tmp/yt8m_model/", "Directory written by train.py.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "eval_data_pattern", "", "File glob of the labelled TFRecords.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "litert_model",
        "",
        "Evaluate this .tflite file (export_model.py --format=litert) instead of checkpoints.",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "run_once", False, "Evaluate the latest checkpoint once and exit.", flag_values=flag_values
    )
    flags.DEFINE_integer("batch_size", 256, "Videos per batch.", flag_values=flag_values)
    flags.DEFINE_integer(
        "top_k", 20, "Predictions per video counted by GAP.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "video_id_key", "id", "Context key of the video id.", flag_values=flag_values
    )
    flags.DEFINE_integer("num_readers", 4, "Shards read in parallel.", flag_values=flag_values)
    flags.DEFINE_integer(
        "timeout_secs",
        0,
        "Stop waiting for checkpoints after this (0: never).",
        flag_values=flag_values,
    )
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
        "A model that reads in stages (--exit_stages): stop each video after the first stage "
        "whose confidence reaches the threshold calibrated (by train.py, on training videos) "
        "for this agreement with reading every stage, in [0, 1]. Below 0: read every stage.",
        flag_values=flag_values,
    )
    data_service_input.define_flags(flag_values)


def main(unused_argv):
    flag_values = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    with utils.exit_on_user_error():
        if not flag_values.eval_data_pattern:
            raise utils.UserInputError("--eval_data_pattern is required.")
        if flag_values.batch_size < 1 or flag_values.top_k < 1:
            raise utils.UserInputError("--batch_size and --top_k must be >= 1.")
        data_service_input.check_service_options(
            flag_values.tf_data_service_address, flag_values.corrupt_record_policy
        )
        if flag_values.litert_model:
            if flag_values.tf_data_service_address:
                raise utils.UserInputError(
                    "--litert_model reads its data here: leave out --tf_data_service_address."
                )
            metrics = evaluator.evaluate_litert(
                flag_values.litert_model,
                flag_values.eval_data_pattern,
                batch_size=flag_values.batch_size,
                top_k=flag_values.top_k,
                video_id_key=flag_values.video_id_key,
                num_readers=flag_values.num_readers,
                corrupt_record_policy=flag_values.corrupt_record_policy,
            )
            evaluator.write_metrics(os.path.dirname(flag_values.litert_model) or ".", metrics)
            print(evaluator.format_metrics(metrics), flush=True)
            return
        evaluator.evaluate_checkpoints(
            flag_values.train_dir,
            flag_values.eval_data_pattern,
            flag_values.run_once,
            timeout_secs=flag_values.timeout_secs or None,
            batch_size=flag_values.batch_size,
            top_k=flag_values.top_k,
            video_id_key=flag_values.video_id_key,
            num_readers=flag_values.num_readers,
            corrupt_record_policy=flag_values.corrupt_record_policy,
            tf_data_service_address=flag_values.tf_data_service_address,
            tf_data_service_job_name=flag_values.tf_data_service_job_name,
            exit_threshold=flag_values.exit_threshold,
            report=lambda metrics: print(evaluator.format_metrics(metrics), flush=True),
        )


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
