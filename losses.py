"""Classification losses with the starter's interface: `calculate_loss(predictions, labels)`.

Each loss returns the batch mean of a per-video loss summed over classes. `predictions` and
`labels` are `[batch, num_classes]`; labels are multi-hot (bool or 0/1 float).
"""

import tensorflow as tf


class BaseLoss:
    """Inherit from this class when implementing new losses."""

    def calculate_loss(self, unused_predictions, unused_labels, **unused_params):
        """Returns a scalar loss tensor."""
        raise NotImplementedError()


class CrossEntropyLoss(BaseLoss):
    """The paper's L_model: sum over classes of the binary cross-entropy, mean over the batch.

    Pass `logits=` for a numerically stable loss (`tf.nn.sigmoid_cross_entropy_with_logits`);
    from probabilities alone it clips them to [epsilon, 1 - epsilon] as the starter does.
    """

    def __init__(self, epsilon=1e-7):
        self.epsilon = epsilon

    def calculate_loss(self, predictions, labels, logits=None, **unused_params):
        labels = tf.cast(labels, tf.float32)
        if logits is not None:
            per_class = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=labels, logits=tf.cast(logits, tf.float32)
            )
        else:
            probabilities = tf.clip_by_value(
                tf.cast(predictions, tf.float32), self.epsilon, 1.0 - self.epsilon
            )
            per_class = -(
                labels * tf.math.log(probabilities) + (1.0 - labels) * tf.math.log1p(-probabilities)
            )
        return tf.reduce_mean(tf.reduce_sum(per_class, axis=1))


class HingeLoss(BaseLoss):
    """The starter's hinge loss: labels to {-1, +1}, max(0, b - y * f) summed over classes."""

    def __init__(self, b=1.0):
        self.b = b

    def calculate_loss(self, predictions, labels, **unused_params):
        labels = tf.cast(labels, tf.float32)
        signed_labels = 2.0 * labels - 1.0
        hinge = tf.maximum(0.0, self.b - signed_labels * tf.cast(predictions, tf.float32))
        return tf.reduce_mean(tf.reduce_sum(hinge, axis=1))


class SoftmaxLoss(BaseLoss):
    """The starter's softmax loss: cross-entropy against the label distribution (labels / count).

    A video with no label contributes 0. Predictions are treated as unnormalised positive scores,
    as in the starter: `softmax(predictions)` over classes.
    """

    def __init__(self, epsilon=1e-7):
        self.epsilon = epsilon

    def calculate_loss(self, predictions, labels, **unused_params):
        labels = tf.cast(labels, tf.float32)
        label_count = tf.reduce_sum(labels, axis=1, keepdims=True)
        target = tf.math.divide_no_nan(labels, label_count)
        log_probabilities = tf.nn.log_softmax(tf.cast(predictions, tf.float32), axis=1)
        return tf.reduce_mean(-tf.reduce_sum(target * log_probabilities, axis=1))
