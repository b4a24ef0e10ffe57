"""Runs a LiteRT (.tflite) model of export_model.py --format=litert on batches of the reader.

    model = litert_runtime.LiteRTModel("/tmp/student10_litert/model.tflite")
    outputs = model.predict(batch["video_matrix"], batch["num_frames"])

`predict` has the contract of a checkpoint's compiled model (runs/distribution.py): a reader's
batch, `video_matrix [batch, frames, features]` uint8 (frames up to the device's fixed count)
and `num_frames [batch]`, gives `{predictions, logits}` `[batch, num_classes]`. The device model
takes one video per call: each video is padded to the fixed frame count and run in turn. The
interpreter is LiteRT's (`ai_edge_litert`), with XNNPACK on the CPU.
"""

import json
import os

import numpy as np
from ai_edge_litert import interpreter as litert_interpreter

from serving import litert_export


class LiteRTModel:
    """A .tflite file with the RunConfig saved beside it (`run_config`, `frame_count`)."""

    def __init__(self, litert_model, num_threads=None, flag_name="--litert_model"):
        self.path = litert_model
        self.run_config = litert_export.load_run_config(litert_model, flag_name)
        self.frame_count = litert_export.device_frame_count(self.run_config)
        info_path = os.path.join(
            os.path.dirname(litert_model) or ".", litert_export.LITERT_INFO_FILE
        )
        self.info = {}
        if os.path.exists(info_path):
            with open(info_path) as handle:
                self.info = json.load(handle)
        self.interpreter = litert_interpreter.Interpreter(
            model_path=litert_model, num_threads=num_threads or len(os.sched_getaffinity(0))
        )
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        self.matrix_type = details[litert_export.INPUT_NAMES[0]]["dtype"]

    def predict_video(self, video_matrix, num_frames):
        """One video: `video_matrix [1, frame_count, features]`, `num_frames [1]` -> the
        model's outputs, `[1, num_classes]` each."""
        return self.runner(
            **{
                litert_export.INPUT_NAMES[0]: video_matrix,
                litert_export.INPUT_NAMES[1]: num_frames,
            }
        )

    def predict(self, video_matrix, num_frames):
        """`{predictions, logits}` `[batch, num_classes]` numpy for a reader's batch (tensors
        or arrays)."""
        matrices = litert_export.pad_frames(np.asarray(video_matrix), self.frame_count)
        matrices = matrices.astype(self.matrix_type, copy=False)
        counts = np.asarray(num_frames, np.int32)
        rows = [
            self.predict_video(matrix[np.newaxis], counts[index : index + 1])
            for index, matrix in enumerate(matrices)
        ]
        if not rows:
            return {
                name: np.zeros([0, self.run_config.num_classes], np.float32)
                for name in litert_export.OUTPUT_NAMES
            }
        return {
            name: np.concatenate([row[name] for row in rows], axis=0)
            for name in litert_export.OUTPUT_NAMES
        }
