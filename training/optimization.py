"""How a training step updates the weights: Adam on the starter's learning-rate schedule, mixed
precision with dynamic loss scaling, gradients summed over replicas and clipped, the
regularization term, and the check that stops on a NaN or infinite loss.
"""

import tensorflow as tf

from runs import distribution

# In the message of the error raised when a step's loss is NaN or infinite.
NONFINITE_LOSS_MESSAGE = "the training loss is not finite"


def make_learning_rate(options):
    """The starter's schedule: base * decay ** floor(examples seen / decay examples)."""
    return tf.keras.optimizers.schedules.ExponentialDecay(
        options.base_learning_rate,
        decay_steps=options.learning_rate_decay_examples / options.batch_size,
        decay_rate=options.learning_rate_decay,
        staircase=True,
    )


def set_precision_policy(mixed_precision):
    """Keras' global dtype policy: float16 compute with float32 variables, or float32."""
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def make_optimizer(learning_rate, mixed_precision):
    """Adam as the starter; with mixed precision wrapped in Keras' dynamic loss scaling.

    `learning_rate`: a float, a schedule, or a callable of no argument."""
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    if mixed_precision:
        optimizer = tf.keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def scale_gradients(gradients, factor):
    """Each gradient times `factor` (None stays None)."""
    return [None if gradient is None else gradient * factor for gradient in gradients]


def apply_gradients(optimizer, tape, loss, variables, clip_gradient_norm):
    """One optimizer step on `variables`, each gradient clipped to `clip_gradient_norm` (0: no).

    Runs in a replica's context. With several replicas, the gradients are summed over them
    before clipping and before the loss scaler checks them (the optimizer sums what it receives,
    so each replica then passes its share of the sum): the update is the one a single device
    makes on the global batch. With a `LossScaleOptimizer` (mixed precision) the loss is scaled,
    and the gradients are unscaled around the clipping.

    A NaN or infinite `loss` raises `tf.errors.InvalidArgumentError` (with
    NONFINITE_LOSS_MESSAGE) before any variable changes.
    """
    # The variables' updates wait for the check (Keras moves its step counter regardless).
    finite = tf.debugging.Assert(tf.math.is_finite(loss), [NONFINITE_LOSS_MESSAGE, loss])
    loss_scale = None
    if isinstance(optimizer, tf.keras.optimizers.LossScaleOptimizer):
        loss_scale = tf.cast(optimizer.dynamic_scale, loss.dtype)
    with tf.control_dependencies([finite]):
        # The tape has stopped recording: the scaled loss's gradients are the loss's times the
        # scale, which `output_gradients` applies.
        gradients = tape.gradient(loss, variables, output_gradients=loss_scale)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    # Clipping, and the loss scaler's finiteness check, must see the sum over replicas.
    aggregate = replicas > 1 and (clip_gradient_norm > 0 or loss_scale is not None)
    if aggregate:
        gradients = distribution.sum_over_replicas(gradients)
    if clip_gradient_norm > 0:
        if loss_scale is not None:
            gradients = scale_gradients(gradients, 1.0 / loss_scale)
        gradients = [
            None if gradient is None else tf.clip_by_norm(gradient, clip_gradient_norm)
            for gradient in gradients
        ]
        if loss_scale is not None:
            gradients = scale_gradients(gradients, loss_scale)
    if aggregate:
        gradients = scale_gradients(gradients, 1.0 / replicas)
    optimizer.apply_gradients(zip(gradients, variables, strict=True))


def regularization_loss(model, regularization_penalty):
    """The model's regularization losses times the penalty, divided among the replicas (0.0
    when it has none)."""
    if not model.losses:
        return 0.0
    return distribution.share_of_replicas(regularization_penalty * tf.add_n(model.losses))
