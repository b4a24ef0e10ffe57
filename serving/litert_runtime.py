"""Runs a LiteRT (.tflite) model of export_model.py --format=litert on a CPU, as a device would.

    model = litert_runtime.LiteRTModel("/tmp/student10_litert/model.tflite", num_threads=1)
    outputs = model.predict(video_matrix, num_frames)

The model takes one video per call: `video_matrix [1, frames, features]` uint8 (frames fixed at
export, zeros after the video's own) and `num_frames [1]` int32, and returns `predictions` and
`logits` `[1, num_classes]` float32. `predict` takes a reader's batch, `video_matrix [batch,
frames, features]` with up to the model's frames and `num_frames [batch]`, pads each video and
runs them in turn: `{predictions, logits}` `[batch, num_classes]`, the contract of a checkpoint's
compiled model (runs/distribution.py), so evaluator.py and predictor.py run either.

It runs on LiteRT's CompiledModel with XNNPACK and, unless told otherwise, an XNNPACK weight
cache: the unrolled LSTM steps of the hierarchical models share their weight matrices, and
without the cache XNNPACK packs a copy of each for every step that uses it (the paper-size
teacher in float32 then needs 1.4 GB, 0.3 GB with it). The cache is a file in a temporary
directory, removed by `close`. A full int8 model runs without it (`weight_cache=False`): with
LiteRT 2.3.0 the cache gives it wrong scores (0.54 off on a small teacher), likely because the
packed int8 weights fold in the zero point of each step's input, which differs from step to
step, while the cache shares one packing per weight matrix.

Only numpy and LiteRT are imported here, not TensorFlow: this is the part a device needs.
"""

import contextlib
import os
import shutil
import sys
import tempfile

import numpy as np
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.environment import Environment, EnvironmentOptions
from ai_edge_litert.options import CpuOptions, Options

SIGNATURE = "serving_default"
INPUT_NAMES = ("video_matrix", "num_frames")
OUTPUT_NAMES = ("predictions", "logits")
# Lines LiteRT's runtime writes to stderr while a model is loaded, dropped unless
# TF_CPP_MIN_LOG_LEVEL=0: its INFO lines and the accelerators and vendor plugins this package
# looks for and a CPU does not have.
LOADING_NOISE = (
    "INFO: ",
    "NPU accelerator could not be loaded",
    "Failed to load plugin at",
    "Could not load shared library",
)


def pad_frames(video_matrix, frame_count):
    """`[batch, frames, features]` -> `[batch, frame_count, features]`, zeros after the frames
    given (a video-level `[batch, features]`, frame_count None, is returned as it is)."""
    video_matrix = np.asarray(video_matrix)
    if frame_count is None:
        return video_matrix
    missing = frame_count - video_matrix.shape[1]
    if missing < 0:
        raise ValueError(
            f"{video_matrix.shape[1]} frames given to a device model of {frame_count} frames"
        )
    return np.pad(video_matrix, [(0, 0), (0, missing), (0, 0)])


@contextlib.contextmanager
def quiet_loading():
    """Within the block, stderr (file descriptor 2) is captured; what LiteRT wrote there is
    written back after it, less LOADING_NOISE."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved_stderr = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [
                line
                for line in text.splitlines(True)
                if not any(mark in line for mark in LOADING_NOISE)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class LiteRTModel:
    """A .tflite model of one video per call (`frame_count`: its fixed frames, None for a
    video-level model; `num_classes`)."""

    def __init__(self, litert_model, num_threads=None, weight_cache=True):
        self.path = litert_model
        self.cache_dir = tempfile.mkdtemp(prefix="xnnpack-weights-")
        cache_path = os.path.join(self.cache_dir, "weights.cache") if weight_cache else ""
        cpu = CpuOptions(
            num_threads=num_threads or len(os.sched_getaffinity(0)),
            xnnpack_weight_cache_path=cache_path,
        )
        with quiet_loading():
            self.environment = Environment.create(options=EnvironmentOptions())
            self.model = CompiledModel.from_file(
                litert_model, options=Options(cpu_options=cpu), environment=self.environment
            )
            self.inputs = {
                name: self.model.create_input_buffer_by_name(SIGNATURE, name)
                for name in INPUT_NAMES
            }
            self.outputs = {
                name: self.model.create_output_buffer_by_name(SIGNATURE, name)
                for name in OUTPUT_NAMES
            }
        inputs = self.model.get_input_tensor_details(SIGNATURE)
        matrix = inputs[INPUT_NAMES[0]]
        self.matrix_shape = list(matrix["shape"])
        self.matrix_type = np.dtype(matrix["dtype"])
        self.frame_count = self.matrix_shape[1] if len(self.matrix_shape) == 3 else None
        output = self.model.get_output_tensor_details(SIGNATURE)[OUTPUT_NAMES[0]]
        self.num_classes = int(output["shape"][-1])
        with quiet_loading():  # the first run sets up the CPU accelerator and packs the weights
            self.predict_video(np.zeros(self.matrix_shape, self.matrix_type), np.int32([0]))

    def predict_video(self, video_matrix, num_frames):
        """One video: `video_matrix [1, frame_count, features]`, `num_frames [1]` -> the
        model's outputs, `[1, num_classes]` float32 each."""
        self.inputs[INPUT_NAMES[0]].write(np.ascontiguousarray(video_matrix, self.matrix_type))
        self.inputs[INPUT_NAMES[1]].write(np.ascontiguousarray(num_frames, np.int32))
        self.model.run_by_name(SIGNATURE, self.inputs, self.outputs)
        return {
            name: buffer.read(self.num_classes, np.float32).reshape(1, self.num_classes)
            for name, buffer in self.outputs.items()
        }

    def predict(self, video_matrix, num_frames):
        """`{predictions, logits}` `[batch, num_classes]` for a reader's batch (tensors or
        arrays)."""
        matrices = pad_frames(np.asarray(video_matrix), self.frame_count)
        counts = np.asarray(num_frames, np.int32)
        rows = [
            self.predict_video(matrix[np.newaxis], counts[index : index + 1])
            for index, matrix in enumerate(matrices)
        ]
        return {
            name: np.concatenate([row[name] for row in rows], axis=0)
            if rows
            else np.zeros([0, self.num_classes], np.float32)
            for name in OUTPUT_NAMES
        }

    def close(self):
        """Frees the model and its environment (quietly) and removes the weight cache."""
        if getattr(self, "environment", None) is not None:
            with quiet_loading():
                self.inputs = self.outputs = self.model = self.environment = None
        shutil.rmtree(getattr(self, "cache_dir", ""), ignore_errors=True)

    def __del__(self):
        self.close()
