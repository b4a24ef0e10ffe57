"""Tests of checkpoints.py: restoring a model from a train_dir, and what it refuses."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

import model_zoo
import utils
from runs import checkpoints, config


def test_restore_rebuilds_the_model_of_model_flags_with_the_checkpoints_weights(tmp_path):
    run_config = tiny_config(num_classes=6)
    model = model_zoo.build_model(run_config)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path), 2).save(5)
    run_config.save(str(tmp_path))
    restored, restored_config, path = checkpoints.restore_model(str(tmp_path))
    assert restored_config == run_config and path.endswith("ckpt-5")
    for saved, loaded in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    assert checkpoints.checkpoint_step(path) == 5
    assert checkpoints.checkpoint_step(str(tmp_path / "model.ckpt")) == -1


def test_restore_refuses_a_missing_checkpoint_and_other_weights(tmp_path):
    run_config = tiny_config(num_classes=6)
    run_config.save(str(tmp_path))
    with pytest.raises(utils.UserInputError, match="No checkpoint in .*run train.py first"):
        checkpoints.restore_model(str(tmp_path))
    other = model_zoo.build_model(run_config.replace(model="LstmModel"))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=other), str(tmp_path), 2).save(1)
    with pytest.raises(utils.UserInputError, match="does not hold the weights"):
        checkpoints.restore_model(str(tmp_path))


def test_a_student_stopped_while_distilling_is_explained(tmp_path):
    run_config = tiny_config(model="DistilledStudentModel", frame_stride=4)
    run_config.save(str(tmp_path))
    model = model_zoo.build_model(run_config)
    distill_dir = str(tmp_path / config.DISTILL_DIR)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), distill_dir, 1).save(3)
    with pytest.raises(utils.UserInputError, match="stopped in its distillation phase.*ckpt-3"):
        checkpoints.restore_model(str(tmp_path))
