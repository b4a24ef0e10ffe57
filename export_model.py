r"""Exports a trained model as a SavedModel that reads serialized YouTube-8M records, or as a
LiteRT model for a device's CPU.

    python export_model.py --train_dir=/tmp/teacher --export_dir=/tmp/teacher/export/final
    python export_model.py --train_dir=/tmp/student10 --format=litert \
        --litert_quantization=int8_weights --export_dir=/tmp/student10_litert

The command line of saved_model.py, which documents the signatures: `serving_default` takes
`serialized_examples [batch]` and returns `video_ids`, `class_indexes [batch, top_k]` and
`class_scores [batch, top_k]`; `predict` returns the full `predictions [batch, num_classes]`.
With --format=litert, of litert_export.py: `export_dir/model.tflite` takes one video's decoded
frames, `video_matrix [1, frames, features]` uint8 (the frames its reader selects, padded to a
fixed count) and `num_frames [1]`, and returns `predictions` and `logits [1, num_classes]`;
`model_flags.json` beside it says which frames it reads.

A model that reads in exit stages (`--exit_stages`) exports in one pass, every stage read,
unless `--exit_threshold` is given: the SavedModel then stops each video after the first stage
that the rule train.py calibrated allows for this agreement target (inference.py's flag), and
also returns `frames_read` and `exit_stage` per video.

    python export_model.py --train_dir=/tmp/staged_student10 --exit_threshold=0.9
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os

from absl import flags, logging

import readers
import utils
from runs import checkpoints
from serving import early_exit, litert_export, saved_model

EXPORT_FORMATS = ("saved_model", "litert")


def define_flags(flag_values=flags.FLAGS):
    flags.DEFINE_string("train_dir", "", "Directory written by train.py.", flag_values=flag_values)
    flags.DEFINE_string(
        "checkpoint_path",
        "",
        "A checkpoint to export (default: the latest).",
        flag_values=flag_values,
    )
    flags.DEFINE_string("export_dir", "", "Where to write the SavedModel.", flag_values=flag_values)
    flags.DEFINE_integer(
        "top_k", 20, "Classes returned per video by serving_default.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "video_id_key", "id", "Context key of the video id.", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "format",
        "saved_model",
        EXPORT_FORMATS,
        "saved_model: a SavedModel that reads serialized records; litert: a .tflite model of "
        "one video's decoded frames, for a device's CPU.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "litert_quantization",
        "float32",
        litert_export.QUANTIZATIONS,
        "With --format=litert: float32; float16 (weights); int8_weights (dynamic range: int8 "
        "weights); int8 (weights and activations, calibrated on --representative_data_pattern).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "representative_data_pattern",
        "",
        "With --litert_quantization=int8: training TFRecords whose videos calibrate the "
        "activations' ranges.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "exit_threshold",
        -1.0,
        "A model that reads in stages (--exit_stages): the SavedModel stops each video after the "
        "first stage whose confidence reaches the threshold calibrated for this agreement with "
        "reading every stage, in [0, 1] (inference.py's flag). Below 0: read every stage.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "representative_videos",
        litert_export.REPRESENTATIVE_VIDEOS,
        "Videos read from --representative_data_pattern.",
        flag_values=flag_values,
    )


def export(flag_values):
    """Exports the model of `flag_values.train_dir` as the flags say (see define_flags).

    Returns:
      (the checkpoint exported, the path written).

    Raises:
      utils.UserInputError: naming the flag that is wrong.
    """
    if not flag_values.train_dir:
        raise utils.UserInputError("--train_dir is required.")
    litert = flag_values.format == "litert"
    default_dir = f"litert_{flag_values.litert_quantization}" if litert else "final"
    export_dir = flag_values.export_dir or os.path.join(
        flag_values.train_dir, "export", default_dir
    )
    if flag_values.representative_videos < 1:
        raise utils.UserInputError(
            f"--representative_videos={flag_values.representative_videos} must be >= 1."
        )
    exits = flag_values.exit_threshold >= 0
    if litert and exits:
        raise utils.UserInputError(
            f"--exit_threshold={flag_values.exit_threshold}: a LiteRT model reads one video's "
            "frames in one pass of fixed shapes; export a SavedModel (--format=saved_model) "
            "to stop videos early."
        )
    if litert and flag_values.litert_quantization == "int8":
        if not flag_values.representative_data_pattern:
            raise utils.UserInputError(
                "--litert_quantization=int8 calibrates on videos: give "
                "--representative_data_pattern (training records)."
            )
    model, config, checkpoint_path = checkpoints.restore_model(
        flag_values.train_dir, flag_values.checkpoint_path or None
    )
    if litert:
        written = litert_export.export_litert(
            model,
            config,
            export_dir,
            flag_values.litert_quantization,
            flag_values.representative_data_pattern,
            flag_values.representative_videos,
            flag_values.video_id_key,
            checkpoint_path,
        )
    else:
        # A SavedModel serves whatever labels its input has (or none).
        reader = readers.reader_for(config, flag_values.video_id_key, check_labels=False)
        exit_predictor = None
        if exits:
            exit_predictor = early_exit.exit_predictor(
                flag_values.train_dir, model, config, flag_values.exit_threshold, checkpoint_path
            )
        written = saved_model.export_saved_model(
            model, reader, export_dir, flag_values.top_k, exit_predictor
        )
    return checkpoint_path, written


def main(unused_argv):
    with utils.exit_on_user_error():
        checkpoint_path, written = export(flags.FLAGS)
    logging.info("Exported %s", checkpoint_path)
    print(f"Exported {checkpoint_path} to {written}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
