"""The deep bag of frames' encoder (the starter's DbofModel): per-frame projection, masked
pooling over the video's frames, a hidden layer.
"""

import tensorflow as tf


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
        self.output_size = hidden_size

    def call(self, frames, mask, training=False):
        return self.finish(self.partial(frames, mask), training=training)

    def partial(self, frames, mask):
        """What these frames add to the pooling: `(max,)` or `(sum, count)` of their projections,
        `[batch, cluster_size]` and `[batch, 1]`. Those of disjoint sets of frames `combine`
        into those of their union."""
        weights = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        projected = tf.nn.relu6(self.projection(frames)) * weights  # >= 0, 0 for padding
        if self.pooling == "max":
            # Padding's 0 never exceeds a frame's; no frame at all pools to 0.
            return (tf.maximum(tf.reduce_max(projected, axis=1), 0.0),)
        return tf.reduce_sum(projected, axis=1), tf.reduce_sum(weights, axis=1)

    def combine(self, pooled, other_pooled):
        """The pooling of the union of two disjoint sets of frames."""
        if self.pooling == "max":
            return (tf.maximum(pooled[0], other_pooled[0]),)
        return tf.nest.map_structure(tf.add, pooled, other_pooled)

    def finish(self, pooled, training=False):
        """`representation [batch, hidden_size]` of the frames pooled in `pooled`."""
        if self.pooling == "max":
            pooled = pooled[0]
        else:
            pooled = pooled[0] / tf.maximum(pooled[1], 1.0)
        pooled = self.pooled_normalization(pooled, training=training)
        hidden = self.hidden_normalization(self.hidden(pooled), training=training)
        return tf.nn.relu6(hidden)

    def flops(self, num_frames):
        """(operations that grow with the frames, fixed operations per video) for `num_frames`
        of a built encoder: the projection of every frame; the hidden layer."""
        feature_size, cluster_size = self.projection.kernel.shape
        frame_part = 2 * int(feature_size) * int(cluster_size) * num_frames
        return frame_part, 2 * int(cluster_size) * self.output_size
