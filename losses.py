"""Classification losses with the starter's interface: `calculate_loss(predictions, labels)`.

Each loss returns the batch mean of a per-video loss summed over classes. `predictions` and
`labels` are `[batch, num_classes]`; labels are multi-hot (bool or 0/1 float).
"""

import sys

import tensorflow as tf

from registry import Registry


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


# The label losses by name (`--label_loss`).
LOSSES = Registry.of_subclasses("--label_loss", BaseLoss, [sys.modules[__name__]])


def representation_distance(teacher_representation, student_representation):
    """L_student for the final representations: squared distance ||E_T - E_S||^2.

    Averaged over the representation's dimensions (and over the batch), so its scale does not
    grow with the LSTM width: summed over 2,048 or 4,096 dimensions the paper's unweighted
    squared error dwarfs the classification loss. The teacher side is not differentiated: the
    student moves toward the teacher, never the reverse.

    Args:
      teacher_representation: `[batch, hidden]` E_T.
      student_representation: `[batch, hidden]` E_S.

    Returns:
      scalar float32.
    """
    teacher_representation = tf.stop_gradient(tf.cast(teacher_representation, tf.float32))
    difference = tf.cast(student_representation, tf.float32) - teacher_representation
    return tf.reduce_mean(tf.square(difference))


def prediction_distance(teacher_logits, student_logits):
    """The prediction-level term: the student's sigmoid outputs matched to the teacher's.

    Binary cross-entropy of the student's outputs against the teacher's sigmoid outputs as soft
    labels, summed over classes and averaged over the batch (the form of CrossEntropyLoss); the
    teacher side is not differentiated. Its minimum is the teacher's own entropy, reached when
    the student's outputs equal the teacher's.

    Args:
      teacher_logits, student_logits: `[batch, classes]`.

    Returns:
      scalar float32.
    """
    soft_labels = tf.stop_gradient(tf.sigmoid(tf.cast(teacher_logits, tf.float32)))
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=soft_labels, logits=tf.cast(student_logits, tf.float32)
    )
    return tf.reduce_mean(tf.reduce_sum(cross_entropy, axis=1))


def intermediate_distance(
    teacher_frame_outputs, student_frame_outputs, frame_indices, student_num_frames
):
    """The intermediate variant's extra term: the lower-level outputs at the selected frames.

    The student's i-th frame is frame `frame_indices[:, i]` of the video (0, j, 2j, ... for
    uniform selection); its lower-level output is compared with the teacher's output at that
    same frame. Squared distance averaged over dimensions and over the selected frames that
    exist (padding excluded); the teacher side is not differentiated.

    Args:
      teacher_frame_outputs: `[batch, frames, hidden]`, the teacher's output at every frame.
      student_frame_outputs: `[batch, selected, hidden]`.
      frame_indices: `[batch, selected]` int, the video frame of each selected frame.
      student_num_frames: `[batch]` int, selected frames that exist per video.

    Returns:
      scalar float32 (0 when no frame exists).
    """
    teacher_at_selected = tf.gather(
        tf.stop_gradient(tf.cast(teacher_frame_outputs, tf.float32)), frame_indices, batch_dims=1
    )
    squared = tf.reduce_mean(
        tf.square(tf.cast(student_frame_outputs, tf.float32) - teacher_at_selected), axis=2
    )
    present = tf.sequence_mask(student_num_frames, maxlen=tf.shape(squared)[1], dtype=tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(squared * present), tf.reduce_sum(present))
