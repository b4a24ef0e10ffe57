"""Frame-level models: the paper's hierarchical LSTM teacher and the starter's baselines.

- `HierarchicalTeacherModel`: the video is cut into b blocks of m = `block_size` frames; a lower
  stacked LSTM encodes each block, an upper stacked LSTM encodes the sequence of block encodings,
  and its final state is the video representation E, fed to one sigmoid per class.
- `LstmModel`: one stacked LSTM over all frames (the starter's LSTM baseline).
- `FrameLevelLogisticModel`: the mean of the frames fed to a logistic layer (the starter's).
- `DbofModel`: the starter's deep bag of frames (per-frame projection, pooling, hidden layer).
- `NetVLADModel`, `NeXtVLADModel`: cluster-and-aggregate models (layers/vlad.py), a hidden layer
  with context gating, a mixture of experts by default.
The layers they are built of are in layers/.

Every model masks padding frames (index >= num_frames): they never change the output. A video
with 0 frames gets a zero representation, hence the output layer's bias as its prediction.
"""

import tensorflow as tf

from layers import bag_of_frames, recurrent, vlad
from models import BaseModel, EncoderModel


class HierarchicalTeacherModel(BaseModel):
    """The paper's teacher: hierarchical LSTM over all frames, sigmoid output per class.

    Call with `video_matrix [batch, frames, features]` (uint8 or float) and `num_frames [batch]`;
    returns `predictions`, `logits` `[batch, num_classes]`, `representation`
    `[batch, lstm_layers * lstm_cells]`, `frame_outputs [batch, frames, lstm_cells]`.
    """

    distillable = True

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.encoder = recurrent.HierarchicalEncoder(
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
        lower = recurrent.lstm_step_flops(
            config.feature_size, config.lstm_cells, config.lstm_layers
        )
        upper = recurrent.lstm_step_flops(
            config.lstm_layers * config.lstm_cells, config.lstm_cells, config.lstm_layers
        )
        representation_size = config.lstm_layers * config.lstm_cells
        return (
            lower * num_frames + upper * num_blocks,
            self.classifier_flops(representation_size),
        )


class LstmModel(BaseModel):
    """The starter's LSTM baseline: a stacked LSTM over all frames, its final state classified.

    Returns `predictions`, `logits` `[batch, num_classes]`, `representation`
    `[batch, lstm_layers * lstm_cells]`, `frame_outputs [batch, frames, lstm_cells]`.
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.lstm = recurrent.StackedLSTM(config.lstm_cells, config.lstm_layers, name="lstm")
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
        self.encoder = bag_of_frames.BagOfFramesEncoder(
            config.cluster_size, config.hidden_size, config.dbof_pooling, name="encoder"
        )


class NetVLADModel(EncoderModel):
    """NetVLAD (Miech et al. 2017): one NetVLAD per feature (rgb: `cluster_size` clusters,
    every later feature such as audio half as many; layers/vlad.py), concatenated; a hidden layer
    (relu6) with context gating, then the classifier (a mixture of experts by default).
    Published: 256 clusters, hidden 1,024.

    Call with `video_matrix [batch, frames, features]` and `num_frames [batch]`; returns
    `predictions`, `logits` `[batch, num_classes]`, `representation [batch, hidden_size]`.
    """

    published_defaults = {"classifier": "moe", "cluster_size": 256, "hidden_size": 1024}

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        poolings = vlad.per_feature_poolings(
            config.feature_sizes,
            config.cluster_size,
            lambda index, size, clusters: vlad.NetVLAD(size, clusters, name=f"netvlad_{index}"),
        )
        self.encoder = vlad.VladEncoder(
            poolings,
            config.feature_sizes,
            config.hidden_size,
            dropout=0.0,
            gating_reduction=1,
            hidden_activation=tf.nn.relu6,
            name="encoder",
        )


class NeXtVLADModel(EncoderModel):
    """NeXtVLAD (Lin et al. 2018): one NeXtVLAD per feature (expanded, cut into groups with
    attention; layers/vlad.py), dropout on the aggregate, a hidden layer and squeeze-and-excite
    gating of reduction `gating_reduction`, then the classifier (a mixture of experts by
    default). Published: 128 clusters, hidden 2,048, 8 groups, expansion 2, reduction 8,
    dropout 0.5.

    Call with `video_matrix [batch, frames, features]` and `num_frames [batch]`; returns
    `predictions`, `logits` `[batch, num_classes]`, `representation [batch, hidden_size]`.
    """

    published_defaults = {"classifier": "moe", "cluster_size": 128, "hidden_size": 2048}

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        poolings = vlad.per_feature_poolings(
            config.feature_sizes,
            config.cluster_size,
            lambda index, size, clusters: vlad.NeXtVLAD(
                size, clusters, config.groups, config.expansion, name=f"nextvlad_{index}"
            ),
        )
        self.encoder = vlad.VladEncoder(
            poolings,
            config.feature_sizes,
            config.hidden_size,
            dropout=config.dropout,
            gating_reduction=config.gating_reduction,
            hidden_activation=None,
            name="encoder",
        )
