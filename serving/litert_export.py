"""Converts a trained model into a LiteRT (.tflite) model for a device's CPU, with its quantization.

    litert_export.export_litert(model, run_config, "/tmp/student10_litert", "int8_weights")

The device model takes one video per call, the frames the model's reader selects, already
decoded and padded to a fixed count:

    video_matrix [1, frames, features] uint8   (`[1, features]` float32 for a video-level model)
    num_frames   [1] int32                      (frames present; the rest are padding, masked)

and returns `predictions [1, num_classes]` (sigmoid scores) and `logits [1, num_classes]`.
`frames` is fixed at export (`device_frame_count`): `max_frames` for a model that reads every
frame, ceil(max_frames / frame_stride) for a student that reads 1 frame in j, or
min(frames_per_video, max_frames) for a model that reads k frames of each video. A video with
fewer frames is padded with zeros; the padding changes no score.

The LSTMs of the hierarchical models are converted unrolled (unrolled_lstm.py): over the fixed
frame count every step is a fully connected layer on the step's input (all steps at once) and
one on the previous output, and a masked step keeps the previous state, as the Keras LSTM does.
The graph is then made of LiteRT builtin operations only (no select TensorFlow operations), all
of which XNNPACK runs. The cluster-and-aggregate models and DBoF convert as they are.

Quantizations (`QUANTIZATIONS`): `float32`; `float16` (weights stored as float16, computed in
float32); `int8_weights` (dynamic range: weights int8, activations quantized on the fly); `int8`
(weights and activations int8, the activations' ranges calibrated on videos read from
`representative_data_pattern`; inputs and outputs keep their types).

Written beside the model: `model_flags.json` (the RunConfig, so that records are read through
the same frame selection: readers.reader_for) and `litert.json` (`LITERT_INFO_FILE`: the
quantization, frame count, checkpoint and input and output names).
"""

import json
import os
import re

import numpy as np
import tensorflow as tf

import readers
import utils
from runs import config as run_config_module
from serving import unrolled_lstm
from serving.litert_runtime import INPUT_NAMES, OUTPUT_NAMES, LiteRTModel, pad_frames

QUANTIZATIONS = ("float32", "float16", "int8_weights", "int8")
LITERT_MODEL_FILE = "model.tflite"
LITERT_INFO_FILE = "litert.json"
# Videos read from --representative_data_pattern to calibrate a full int8 model.
REPRESENTATIVE_VIDEOS = 100


def device_frame_count(run_config):
    """The fixed frame count T' of the device model's input: the most frames the model's reader
    gives one video (`max_frames`, ceil(max_frames / frame_stride), or min(frames_per_video,
    max_frames)); None for a video-level model."""
    if not run_config.frame_features:
        return None
    if run_config.frames_per_video:
        return min(run_config.frames_per_video, run_config.max_frames)
    return -(-run_config.max_frames // run_config.frame_stride)


def input_specs(run_config):
    """The device model's input signature (one video)."""
    frames = device_frame_count(run_config)
    if frames is None:
        matrix = tf.TensorSpec([1, run_config.feature_size], tf.float32, name=INPUT_NAMES[0])
    else:
        matrix = tf.TensorSpec([1, frames, run_config.feature_size], tf.uint8, name=INPUT_NAMES[0])
    return [matrix, tf.TensorSpec([1], tf.int32, name=INPUT_NAMES[1])]


def device_function(model, run_config):
    """The traced `serve(video_matrix, num_frames)` -> {predictions, logits} of one video."""

    @tf.function(input_signature=input_specs(run_config))
    def serve(video_matrix, num_frames):
        outputs = model(video_matrix, num_frames=num_frames, training=False)
        return {name: outputs[name] for name in OUTPUT_NAMES}

    with unrolled_lstm.unrolled_lstms(model):
        return serve.get_concrete_function()


def representative_videos(run_config, data_pattern, count, video_id_key="id"):
    """A function yielding up to `count` videos of `data_pattern`, read as the model reads them
    and padded to the device's frame count: the calibration set of a full int8 model.

    Raises:
      utils.UserInputError: when no file matches or the files hold no video.
    """
    reader = readers.reader_for(run_config, video_id_key, check_labels=False)
    dataset, _ = reader.make_dataset(
        data_pattern, 16, num_readers=1, flag_name="--representative_data_pattern"
    )
    frame_count = device_frame_count(run_config)
    matrix_type = np.uint8 if frame_count is not None else np.float32
    videos = []
    for batch in dataset:
        matrices = pad_frames(batch["video_matrix"].numpy(), frame_count)
        for matrix, num_frames in zip(matrices, batch["num_frames"].numpy(), strict=True):
            videos.append((matrix[np.newaxis].astype(matrix_type), np.int32([num_frames])))
        if len(videos) >= count:
            break
    if not videos:
        raise utils.UserInputError(
            f"--representative_data_pattern={data_pattern} holds no videos to calibrate with."
        )

    def generate():
        for matrix, num_frames in videos[:count]:
            yield {INPUT_NAMES[0]: matrix, INPUT_NAMES[1]: num_frames}

    return generate


def make_converter(model, run_config, quantization, representative_dataset=None):
    """A TFLiteConverter of `model`'s device function with `quantization`'s settings."""
    if quantization not in QUANTIZATIONS:
        raise utils.UserInputError(
            f"--litert_quantization={quantization}: choose one of {', '.join(QUANTIZATIONS)}."
        )
    function = device_function(model, run_config)
    # The converter saves what it is given as a SavedModel first: the plain variables (not the
    # Keras wrappers) are what it then freezes into constants.
    holder = tf.Module()
    holder.model_variables = [getattr(variable, "value", variable) for variable in model.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative_dataset is None:
            raise utils.UserInputError(
                "--litert_quantization=int8 calibrates on videos: give "
                "--representative_data_pattern (training records)."
            )
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def describe_conversion_error(error):
    """The operations (and where in the model) that stopped a conversion, from a
    ConverterError: "tf.Op (in model/layer/...)", or the converter's first line."""
    found = []
    for data in getattr(error, "errors", []):
        operator = data.operator.name or ""
        places = [call.name.split("@")[0] for call in data.location.call if "/" in call.name]
        if operator:
            # The scope of the operation, less its own name and Keras's "_1" suffixes.
            scope = re.sub(r"_\d+(?=/|$)", "", places[0].rsplit("/", 1)[0]) if places else ""
            where = f" (in {scope})" if scope else ""
            found.append(f"{operator}{where}")
    if not found:
        ops = re.findall(r"'(tf\.\w+)' op", str(error))
        found = sorted(set(ops))
    if found:
        return ", ".join(dict.fromkeys(found))
    return str(error).strip().splitlines()[0][:300]


def convert(model, run_config, quantization="float32", representative_dataset=None):
    """The .tflite flatbuffer of `model` (built from `run_config`) with `quantization`.

    Raises:
      utils.UserInputError: when the model cannot be converted, naming the operation and the
        layer that stop it.
    """
    converter = make_converter(model, run_config, quantization, representative_dataset)
    try:
        return converter.convert()
    except Exception as error:  # the converter's errors have no common base but Exception
        if type(error).__name__ != "ConverterError":
            raise
        raise utils.UserInputError(
            f"{run_config.model} cannot be converted to LiteRT ({quantization}): "
            f"{describe_conversion_error(error)} has no LiteRT builtin kernel."
        ) from None


def export_litert(
    model,
    run_config,
    export_dir,
    quantization="float32",
    representative_data_pattern="",
    representative_count=REPRESENTATIVE_VIDEOS,
    video_id_key="id",
    checkpoint_path="",
):
    """Writes `export_dir/model.tflite`, its `model_flags.json` and `litert.json`.

    Returns:
      the path of the .tflite file.
    """
    representative = None
    if quantization == "int8" and representative_data_pattern:
        representative = representative_videos(
            run_config, representative_data_pattern, representative_count, video_id_key
        )
    flatbuffer = convert(model, run_config, quantization, representative)
    tf.io.gfile.makedirs(export_dir)
    utils.check_writable_dir(export_dir, "--export_dir")
    path = os.path.join(export_dir, LITERT_MODEL_FILE)
    utils.write_bytes_atomically(path, flatbuffer)
    run_config.save(export_dir)
    info = {
        "quantization": quantization,
        "frames": device_frame_count(run_config),
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "checkpoint": checkpoint_path,
        "bytes": len(flatbuffer),
    }
    utils.write_text_atomically(
        os.path.join(export_dir, LITERT_INFO_FILE), json.dumps(info, indent=2) + "\n"
    )
    return path


def load_run_config(litert_model, flag_name="--litert_model"):
    """The RunConfig saved beside a .tflite file (`model_flags.json` in its directory).

    Raises:
      utils.UserInputError: when the file or its model_flags.json is missing.
    """
    if not tf.io.gfile.exists(litert_model) or tf.io.gfile.isdir(litert_model):
        raise utils.UserInputError(f"{flag_name}={litert_model} is not a .tflite file.")
    directory = os.path.dirname(litert_model) or "."
    if not tf.io.gfile.exists(os.path.join(directory, run_config_module.MODEL_FLAGS_FILE)):
        raise utils.UserInputError(
            f"{flag_name}={litert_model}: no {run_config_module.MODEL_FLAGS_FILE} beside it "
            "(export_model.py --format=litert writes it): the frames it reads are unknown."
        )
    return run_config_module.RunConfig.load(directory, flag_name)


def load_litert(litert_model, num_threads=None, flag_name="--litert_model"):
    """(the LiteRTModel, the RunConfig saved beside it, the export's `litert.json` ({} when
    missing)) of a .tflite file.

    Raises:
      utils.UserInputError: when the file or its model_flags.json is missing, or the file is
        not a model of one video's frames.
    """
    run_config = load_run_config(litert_model, flag_name)
    info_path = os.path.join(os.path.dirname(litert_model) or ".", LITERT_INFO_FILE)
    info = {}
    if tf.io.gfile.exists(info_path):
        with tf.io.gfile.GFile(info_path) as handle:
            info = json.load(handle)
    try:
        # The weight cache gives a full int8 model wrong scores (litert_runtime.py).
        model = LiteRTModel(
            litert_model, num_threads, weight_cache=info.get("quantization") != "int8"
        )
    except (RuntimeError, ValueError, KeyError) as error:
        raise utils.UserInputError(
            f"{flag_name}={litert_model} is not a model of export_model.py --format=litert: "
            f"{str(error).strip().splitlines()[0][:200] if str(error).strip() else error!r}"
        ) from None
    expected = device_frame_count(run_config)
    if model.frame_count != expected or model.num_classes != run_config.num_classes:
        raise utils.UserInputError(
            f"{flag_name}={litert_model} takes {model.frame_count} frames and gives "
            f"{model.num_classes} classes, its model_flags.json {expected} and "
            f"{run_config.num_classes}: export it again."
        )
    return model, run_config, info
