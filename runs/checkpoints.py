"""Restoring a trained model: `train_dir/model_flags.json` rebuilds it, a checkpoint fills it.

model, config, checkpoint_path = checkpoints.restore_model(train_dir)
"""

import os

import tensorflow as tf

import model_zoo
import utils
from runs.config import DISTILL_DIR, RunConfig


def restore_model(train_dir, checkpoint_path=None, strategy=None, flag_name="--train_dir"):
    """Rebuilds the model of `train_dir` from model_flags.json and restores a checkpoint.

    Args:
      train_dir: directory written by train.py.
      checkpoint_path: a specific checkpoint; the latest in train_dir when None.
      strategy: build the model under this tf.distribute strategy's scope (None: no strategy).
      flag_name: the flag that gave `train_dir`, for error messages.

    Returns:
      (model, its RunConfig, checkpoint_path).

    Raises:
      utils.UserInputError: when model_flags.json or any checkpoint is missing, or the
        checkpoint does not hold this model's weights.
    """
    config = RunConfig.load(train_dir, flag_name)
    if checkpoint_path is None:
        checkpoint_path = tf.train.latest_checkpoint(train_dir)
        if checkpoint_path is None:
            distilling = os.path.join(train_dir, DISTILL_DIR)
            if tf.io.gfile.isdir(distilling) and tf.train.latest_checkpoint(distilling):
                raise utils.UserInputError(
                    f"{flag_name}={train_dir} holds a student stopped in its distillation phase "
                    f"({tf.train.latest_checkpoint(distilling)}): rerun train.py to finish it. "
                    "The student is evaluated and served once fine-tuned: before that its output "
                    "layer answers for the teacher's representation, not its own."
                )
            raise utils.UserInputError(
                f"No checkpoint in {flag_name}={train_dir}: run train.py first."
            )
    if strategy is None:
        model = model_zoo.build_model(config)
    else:
        with strategy.scope():
            model = model_zoo.build_model(config)
    status = tf.train.Checkpoint(model=model).restore(checkpoint_path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise utils.UserInputError(
            f"{checkpoint_path} does not hold the weights of the model in model_flags.json: "
            f"{str(error)[:300]}"
        ) from None
    status.expect_partial()  # the optimizer's slots are not needed here
    return model, config, checkpoint_path


def checkpoint_step(checkpoint_path):
    """The step a CheckpointManager checkpoint was saved at (its `-N` suffix), or -1."""
    suffix = checkpoint_path.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1
