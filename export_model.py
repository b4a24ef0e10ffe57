"""Exports a trained model as a SavedModel that reads serialized YouTube-8M records.

    python export_model.py --train_dir=/tmp/teacher --export_dir=/tmp/teacher/export/final

The `serving_default` signature takes `serialized_examples [batch]` (tf.string: serialized
SequenceExamples, or Examples for a video-level model) and returns `video_ids [batch]`,
`class_indexes [batch, top_k]` int32 and `class_scores [batch, top_k]` float32, sorted by score,
descending (ties: lower class index first). A `predict` signature returns the full
`predictions [batch, num_classes]`. The reader's checks travel with it: a malformed record fails
with a message naming the video id.
"""

import os
import types
import uuid

import tensorflow as tf
from absl import app, flags, logging

import models
import readers
import utils


class ServingModule(tf.Module):
    """Holds the model and the parsing code that the signatures run."""

    def __init__(self, model, reader, top_k):
        super().__init__()
        # The SavedModel tracks the weights, not the Keras object: Keras would add a default
        # signature of its own, which cannot express the model's two inputs.
        self.model_variables = list(model.variables)
        self._call_model = types.SimpleNamespace(model=model)
        self._reader = reader
        self._top_k = min(top_k, reader.num_classes)

    def _predictions(self, serialized_examples):
        batch = self._reader.parse_serialized(serialized_examples)
        model = self._call_model.model
        outputs = model(batch["video_matrix"], num_frames=batch["num_frames"], training=False)
        return batch, outputs["predictions"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="serialized_examples")])
    def serve(self, serialized_examples):
        batch, predictions = self._predictions(serialized_examples)
        class_scores, class_indexes = tf.math.top_k(predictions, k=self._top_k, sorted=True)
        return {
            "video_ids": batch["video_ids"],
            "class_indexes": class_indexes,
            "class_scores": class_scores,
            "num_frames": batch["num_frames"],
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="serialized_examples")])
    def predict(self, serialized_examples):
        batch, predictions = self._predictions(serialized_examples)
        return {
            "video_ids": batch["video_ids"],
            "predictions": predictions,
            "labels": batch["labels"],
            "num_frames": batch["num_frames"],
        }


def export_saved_model(model, reader, export_dir, top_k=20):
    """Writes `model` with `reader`'s parsing to `export_dir` (through a temporary directory).

    Returns:
      export_dir.
    """
    if top_k < 1:
        raise utils.UserInputError(f"--top_k={top_k} must be >= 1.")
    module = ServingModule(model, reader, top_k)
    temporary_dir = export_dir.rstrip("/") + f".tmp-{uuid.uuid4().hex}"
    try:
        tf.saved_model.save(
            module,
            temporary_dir,
            signatures={"serving_default": module.serve, "predict": module.predict},
        )
        if tf.io.gfile.exists(export_dir):
            tf.io.gfile.rmtree(export_dir)
        tf.io.gfile.rename(temporary_dir, export_dir)
    finally:
        if tf.io.gfile.exists(temporary_dir):
            tf.io.gfile.rmtree(temporary_dir)
    return export_dir


def restore_model(train_dir, checkpoint_path=None, strategy=None):
    """Rebuilds the model of `train_dir` from model_flags.json and restores a checkpoint.

    Args:
      train_dir: directory written by train.py.
      checkpoint_path: a specific checkpoint; the latest in train_dir when None.
      strategy: build the model under this tf.distribute strategy's scope (None: no strategy).

    Returns:
      (model, model_flags, checkpoint_path).

    Raises:
      utils.UserInputError: when model_flags.json or any checkpoint is missing.
    """
    model_flags = utils.load_model_flags(train_dir)
    if checkpoint_path is None:
        checkpoint_path = tf.train.latest_checkpoint(train_dir)
        if checkpoint_path is None:
            raise utils.UserInputError(f"No checkpoint in {train_dir}: run train.py first.")
    if strategy is None:
        model = models.build_from_model_flags(model_flags)
    else:
        with strategy.scope():
            model = models.build_from_model_flags(model_flags)
    status = tf.train.Checkpoint(model=model).restore(checkpoint_path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise utils.UserInputError(
            f"{checkpoint_path} does not hold the weights of the model in model_flags.json: "
            f"{str(error)[:300]}"
        ) from None
    status.expect_partial()  # the optimizer's slots are not needed here
    return model, model_flags, checkpoint_path


def define_flags():
    flags.DEFINE_string("train_dir", "", "Directory written by train.py.")
    flags.DEFINE_string("checkpoint_path", "", "A checkpoint to export (default: the latest).")
    flags.DEFINE_string("export_dir", "", "Where to write the SavedModel.")
    flags.DEFINE_integer("top_k", 20, "Classes returned per video by serving_default.")
    flags.DEFINE_string("video_id_key", "id", "Context key of the video id.")


def main(unused_argv):
    flag_values = flags.FLAGS
    with utils.exit_on_user_error():
        if not flag_values.train_dir:
            raise utils.UserInputError("--train_dir is required.")
        export_dir = flag_values.export_dir or os.path.join(
            flag_values.train_dir, "export", "final"
        )
        model, model_flags, checkpoint_path = restore_model(
            flag_values.train_dir, flag_values.checkpoint_path or None
        )
        reader = readers.reader_from_model_flags(model_flags, flag_values.video_id_key)
        export_saved_model(model, reader, export_dir, flag_values.top_k)
    logging.info("Exported %s", checkpoint_path)
    print(f"Exported {checkpoint_path} to {export_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
