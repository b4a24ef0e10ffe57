"""The SavedModel of a trained model: it reads serialized YouTube-8M records and returns top-k.

The `serving_default` signature takes `serialized_examples [batch]` (tf.string: serialized
SequenceExamples, or Examples for a video-level model) and returns `video_ids [batch]`,
`class_indexes [batch, top_k]` int32 and `class_scores [batch, top_k]` float32, sorted by score,
descending (ties: lower class index first). A `predict` signature returns the full
`predictions [batch, num_classes]`. The reader's checks travel with it: a malformed record fails
with a message naming the video id.

Exported with an `early_exit.ExitPredictor` (`export_model.py --exit_threshold`), a model that
reads in exit stages stops each video after the first stage its rule allows, in the graph: the
signatures then also return `frames_read [batch]` and `exit_stage [batch]` int32, and each
stage's frames are dequantized only for the videos still reading.
"""

import types
import uuid

import tensorflow as tf

import utils


class ServingModule(tf.Module):
    """Holds the model and the parsing code that the signatures run."""

    def __init__(self, model, reader, top_k, exit_predictor=None):
        super().__init__()
        # The SavedModel tracks the weights, not the Keras object: Keras would add a default
        # signature of its own, which cannot express the model's two inputs.
        self.model_variables = list(model.variables)
        self._call_model = types.SimpleNamespace(model=model, exit_predictor=exit_predictor)
        self._reader = reader
        self._top_k = min(top_k, reader.num_classes)

    def _predictions(self, serialized_examples):
        """(the parsed batch, `predictions [batch, classes]`, the exit outputs: `frames_read`
        and `exit_stage`, or none without an exit predictor)."""
        batch = self._reader.parse_serialized(serialized_examples)
        exit_predictor = self._call_model.exit_predictor
        if exit_predictor is not None:
            outputs = exit_predictor.predict_in_stages(batch["video_matrix"], batch["num_frames"])
            exits = {name: outputs[name] for name in ("frames_read", "exit_stage")}
            return batch, outputs["predictions"], exits
        model = self._call_model.model
        outputs = model(batch["video_matrix"], num_frames=batch["num_frames"], training=False)
        return batch, outputs["predictions"], {}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="serialized_examples")])
    def serve(self, serialized_examples):
        batch, predictions, exits = self._predictions(serialized_examples)
        class_scores, class_indexes = tf.math.top_k(predictions, k=self._top_k, sorted=True)
        return {
            "video_ids": batch["video_ids"],
            "class_indexes": class_indexes,
            "class_scores": class_scores,
            "num_frames": batch["num_frames"],
            **exits,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="serialized_examples")])
    def predict(self, serialized_examples):
        batch, predictions, exits = self._predictions(serialized_examples)
        return {
            "video_ids": batch["video_ids"],
            "predictions": predictions,
            "labels": batch["labels"],
            "num_frames": batch["num_frames"],
            **exits,
        }


def export_saved_model(model, reader, export_dir, top_k=20, exit_predictor=None):
    """Writes `model` with `reader`'s parsing to `export_dir` (through a temporary directory);
    with `exit_predictor` (an early_exit.ExitPredictor of `model`), its exits.

    Returns:
      export_dir.
    """
    if top_k < 1:
        raise utils.UserInputError(f"--top_k={top_k} must be >= 1.")
    module = ServingModule(model, reader, top_k, exit_predictor)
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
