"""The cluster-and-aggregate layers of NetVLAD and NeXtVLAD (frame_level_models.py: the models).

Both softly assign every frame to learned clusters and sum, per cluster, the frames' residuals to
the cluster's centre; `VladEncoder` concatenates the aggregates of the features and feeds them
to a hidden layer with context gating, whose output is the video representation.

- `NetVLAD` (Miech, Laptev, Sivic 2017, "Learnable pooling with context gating"): the aggregate
  of one feature, intra- then L2-normalized.
- `NeXtVLAD` (Lin, Xiao, Fan 2018): each frame is expanded (x `expansion`) and cut into `groups`
  groups; each group is assigned to the clusters and weighted by a learned attention, so the
  aggregate is `expansion * features / groups` wide per cluster, not `features`: far fewer
  parameters and operations per frame. Batch-normalized.
- `ContextGating`: Miech et al.'s one-matrix gating, or Lin et al.'s squeeze-and-excitation
  with a reduction.

Masking: a padding frame's assignment is multiplied by 0, so it adds nothing to the aggregate;
a video with 0 frames aggregates to 0 (normalizing 0 gives 0), a finite output. Deviation from
both references: the soft assignment has a bias instead of a batch normalization over frames,
whose statistics would include the padding frames; the batch normalizations that remain act
on one vector per video.
"""

import tensorflow as tf

# Features after the first (audio) get this fraction of the clusters, as in both references.
LATER_FEATURE_CLUSTER_FRACTION = 2


def per_feature_poolings(feature_sizes, cluster_size, make_pooling):
    """One pooling per feature, `make_pooling(index, feature_size, clusters)`: `cluster_size`
    clusters for the first feature, half of it (at least 1) for each later one."""
    return [
        make_pooling(
            index,
            feature_size,
            cluster_size if index == 0 else max(cluster_size // LATER_FEATURE_CLUSTER_FRACTION, 1),
        )
        for index, feature_size in enumerate(feature_sizes)
    ]


def masked_assignment(assignment_logits, mask):
    """Softmax over the last axis, 0 for padding frames: `[batch, frames, ..., clusters]` and
    `mask [batch, frames]` bool -> the same shape."""
    weights = tf.cast(mask, assignment_logits.dtype)
    for _ in range(assignment_logits.shape.rank - 2):
        weights = weights[..., tf.newaxis]
    return tf.nn.softmax(assignment_logits, axis=-1) * weights


def residual_sums(assignment, descriptors):
    """The VLAD sums of a set of descriptors, which add up over disjoint sets: (sum_n a_nk x_nd
    `[batch, dims, clusters]`, sum_n a_nk `[batch, 1, clusters]`).

    Args:
      assignment: `[batch, descriptors, clusters]` soft assignments (0 for padding).
      descriptors: `[batch, descriptors, dims]`.
    """
    weighted_sum = tf.einsum("bnk,bnd->bdk", assignment, descriptors)
    return weighted_sum, tf.reduce_sum(assignment, axis=1)[:, tf.newaxis, :]


def normalized_residuals(sums, centers):
    """Per cluster k and dimension d, sum_n a_nk (x_nd - c_dk) from `residual_sums` and the
    centres `[dims, clusters]`: `[batch, dims, clusters]`, each cluster's column L2-normalized
    (intra-normalization)."""
    weighted_sum, assignment_total = sums
    return tf.math.l2_normalize(weighted_sum - assignment_total * centers[tf.newaxis], axis=1)


class NetVLAD(tf.keras.layers.Layer):
    """NetVLAD pooling of one feature: `frames [batch, frames, feature_size]` and `mask [batch,
    frames]` -> `[batch, feature_size * cluster_size]` (intra- and then L2-normalized)."""

    def __init__(self, feature_size, cluster_size, **kwargs):
        super().__init__(**kwargs)
        self.feature_size = feature_size
        self.cluster_size = cluster_size
        self.assignment = tf.keras.layers.Dense(cluster_size, name="assignment")
        self.centers = self.add_weight(
            name="centers",
            shape=[feature_size, cluster_size],
            initializer=tf.keras.initializers.RandomNormal(stddev=feature_size**-0.5),
        )

    def call(self, frames, mask, training=False):
        return self.finish(self.partial(frames, mask), training=training)

    def partial(self, frames, mask):
        """The residual sums of these frames (`residual_sums`), which add up over frames."""
        return residual_sums(masked_assignment(self.assignment(frames), mask), frames)

    def finish(self, sums, training=False):
        """The pooled feature `[batch, output_size]` of the summed frames."""
        vlad = tf.reshape(normalized_residuals(sums, self.centers), [-1, self.output_size])
        return tf.math.l2_normalize(vlad, axis=1)

    @property
    def output_size(self):
        return self.feature_size * self.cluster_size

    def frame_flops(self):
        """Operations per frame: the assignment and the residual sum (2 per multiply-add)."""
        return 2 * self.feature_size * self.cluster_size * 2


class NeXtVLAD(tf.keras.layers.Layer):
    """NeXtVLAD pooling of one feature: `frames [batch, frames, feature_size]` and `mask [batch,
    frames]` -> `[batch, group_size * cluster_size]`, group_size = expansion * feature_size /
    groups, batch-normalized."""

    def __init__(self, feature_size, cluster_size, groups, expansion, **kwargs):
        super().__init__(**kwargs)
        expanded_size = expansion * feature_size
        if expanded_size % groups:
            raise ValueError(
                f"expansion x feature size {expanded_size} is not divisible by {groups} groups"
            )
        self.feature_size = feature_size
        self.cluster_size = cluster_size
        self.groups = groups
        self.expanded_size = expanded_size
        self.group_size = expanded_size // groups
        self.expand = tf.keras.layers.Dense(expanded_size, name="expand")
        self.attention = tf.keras.layers.Dense(groups, activation="sigmoid", name="attention")
        self.assignment = tf.keras.layers.Dense(groups * cluster_size, name="assignment")
        self.centers = self.add_weight(
            name="centers",
            shape=[self.group_size, cluster_size],
            initializer=tf.keras.initializers.RandomNormal(stddev=self.group_size**-0.5),
        )
        self.normalization = tf.keras.layers.BatchNormalization(name="normalization")

    def call(self, frames, mask, training=False):
        return self.finish(self.partial(frames, mask), training=training)

    def partial(self, frames, mask):
        """The residual sums of these frames' groups (`residual_sums`), which add up over
        frames."""
        batch_size = tf.shape(frames)[0]
        num_frames = tf.shape(frames)[1]
        expanded = self.expand(frames)  # [batch, frames, expanded]
        attention = self.attention(expanded)  # [batch, frames, groups]
        logits = tf.reshape(
            self.assignment(expanded), [batch_size, num_frames, self.groups, self.cluster_size]
        )
        assignment = masked_assignment(logits, mask) * attention[..., tf.newaxis]
        assignment = tf.reshape(assignment, [batch_size, num_frames * self.groups, -1])
        grouped = tf.reshape(expanded, [batch_size, num_frames * self.groups, self.group_size])
        return residual_sums(assignment, grouped)

    def finish(self, sums, training=False):
        """The pooled feature `[batch, output_size]` of the summed frames."""
        vlad = tf.reshape(normalized_residuals(sums, self.centers), [-1, self.output_size])
        return self.normalization(vlad, training=training)

    @property
    def output_size(self):
        return self.group_size * self.cluster_size

    def frame_flops(self):
        """Operations per frame: expansion, attention, assignment, residual sum."""
        expanded = self.expanded_size
        return 2 * (
            self.feature_size * expanded
            + expanded * self.groups
            + expanded * self.groups * self.cluster_size
            + self.groups * self.group_size * self.cluster_size
        )


class ContextGating(tf.keras.layers.Layer):
    """x * sigmoid(W2 relu(BN(W1 x))) with W1 `[size, size / reduction]` (Lin et al.'s gating;
    reduction 1: one matrix, x * sigmoid(BN(W x)), Miech et al.'s). `[batch, size]` ->
    `[batch, size]`."""

    def __init__(self, size, reduction=1, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.reduction = reduction
        self.squeeze = tf.keras.layers.Dense(
            max(size // reduction, 1), use_bias=False, name="squeeze"
        )
        self.squeeze_normalization = tf.keras.layers.BatchNormalization(
            name="squeeze_normalization"
        )
        if reduction > 1:
            self.excite = tf.keras.layers.Dense(size, use_bias=False, name="excite")

    def call(self, inputs, training=False):
        gates = self.squeeze_normalization(self.squeeze(inputs), training=training)
        if self.reduction > 1:
            gates = self.excite(tf.nn.relu(gates))
        return inputs * tf.sigmoid(gates)

    def flops(self):
        squeezed = max(self.size // self.reduction, 1)
        if self.reduction > 1:
            return 2 * 2 * self.size * squeezed
        return 2 * self.size * squeezed


class VladEncoder(tf.keras.layers.Layer):
    """Pooling per feature, concatenated, then dropout, a hidden layer (batch-normalized,
    `hidden_activation`) and context gating: `frames [batch, frames, features]`, `mask [batch,
    frames]` -> `representation [batch, hidden_size]`."""

    def __init__(
        self,
        poolings,
        feature_sizes,
        hidden_size,
        dropout,
        gating_reduction,
        hidden_activation,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.feature_sizes = list(feature_sizes)
        self.poolings = poolings
        for index, pooling in enumerate(poolings):
            setattr(self, f"pooling_{index}", pooling)  # tracked by checkpoints
        self.aggregate_size = sum(pooling.output_size for pooling in poolings)
        self.output_size = hidden_size
        self.dropout = tf.keras.layers.Dropout(dropout)
        self.hidden = tf.keras.layers.Dense(hidden_size, use_bias=False, name="hidden")
        self.hidden_normalization = tf.keras.layers.BatchNormalization(name="hidden_normalization")
        self.hidden_activation = hidden_activation
        self.gating = ContextGating(hidden_size, gating_reduction, name="gating")

    def call(self, frames, mask, training=False):
        return self.finish(self.partial(frames, mask), training=training)

    def partial(self, frames, mask):
        """What these frames add to the video's pooling: per feature, the residual sums. The
        sums of disjoint sets of frames `combine` into those of their union."""
        features = tf.split(frames, self.feature_sizes, axis=-1)
        sums = [
            pooling.partial(feature, mask)
            for pooling, feature in zip(self.poolings, features, strict=True)
        ]
        for pooling in self.poolings:
            pooling.built = True  # its layers are built by `partial`, not by calling it
        return sums

    def combine(self, sums, other_sums):
        """The sums of the union of two disjoint sets of frames."""
        return tf.nest.map_structure(tf.add, sums, other_sums)

    def finish(self, sums, training=False):
        """`representation [batch, hidden_size]` of the frames summed in `sums`."""
        aggregates = [
            pooling.finish(feature_sums, training=training)
            for pooling, feature_sums in zip(self.poolings, sums, strict=True)
        ]
        aggregate = aggregates[0] if len(aggregates) == 1 else tf.concat(aggregates, axis=-1)
        aggregate = self.dropout(aggregate, training=training)
        hidden = self.hidden_normalization(self.hidden(aggregate), training=training)
        if self.hidden_activation is not None:
            hidden = self.hidden_activation(hidden)
        return self.gating(hidden, training=training)

    def flops(self, num_frames):
        """(operations that grow with the frames, fixed operations per video) for `num_frames`."""
        per_frame = sum(pooling.frame_flops() for pooling in self.poolings)
        fixed = 2 * self.aggregate_size * int(self.hidden.units) + self.gating.flops()
        return per_frame * num_frames, fixed
