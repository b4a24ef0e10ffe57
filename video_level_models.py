"""Video-level models: they read one aggregated feature vector per video (`mean_rgb`, ...)."""

import tensorflow as tf

import utils
from models import BaseModel


class LogisticModel(BaseModel):
    """The starter's video-level logistic regression.

    Call with `video_matrix [batch, features]` float and `num_frames [batch]` (unused); returns
    `predictions`, `logits` `[batch, num_classes]` and `representation [batch, features]`.
    """

    input_kind = utils.VIDEO_INPUT

    def call(self, video_matrix, num_frames=None, training=False):
        representation = tf.cast(video_matrix, tf.float32)
        outputs = self.classify(representation)
        outputs["representation"] = representation
        return outputs


class MoeModel(LogisticModel):
    """The starter's video-level mixture of experts (classifiers.MixtureOfExperts,
    `--moe_num_mixtures` experts per class, 2 by default).

    Call with `video_matrix [batch, features]` float; returns `predictions`, `logits`
    `[batch, num_classes]` and `representation [batch, features]`.
    """

    published_defaults = {"classifier": "moe"}
