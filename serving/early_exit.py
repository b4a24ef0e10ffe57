"""Stopping a video early: the exit rule of a model that reads in stages (`--exit_stages`), its
calibration, and predictions that read only the stages each video needs.

    calibration = early_exit.calibrate(model, run_config, "train/*.tfrecord")
    predict = early_exit.ExitPredictor(model, early_exit.exit_thresholds(calibration, 0.95))
    outputs = predict(video_matrix, num_frames)   # + frames_read, exit_stage per video

The rule: after stage s (all but the last), a video stops when its confidence, the largest of
its class probabilities, reaches the stage's threshold t_s. The thresholds come from a
calibration on videos the evaluation does not use (a slice of the training split): per stage,
each video's confidence and whether its top class already is the one the last stage gives.
For an agreement target a (`--exit_threshold`), t_s is the lowest confidence such that the
calibration videos at or above it agree with the last stage in at least a fraction a of cases:
a = 0 stops every video after the first stage, and a above what any confidence reaches reads
every stage.

`ExitPredictor` re-batches: stage s runs only on the videos still reading, on the frames of that
stage alone (dequantized then), and adds them to those videos' pooling (models.EncoderModel:
`encoder.partial`, `combine`, `finish`), all stages in one compiled function. A video's
outputs are those of the stage it stopped after, exactly the model's outputs on the frames of
the stages up to it.
"""

import functools
import json
import os

import numpy as np
import tensorflow as tf

import readers
import utils
from pipeline import frame_selection
from runs import checkpoints

CALIBRATION_FILE = "exit_calibration.json"
# Training videos read for the calibration unless told otherwise.
CALIBRATION_VIDEOS = 2000


def confidence_of(logits):
    """The exit rule's confidence: `logits [..., classes]` -> the largest class probability
    `[...]` (float32; the calibration and the predictor compute it alike)."""
    return tf.sigmoid(tf.reduce_max(tf.cast(logits, tf.float32), axis=-1))


def stage_confidences(stage_logits):
    """`stage_logits [stages, batch, classes]` -> (confidence `[stages, batch]`, the largest class
    probability; top class `[stages, batch]`)."""
    top_class = np.argmax(np.asarray(stage_logits), axis=-1)
    return confidence_of(stage_logits).numpy(), top_class


def calibrate(
    model,
    run_config,
    data_pattern,
    max_videos=CALIBRATION_VIDEOS,
    batch_size=64,
    video_id_key="id",
    flag_name="--exit_calibration_data_pattern",
):
    """Per stage but the last, the confidence of up to `max_videos` videos of `data_pattern` and
    whether their top class is the last stage's: the calibration of the exit rule.

    Raises:
      utils.UserInputError: for a model that does not read in stages, or no videos.
    """
    if run_config.exit_stages < 2:
        raise utils.UserInputError(
            f"{run_config.model} reads its frames in one pass (--exit_stages=1): it has no exit "
            "to calibrate."
        )
    reader = readers.reader_for(run_config, video_id_key, check_labels=False)
    dataset, _ = reader.make_dataset(data_pattern, batch_size, num_readers=1, flag_name=flag_name)

    @tf.function(reduce_retracing=True)
    def stage_logits(video_matrix, num_frames):
        return model(video_matrix, num_frames, training=False, in_stages=True)["stage_logits"]

    confidences, agreements = [], []
    videos = 0
    for batch in dataset:
        confidence, top_class = stage_confidences(
            stage_logits(batch["video_matrix"], batch["num_frames"])
        )
        confidences.append(confidence[:-1])
        agreements.append(top_class[:-1] == top_class[-1])
        videos += confidence.shape[1]
        if videos >= max_videos:
            break
    if not videos:
        raise utils.UserInputError(f"{flag_name}={data_pattern} holds no videos to calibrate on.")
    confidence = np.concatenate(confidences, axis=1)[:, :max_videos]
    agreement = np.concatenate(agreements, axis=1)[:, :max_videos]
    return {
        "exit_stages": run_config.exit_stages,
        "data_pattern": data_pattern,
        "videos": int(confidence.shape[1]),
        "confidence": confidence.round(6).tolist(),
        "agrees_with_last_stage": agreement.astype(int).tolist(),
    }


def write_calibration(train_dir, calibration):
    """Writes `train_dir/exit_calibration.json` (atomically)."""
    utils.write_text_atomically(
        os.path.join(train_dir, CALIBRATION_FILE), json.dumps(calibration) + "\n"
    )


def load_calibration(train_dir, exit_stages):
    """The calibration in `train_dir`.

    Raises:
      utils.UserInputError: when it is missing or was made for other stages.
    """
    path = os.path.join(train_dir, CALIBRATION_FILE)
    if not tf.io.gfile.exists(path):
        raise utils.UserInputError(
            f"--exit_threshold needs {path}: train.py writes it at the end of training a model "
            "with --exit_stages > 1 (or run it again on the train_dir to add it)."
        )
    with tf.io.gfile.GFile(path) as handle:
        calibration = json.load(handle)
    if calibration.get("exit_stages") != exit_stages:
        raise utils.UserInputError(
            f"{path} calibrates {calibration.get('exit_stages')} stages, the model has "
            f"{exit_stages}: train.py writes a new one when it resumes the train_dir."
        )
    return calibration


def exit_thresholds(calibration, target):
    """The confidence threshold of each stage but the last for agreement target `target` (see
    the module docstring): `[stages - 1]` floats, `inf` where no confidence reaches it.

    Raises:
      utils.UserInputError: for a target outside [0, 1].
    """
    if not 0.0 <= target <= 1.0:
        raise utils.UserInputError(f"--exit_threshold={target} must be in [0, 1].")
    thresholds = []
    for confidence, agrees in zip(
        calibration["confidence"], calibration["agrees_with_last_stage"], strict=True
    ):
        order = np.argsort(-np.asarray(confidence), kind="stable")
        ordered_confidence = np.asarray(confidence)[order]
        rate = np.cumsum(np.asarray(agrees)[order]) / np.arange(1, len(order) + 1)
        # Videos tied at a confidence stop together: only the last of a tie is a place to cut.
        last_of_tie = np.append(ordered_confidence[1:] != ordered_confidence[:-1], True)
        reached = np.flatnonzero((rate >= target) & last_of_tie)
        thresholds.append(float(ordered_confidence[reached[-1]]) if reached.size else np.inf)
    if target == 0.0:
        thresholds = [-np.inf] * len(thresholds)
    return thresholds


class ExitPredictor:
    """`predict(video_matrix, num_frames)` for a model that reads in stages, stopping each video
    after the first stage whose confidence reaches its threshold (`thresholds`: one per stage
    but the last).

    Returns numpy `predictions`, `logits` `[batch, num_classes]` (of the stage each video
    stopped after), `exit_stage [batch]` int32 and `frames_read [batch]` int32 (the video's
    frames in the stages it read).

    One compiled function runs every stage: each stage gathers the videos still reading, reads
    their frames of that stage, decides which stop and carries the others' sums on, all in the
    graph, with no return to Python between stages.
    """

    def __init__(self, model, thresholds):
        self.model = model
        self.exit_stages = model.config.exit_stages
        if len(thresholds) != self.exit_stages - 1:
            raise ValueError(f"{len(thresholds)} thresholds for {self.exit_stages} stages")
        self.thresholds = [float(threshold) for threshold in thresholds]
        self.predict = tf.function(self.predict_in_stages, reduce_retracing=True)

    def stage_frames(self, video_matrix, num_frames, positions):
        """The frames at `positions` (dequantized, padding zeroed) and their mask."""
        frames = tf.gather(video_matrix, positions, axis=1)
        mask = positions[tf.newaxis, :] < num_frames[:, tf.newaxis]
        if frames.dtype == tf.uint8:
            frames = utils.dequantize(frames)
        return tf.cast(frames, tf.float32) * tf.cast(mask, tf.float32)[..., tf.newaxis], mask

    def predict_in_stages(self, video_matrix, num_frames):
        """The graph of `__call__`: `video_matrix [batch, frames, features]`, `num_frames
        [batch]` -> its outputs, as tensors."""
        num_frames = tf.minimum(tf.cast(num_frames, tf.int32), tf.shape(video_matrix)[1])
        batch_size = tf.shape(video_matrix)[0]
        stage_of_frame = frame_selection.exit_stages_of(tf.shape(video_matrix)[1], self.exit_stages)
        logits = tf.zeros([batch_size, self.model.config.num_classes])
        exit_stage = tf.zeros([batch_size], tf.int32)
        frames_read = tf.zeros([batch_size], tf.int32)
        reading = tf.range(batch_size)  # the videos still reading, in the batch's order
        pooled = None
        for stage in range(self.exit_stages):
            positions = tf.cast(tf.where(tf.equal(stage_of_frame, stage))[:, 0], tf.int32)
            if stage == 0:  # every video reads the first stage
                frames, mask = self.stage_frames(video_matrix, num_frames, positions)
            else:
                frames, mask = self.stage_frames(
                    tf.gather(video_matrix, reading), tf.gather(num_frames, reading), positions
                )
            pooled, outputs = self.model.read_stage(frames, mask, pooled)
            indices = reading[:, tf.newaxis]
            frames_read = tf.tensor_scatter_nd_add(
                frames_read, indices, tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
            )
            if stage < self.exit_stages - 1:
                stops = confidence_of(outputs["logits"]) >= self.thresholds[stage]
            else:
                stops = tf.ones_like(reading, tf.bool)
            stopped = tf.boolean_mask(indices, stops)
            logits = tf.tensor_scatter_nd_update(
                logits, stopped, tf.boolean_mask(outputs["logits"], stops)
            )
            exit_stage = tf.tensor_scatter_nd_update(
                exit_stage, stopped, tf.fill([tf.shape(stopped)[0]], stage)
            )
            continuing = tf.logical_not(stops)
            reading = tf.boolean_mask(reading, continuing)
            pooled = tf.nest.map_structure(
                functools.partial(tf.boolean_mask, mask=continuing), pooled
            )
        return {
            "logits": logits,
            "predictions": tf.sigmoid(logits),
            "exit_stage": exit_stage,
            "frames_read": frames_read,
        }

    def __call__(self, video_matrix, num_frames):
        outputs = self.predict(tf.convert_to_tensor(video_matrix), tf.convert_to_tensor(num_frames))
        return {name: value.numpy() for name, value in outputs.items()}


def calibrate_train_dir(train_dir, data_pattern, max_videos=CALIBRATION_VIDEOS, video_id_key="id"):
    """Calibrates the exit rule of the latest checkpoint in `train_dir` on `data_pattern` and
    writes `train_dir/exit_calibration.json`; returns the calibration."""
    model, run_config, checkpoint_path = checkpoints.restore_model(train_dir)
    calibration = calibrate(model, run_config, data_pattern, max_videos, video_id_key=video_id_key)
    calibration["checkpoint"] = checkpoint_path
    write_calibration(train_dir, calibration)
    return calibration


def exit_predictor(train_dir, model, run_config, exit_threshold, checkpoint_path=None):
    """The ExitPredictor of `model` (restored from `train_dir`) for agreement target
    `exit_threshold`, with the thresholds of the calibration in `train_dir`; with
    `checkpoint_path`, only when that calibration is the checkpoint's.

    Raises:
      utils.UserInputError: for a model that reads in one pass, no calibration, or the
        calibration of another checkpoint.
    """
    if run_config.exit_stages < 2:
        raise utils.UserInputError(
            f"--exit_threshold={exit_threshold} stops a video after a stage: {train_dir} "
            "holds a model that reads its frames in one pass (--exit_stages=1)."
        )
    calibration = load_calibration(train_dir, run_config.exit_stages)
    calibrated = os.path.basename(calibration.get("checkpoint") or "")
    if checkpoint_path and calibrated and calibrated != os.path.basename(checkpoint_path):
        raise utils.UserInputError(
            f"--exit_threshold={exit_threshold}: {os.path.join(train_dir, CALIBRATION_FILE)} "
            f"calibrates {calibrated}, not {os.path.basename(checkpoint_path)}; one checkpoint's "
            f"thresholds do not hold for another. Export {calibrated}, or run train.py again "
            "on the train_dir to calibrate its latest checkpoint."
        )
    return ExitPredictor(model, exit_thresholds(calibration, exit_threshold))
