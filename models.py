"""The model contract shared by every model in the zoo (model_zoo.py lists them).

A model is a `tf.keras.Model` built from one `config.RunConfig` (plain values, no absl FLAGS, so a
teacher and a student of different sizes can live in one process). It declares what it reads
as `input_kind` (utils.FRAME_INPUT or utils.VIDEO_INPUT). It is called as

    outputs = model(video_matrix, num_frames=num_frames, training=False)

with `video_matrix` `[batch, frames, features]` (frame-level; uint8 quantized or float32) or
`[batch, features]` (video-level), and `num_frames` `[batch]` int32. It returns a dict with at
least `predictions [batch, num_classes]` (sigmoid probabilities), `logits [batch, num_classes]`
and `representation [batch, hidden]` (the video encoding fed to the output layer).
"""

import tensorflow as tf

import utils
from layers import classifiers
from pipeline import frame_selection

# The outputs of a model that reads in exit stages, one per stage (EncoderModel.call_in_stages).
STAGE_OUTPUTS = {"logits": "stage_logits", "representation": "stage_representations"}


def frame_mask(num_frames, max_length):
    """`[batch, max_length]` bool: True where the frame index is below the video's frame count."""
    return tf.sequence_mask(num_frames, maxlen=max_length)


class BaseModel(tf.keras.Model):
    """Common pieces: dequantizing the reader's uint8 frames and the sigmoid output layer.

    `config` is a `config.RunConfig` (its sizes: num_classes, l2_penalty, lstm_cells, ...).
    """

    input_kind = utils.FRAME_INPUT  # what it reads (utils.FRAME_INPUT or VIDEO_INPUT)
    # The values RunConfig's size flags take for this model when not given (0 or ""): its
    # published setting (classifier, cluster_size, hidden_size).
    published_defaults = {"classifier": "logistic"}
    # True when a DistilledStudentModel can be built as this model: its `encoder` layer holds
    # every variable but the classifier's, and its outputs include `representation`.
    distillable = False

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.classifier = classifiers.build_classifier(config)

    def prepare_frames(self, video_matrix, num_frames):
        """Dequantizes uint8 input and zeroes padding frames.

        Args:
          video_matrix: `[batch, frames, features]` uint8 or float.
          num_frames: `[batch]` int; counts above `frames` are taken as `frames`.

        Returns:
          (frames `[batch, max(frames, 1), features]` float32, mask `[batch, frames]` bool,
          num_frames `[batch]` int32 clamped to the frames given).
        """
        if video_matrix.dtype == tf.uint8:
            video_matrix = utils.dequantize(video_matrix)
        video_matrix = tf.cast(video_matrix, tf.float32)
        # A batch of only empty videos has 0 steps, which an LSTM cannot run: pad to 1 (masked).
        missing_steps = tf.maximum(1 - tf.shape(video_matrix)[1], 0)
        video_matrix = tf.pad(video_matrix, [[0, 0], [0, missing_steps], [0, 0]])
        num_input_frames = tf.shape(video_matrix)[1]
        num_frames = tf.minimum(tf.cast(num_frames, tf.int32), num_input_frames)
        mask = frame_mask(num_frames, num_input_frames)
        return video_matrix * tf.cast(mask, tf.float32)[:, :, tf.newaxis], mask, num_frames

    def classify(self, representation):
        """`[batch, hidden]` -> dict with `logits` and `predictions`, `[batch, num_classes]`."""
        logits = self.classifier(representation)
        return {"logits": logits, "predictions": tf.sigmoid(logits)}

    def classifier_flops(self, representation_size):
        """Floating-point operations of the output layer for one video (2 per multiply-add of
        its matrix products; biases, sigmoids and the gates' softmax not counted)."""
        return sum(
            2 * representation_size * int(layer.kernel.shape[-1])
            for layer in classifier_dense_layers(self.classifier)
        )


def classifier_dense_layers(classifier):
    """The Dense layers of an output layer (itself, or a mixture's gates and experts)."""
    if isinstance(classifier, classifiers.MixtureOfExperts):
        return [classifier.gates, classifier.experts]
    return [classifier]


class EncoderModel(BaseModel):
    """A frame-level model that is an encoder (frames -> representation) and a classifier.

    Subclasses set `self.encoder`, a layer called as `encoder(frames, mask, training=...)` with
    `frames [batch, frames, features]` float32 (padding zeroed) and `mask [batch, frames]` bool,
    returning `representation [batch, encoder.output_size]`, and whose `flops(num_frames)` counts
    its operations. Call returns `predictions`, `logits` `[batch, num_classes]` and
    `representation`.

    A model that reads in exit stages (`config.exit_stages` > 1) adds the outputs of every
    stage (`call_in_stages`) when `in_stages` is True, by default in training, where each stage
    is distilled. Otherwise it reads all its frames in one pass: the outputs of its last stage,
    at the cost of the same model without stages.
    """

    distillable = True

    def call(self, video_matrix, num_frames, training=False, in_stages=None):
        frames, mask, _ = self.prepare_frames(video_matrix, num_frames)
        if in_stages is None:
            in_stages = training
        if self.config.exit_stages > 1 and in_stages:
            return self.call_in_stages(frames, mask, training)
        representation = self.encoder(frames, mask, training=training)
        outputs = self.classify(representation)
        outputs["representation"] = representation
        return outputs

    def call_in_stages(self, frames, mask, training=False):
        """The outputs after each of `config.exit_stages` coarse-to-fine stages of the frames
        (frame_selection.exit_stages_of): stage s adds its frames' pooling to the earlier
        stages' (`encoder.partial`, `encoder.combine`), so its outputs are the model's on every
        frame of the stages up to s, and the last stage's are the model's on all the frames.

        Returns the last stage's `predictions`, `logits`, `representation`, and
        `stage_logits [stages, batch, num_classes]`, `stage_representations [stages, batch,
        hidden]`.
        """
        stage_of_frame = frame_selection.exit_stages_of(
            tf.shape(frames)[1], self.config.exit_stages
        )
        pooled = None
        stage_outputs = []
        for stage in range(self.config.exit_stages):
            positions = tf.where(tf.equal(stage_of_frame, stage))[:, 0]
            pooled, outputs = self.read_stage(
                tf.gather(frames, positions, axis=1),
                tf.gather(mask, positions, axis=1),
                pooled,
                training,
            )
            stage_outputs.append(outputs)
        final = dict(stage_outputs[-1])
        for key, stacked in STAGE_OUTPUTS.items():
            final[stacked] = tf.stack([outputs[key] for outputs in stage_outputs])
        return final

    def read_stage(self, frames, mask, pooled=None, training=False):
        """One exit stage: adds the pooling of `frames [batch, stage frames, features]` (padding
        zeroed; `mask [batch, stage frames]`) to `pooled`, the earlier stages' (None: the first
        stage), and classifies the total. Returns (the pooling so far, outputs with
        `representation`)."""
        stage_pooled = self.encoder.partial(frames, mask)
        pooled = stage_pooled if pooled is None else self.encoder.combine(pooled, stage_pooled)
        representation = self.encoder.finish(pooled, training=training)
        # The encoder's layers are built by these calls, not by a call of the encoder itself.
        self.encoder.built = True
        outputs = self.classify(representation)
        outputs["representation"] = representation
        return pooled, outputs

    def flops(self, num_frames):
        """(per-frame part for `num_frames` frames, fixed part per video), 2 per multiply-add:
        the encoder's, and the classifier's in the fixed part."""
        frame_part, fixed = self.encoder.flops(num_frames)
        return frame_part, fixed + self.classifier_flops(self.encoder.output_size)
