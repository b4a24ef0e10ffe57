"""Tests of train.py's functions: model flags on resume, safety of --start_new_model, schedule."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE

import train
import utils

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")


def tiny_flags(**changes):
    values = {
        "model": "HierarchicalTeacherModel",
        "frame_features": True,
        "feature_names": "rgb,audio",
        "feature_sizes": "1024,128",
        "num_classes": 3862,
        "max_frames": 40,
        "frame_stride": 1,
        "frame_sampling": "uniform",
        "frame_sampling_seed": 0,
        "lstm_cells": 4,
        "lstm_layers": 1,
        "dropout": 0.0,
        "block_size": 10,
        "l2_penalty": 1e-8,
        "label_loss": "CrossEntropyLoss",
    }
    values.update(changes)
    return values


def train_once(train_dir, model_flags, **options):
    settings = {"batch_size": 16, "max_steps": 1, "log_every_n_steps": 1, "num_epochs": 1}
    settings.update(options)
    resolved = train.resolve_model_flags(
        train_dir, model_flags, set(model_flags), settings.get("start_new_model", False)
    )
    return train.train(
        train.TrainOptions(train_data_pattern=SAMPLE, train_dir=train_dir, **settings), resolved
    )


def test_model_flags_bind_only_once_a_checkpoint_exists(tmp_path):
    train_dir = str(tmp_path / "model")
    # A first run that fails on the data leaves a model_flags.json but no checkpoint ...
    with pytest.raises(utils.UserInputError, match="Label out of range"):
        train_once(train_dir, tiny_flags(num_classes=100))
    # ... which must not bind the next run.
    result = train_once(train_dir, tiny_flags())
    assert result["global_step"] == 1
    assert utils.load_model_flags(train_dir)["num_classes"] == 3862
    # Now it binds: a contradicting flag is refused, an omitted one is taken from the file.
    with pytest.raises(utils.UserInputError, match="--lstm_cells=8 .*checkpoint has 4"):
        train.resolve_model_flags(train_dir, tiny_flags(lstm_cells=8), {"lstm_cells"}, False)
    resolved = train.resolve_model_flags(train_dir, tiny_flags(lstm_cells=8), set(), False)
    assert resolved["lstm_cells"] == 4


def test_start_new_model_keeps_the_old_model_when_the_input_is_wrong(tmp_path):
    train_dir = str(tmp_path / "model")
    train_once(train_dir, tiny_flags())
    before = sorted(tf.io.gfile.listdir(train_dir))
    options = train.TrainOptions(
        train_data_pattern=str(tmp_path / "typo*.tfrecord"),
        train_dir=train_dir,
        start_new_model=True,
    )
    with pytest.raises(utils.UserInputError, match="no files match"):
        train.train(options, train.normalise_model_flags(tiny_flags()))
    assert sorted(tf.io.gfile.listdir(train_dir)) == before


def test_resume_continues_the_step_and_the_optimizer(tmp_path):
    train_dir = str(tmp_path / "model")
    train_once(train_dir, tiny_flags(), max_steps=2)
    result = train_once(train_dir, tiny_flags(), max_steps=3)
    assert result["global_step"] == 3
    reader = tf.train.load_checkpoint(result["checkpoint"])
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 3


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"label_loss": "BaseLoss"}, "--label_loss"),
        ({"label_loss": "tf"}, "--label_loss"),
        ({"frame_stride": 0}, "--frame_stride"),
        ({"block_size": 0}, "--block_size"),
        ({"model": "LogisticModel"}, "--model=LogisticModel"),
        ({"feature_sizes": "1024"}, "--feature_names"),
    ],
)
def test_bad_model_flags_name_the_flag(change, flag):
    with pytest.raises(utils.UserInputError, match=flag):
        train.normalise_model_flags(tiny_flags(**change))


def test_bad_options_name_the_flag():
    with pytest.raises(utils.UserInputError, match="--clip_gradient_norm"):
        train.TrainOptions(train_data_pattern="x", train_dir="y", clip_gradient_norm=-1).validate()
    with pytest.raises(utils.UserInputError, match="--batch_size"):
        train.TrainOptions(train_data_pattern="x", train_dir="y", batch_size=0).validate()


def test_learning_rate_decays_in_steps_of_examples():
    options = train.TrainOptions(
        train_data_pattern="x",
        train_dir="y",
        batch_size=100,
        base_learning_rate=0.01,
        learning_rate_decay=0.5,
        learning_rate_decay_examples=1000,
    )
    schedule = train.make_learning_rate(options)
    rates = [float(schedule(step)) for step in (0, 9, 10, 19, 20)]
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.005, 0.005, 0.0025], rtol=1e-6)
