"""Frame-level models: the paper's hierarchical LSTM teacher and the starter's baselines.

- `HierarchicalTeacherModel`: the video is cut into b blocks of m = `block_size` frames; a lower
  stacked LSTM encodes each block, an upper stacked LSTM encodes the sequence of block encodings,
  and its final state is the video representation E, fed to one sigmoid per class.
- `LstmModel`: one stacked LSTM over all frames (the starter's LSTM baseline).
- `FrameLevelLogisticModel`: the mean of the frames fed to a logistic layer (the starter's).
- `DbofModel`: the starter's deep bag of frames (per-frame projection, pooling, hidden layer).
The cluster-and-aggregate NetVLAD and NeXtVLAD models are in vlad_models.py.

Every model masks padding frames (index >= num_frames): they never change the output. A video
with 0 frames gets a zero representation, hence the output layer's bias as its prediction.
"""

import tensorflow as tf

from models import BaseModel, EncoderModel, frame_mask


class StackedLSTM(tf.keras.layers.Layer):
    """`num_layers` LSTMs of `units` cells, each feeding its full sequence to the next.

    Call with `inputs [batch, steps, features]` and `mask [batch, steps]` bool; returns
    (`outputs [batch, steps, units]`, the top layer's output at every step, padded steps holding
    the last valid output, zeros for a fully masked sequence; `final_state [batch, num_layers *
    units]`, the concatenated last hidden states of all layers, zeros for a fully masked sequence).
    Masks must be right-padded (True then False), as frame masks are.
    """

    def __init__(self, units, num_layers, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.num_layers = num_layers
        self.lstms = []
        for index in range(num_layers):
            lstm = tf.keras.layers.LSTM(
                units, return_sequences=True, return_state=True, name=f"lstm_{index}"
            )
            # An attribute per layer: checkpoints track attributes, not the layers of a list.
            setattr(self, f"lstm_{index}", lstm)
            self.lstms.append(lstm)

    def call(self, inputs, mask, training=False):
        # Only sequences with at least one step run through the LSTMs: fully masked ones (empty
        # blocks, empty videos) cost nothing, and cuDNN never sees a zero-length sequence.
        batch_size = tf.shape(inputs)[0]
        present = tf.cast(tf.where(tf.reduce_any(mask, axis=1))[:, 0], tf.int32)
        # One extra one-step sequence of zeros keeps the LSTM batch non-empty when no sequence
        # is present; it is dropped after.
        outputs = tf.concat([tf.gather(inputs, present), tf.zeros_like(inputs[:1])], axis=0)
        one_step = tf.sequence_mask([1], tf.shape(mask)[1])
        present_mask = tf.concat([tf.gather(mask, present), one_step], axis=0)
        final_hidden = []
        for lstm in self.lstms:
            outputs, hidden, _ = lstm(outputs, mask=present_mask, training=training)
            final_hidden.append(hidden)
        final_state = final_hidden[0] if len(final_hidden) == 1 else tf.concat(final_hidden, -1)
        outputs, final_state = outputs[:-1], final_state[:-1]
        scatter_index = present[:, tf.newaxis]
        outputs = tf.scatter_nd(
            scatter_index, outputs, tf.stack([batch_size, tf.shape(inputs)[1], self.units])
        )
        final_state = tf.scatter_nd(
            scatter_index, final_state, tf.stack([batch_size, self.num_layers * self.units])
        )
        return outputs, final_state

    def compute_mask(self, inputs, mask=None):
        return None


class HierarchicalEncoder(tf.keras.layers.Layer):
    """Encodes frames with a block-level lower LSTM and a video-level upper LSTM.

    Call with `frames [batch, frames, features]` float and `num_frames [batch]`; returns a dict:
      `representation [batch, lstm_layers * lstm_cells]`: the upper LSTM's final state, E;
      `frame_outputs [batch, frames, lstm_cells]`: the lower LSTM's top-layer output at each
        frame (its running encoding of the frame's block up to that frame);
      `block_encodings [batch, blocks, lstm_layers * lstm_cells]`.
    """

    def __init__(self, block_size, lstm_cells, lstm_layers, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size
        self.lower = StackedLSTM(lstm_cells, lstm_layers, name="lower")
        self.upper = StackedLSTM(lstm_cells, lstm_layers, name="upper")

    def call(self, frames, num_frames, training=False):
        batch_size = tf.shape(frames)[0]
        num_input_frames = tf.shape(frames)[1]
        feature_size = frames.shape[-1]
        num_blocks = tf.maximum((num_input_frames + self.block_size - 1) // self.block_size, 1)
        padded_length = num_blocks * self.block_size
        frames = tf.pad(frames, [[0, 0], [0, padded_length - num_input_frames], [0, 0]])
        mask = frame_mask(num_frames, padded_length)

        # Lower level: every block of every video is one sequence of block_size frames.
        blocks = tf.reshape(frames, [batch_size * num_blocks, self.block_size, feature_size])
        block_mask = tf.reshape(mask, [batch_size * num_blocks, self.block_size])
        lower_outputs, block_states = self.lower(blocks, mask=block_mask, training=training)

        # Upper level: the sequence of block encodings; blocks past the last frame are masked.
        block_encodings = tf.reshape(block_states, [batch_size, num_blocks, block_states.shape[-1]])
        blocks_present = block_mask[:, 0]  # a block is present when its first frame is
        blocks_present = tf.reshape(blocks_present, [batch_size, num_blocks])
        _, representation = self.upper(block_encodings, mask=blocks_present, training=training)

        frame_outputs = tf.reshape(
            lower_outputs, [batch_size, padded_length, lower_outputs.shape[-1]]
        )[:, :num_input_frames]
        return {
            "representation": representation,
            "frame_outputs": frame_outputs,
            "block_encodings": block_encodings,
        }


class HierarchicalTeacherModel(BaseModel):
    """The paper's teacher: hierarchical LSTM over all frames, sigmoid output per class.

    Call with `video_matrix [batch, frames, features]` (uint8 or float) and `num_frames [batch]`;
    returns `predictions`, `logits` `[batch, num_classes]`, `representation`
    `[batch, lstm_layers * lstm_cells]`, `frame_outputs [batch, frames, lstm_cells]`.
    """

    distillable = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.encoder = HierarchicalEncoder(
            config.block_size, config.lstm_cells, config.lstm_layers, name="encoder"
        )
        self.representation_dropout = tf.keras.layers.Dropout(config.dropout)

    def call(self, video_matrix, num_frames, training=False):
        frames, _, num_frames = self.prepare_frames(video_matrix, num_frames)
        encoded = self.encoder(frames, num_frames, training=training)
        representation = encoded["representation"]
        outputs = self.classify(self.representation_dropout(representation, training=training))
        outputs["representation"] = representation
        outputs["frame_outputs"] = encoded["frame_outputs"]
        return outputs

    def flops(self, num_frames):
        """(per-frame part for `num_frames` frames, fixed part per video), 2 per multiply-add:
        the lower LSTM at every frame, the upper at every block (both grow with the frames);
        the classifier. Gate nonlinearities and elementwise products are not counted."""
        config = self.config
        num_blocks = -(-num_frames // config.block_size)
        lower = lstm_step_flops(config.feature_size, config.lstm_cells, config.lstm_layers)
        upper = lstm_step_flops(
            config.lstm_layers * config.lstm_cells, config.lstm_cells, config.lstm_layers
        )
        representation_size = config.lstm_layers * config.lstm_cells
        return (
            lower * num_frames + upper * num_blocks,
            self.classifier_flops(representation_size),
        )


def lstm_step_flops(input_size, units, num_layers):
    """Operations of one step of `num_layers` stacked LSTMs: 4 gates, each a product of the
    input and the previous output with their matrices (2 per multiply-add)."""
    total = 0
    for _ in range(num_layers):
        total += 2 * 4 * units * (input_size + units)
        input_size = units
    return total


class LstmModel(BaseModel):
    """The starter's LSTM baseline: a stacked LSTM over all frames, its final state classified.

    Returns `predictions`, `logits` `[batch, num_classes]`, `representation`
    `[batch, lstm_layers * lstm_cells]`, `frame_outputs [batch, frames, lstm_cells]`.
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.lstm = StackedLSTM(config.lstm_cells, config.lstm_layers, name="lstm")
        self.representation_dropout = tf.keras.layers.Dropout(config.dropout)

    def call(self, video_matrix, num_frames, training=False):
        frames, mask, _ = self.prepare_frames(video_matrix, num_frames)
        frame_outputs, representation = self.lstm(frames, mask=mask, training=training)
        outputs = self.classify(self.representation_dropout(representation, training=training))
        outputs["representation"] = representation
        outputs["frame_outputs"] = frame_outputs
        return outputs


class FrameLevelLogisticModel(BaseModel):
    """The starter's frame-level logistic model: mean over the video's frames, then logistic.

    Returns `predictions`, `logits` `[batch, num_classes]`, `representation [batch, features]`
    (the mean frame; zeros for an empty video).
    """

    def call(self, video_matrix, num_frames, training=False):
        frames, _, num_frames = self.prepare_frames(video_matrix, num_frames)
        frame_count = tf.maximum(tf.cast(num_frames, tf.float32), 1.0)[:, tf.newaxis]
        representation = tf.reduce_sum(frames, axis=1) / frame_count
        outputs = self.classify(representation)
        outputs["representation"] = representation
        return outputs


class DbofModel(EncoderModel):
    """The starter's deep bag of frames: each frame projected to `cluster_size` units (relu6),
    pooled over the video's frames (`--dbof_pooling`, max or average), a hidden layer of
    `hidden_size` units (relu6), then the classifier (a mixture of experts by default, as the
    starter's). Published (the starter): 8,192 clusters, hidden 1,024, max pooling, 2 mixtures.

    The starter's batch normalization of the frames and of the projection is replaced by a bias
    (statistics over frame positions would count padding); the pooled vector and the hidden
    layer are batch-normalized, one vector per video. Padding frames are excluded from the
    pooling; a video with 0 frames pools to 0.

    Call with `video_matrix [batch, frames, features]` and `num_frames [batch]`; returns
    `predictions`, `logits` `[batch, num_classes]`, `representation [batch, hidden_size]`.
    """

    published_defaults = {"classifier": "moe", "cluster_size": 8192, "hidden_size": 1024}

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.encoder = BagOfFramesEncoder(
            config.cluster_size, config.hidden_size, config.dbof_pooling, name="encoder"
        )

    def flops(self, num_frames):
        """(per-frame part for `num_frames` frames, fixed part per video), 2 per multiply-add."""
        feature_size = self.config.feature_size
        frame_part = 2 * feature_size * self.config.cluster_size * num_frames
        fixed = 2 * self.config.cluster_size * self.config.hidden_size
        return frame_part, fixed + self.classifier_flops(self.config.hidden_size)


class BagOfFramesEncoder(tf.keras.layers.Layer):
    """Per-frame projection (relu6), masked pooling, batch normalization of the pooled vector,
    hidden layer (batch-normalized, relu6): `frames [batch, frames, features]`, `mask [batch,
    frames]` -> `representation [batch, hidden_size]`. Both normalizations act on one vector
    per video, so padding frames never enter their statistics."""

    def __init__(self, cluster_size, hidden_size, pooling, **kwargs):
        super().__init__(**kwargs)
        self.pooling = pooling
        self.projection = tf.keras.layers.Dense(cluster_size, name="projection")
        self.pooled_normalization = tf.keras.layers.BatchNormalization(name="pooled_normalization")
        self.hidden = tf.keras.layers.Dense(hidden_size, use_bias=False, name="hidden")
        self.hidden_normalization = tf.keras.layers.BatchNormalization(name="hidden_normalization")

    def call(self, frames, mask, training=False):
        weights = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        projected = tf.nn.relu6(self.projection(frames)) * weights  # >= 0, 0 for padding
        if self.pooling == "max":
            pooled = tf.reduce_max(projected, axis=1)  # padding's 0 never exceeds a frame's
        else:
            frame_count = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
            pooled = tf.reduce_sum(projected, axis=1) / frame_count
        pooled = self.pooled_normalization(pooled, training=training)
        hidden = self.hidden_normalization(self.hidden(pooled), training=training)
        return tf.nn.relu6(hidden)
