"""Exports a trained model as a SavedModel that reads serialized YouTube-8M records.

    python export_model.py --train_dir=/tmp/teacher --export_dir=/tmp/teacher/export/final

The command line of serving.py, which documents the signatures: `serving_default` takes
`serialized_examples [batch]` and returns `video_ids`, `class_indexes [batch, top_k]` and
`class_scores [batch, top_k]`; `predict` returns the full `predictions [batch, num_classes]`.
"""

import tf_environment  # noqa: F401 (first: quiets TensorFlow before it loads)

import os

from absl import flags, logging

import readers
import utils
from runs import checkpoints
from serving import saved_model


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


def main(unused_argv):
    flag_values = flags.FLAGS
    with utils.exit_on_user_error():
        if not flag_values.train_dir:
            raise utils.UserInputError("--train_dir is required.")
        export_dir = flag_values.export_dir or os.path.join(
            flag_values.train_dir, "export", "final"
        )
        model, config, checkpoint_path = checkpoints.restore_model(
            flag_values.train_dir, flag_values.checkpoint_path or None
        )
        # A SavedModel serves whatever labels its input has (or none).
        reader = readers.reader_for(config, flag_values.video_id_key, check_labels=False)
        saved_model.export_saved_model(model, reader, export_dir, flag_values.top_k)
    logging.info("Exported %s", checkpoint_path)
    print(f"Exported {checkpoint_path} to {export_dir}")


if __name__ == "__main__":
    define_flags()
    utils.run_command_line(main)
