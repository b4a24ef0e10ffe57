"""The output layers a model puts on its video representation (`--classifier`).

- `logistic`: one sigmoid per class, a Dense layer (the paper's and the starter's logistic model).
- `moe`: the starter's mixture of experts (`MoeModel`): per class, `--moe_num_mixtures` logistic
  experts and a softmax gate over them plus a "no class" expert that always says 0.

Both are called with `representation [batch, hidden]` and return `logits [batch, num_classes]`,
so that `sigmoid(logits)` are the class probabilities and every loss can use the stable
cross-entropy with logits. The mixture's logits are log(p / (1 - p)) of its probabilities p
clipped to [1e-7, 1 - 1e-7].
"""

import tensorflow as tf

import utils

CLASSIFIERS = ("logistic", "moe")
# Probabilities of the mixture are clipped to [epsilon, 1 - epsilon] before their logits.
MOE_EPSILON = 1e-7


class MixtureOfExperts(tf.keras.layers.Layer):
    """The starter's mixture of experts over `num_classes` independent binary classes.

    p(class) = sum_e gate_e * sigmoid(expert_e), with gate = softmax over `num_mixtures` + 1
    experts per class (the last one predicts 0). Call with `representation [batch, hidden]`;
    returns `logits [batch, num_classes]` float32.
    """

    def __init__(self, num_classes, num_mixtures, l2_penalty, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_mixtures = num_mixtures
        regularizer = tf.keras.regularizers.L2(l2_penalty)
        self.gates = tf.keras.layers.Dense(
            num_classes * (num_mixtures + 1),
            kernel_regularizer=regularizer,
            dtype="float32",
            name="gates",
        )
        self.experts = tf.keras.layers.Dense(
            num_classes * num_mixtures,
            kernel_regularizer=regularizer,
            dtype="float32",
            name="experts",
        )

    def call(self, representation):
        representation = tf.cast(representation, tf.float32)
        gate_logits = tf.reshape(
            self.gates(representation), [-1, self.num_classes, self.num_mixtures + 1]
        )
        expert_logits = tf.reshape(
            self.experts(representation), [-1, self.num_classes, self.num_mixtures]
        )
        gates = tf.nn.softmax(gate_logits, axis=-1)[:, :, : self.num_mixtures]
        probabilities = tf.reduce_sum(gates * tf.sigmoid(expert_logits), axis=-1)
        probabilities = tf.clip_by_value(probabilities, MOE_EPSILON, 1.0 - MOE_EPSILON)
        return tf.math.log(probabilities) - tf.math.log1p(-probabilities)


def check_classifier(classifier, moe_num_mixtures):
    """Raises utils.UserInputError for an unknown --classifier or fewer than 1 mixture."""
    if classifier not in CLASSIFIERS:
        raise utils.UserInputError(
            f"--classifier={classifier}: choose one of {', '.join(CLASSIFIERS)}."
        )
    if moe_num_mixtures < 1:
        raise utils.UserInputError(f"--moe_num_mixtures={moe_num_mixtures} must be >= 1.")


def build_classifier(config):
    """The output layer `config.classifier` names, for `config.num_classes` classes."""
    if config.classifier == "moe":
        return MixtureOfExperts(
            config.num_classes, config.moe_num_mixtures, config.l2_penalty, name="classifier"
        )
    return tf.keras.layers.Dense(
        config.num_classes,
        kernel_regularizer=tf.keras.regularizers.L2(config.l2_penalty),
        dtype="float32",  # probabilities stay float32 under mixed precision
        name="classifier",
    )
