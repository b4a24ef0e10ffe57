"""Tests of config.py: the run configuration's validation, JSON, old files, flags and resume."""

import json

import pytest
import tensorflow as tf
from absl import flags
from conftest import tiny_config

import train
import utils
from runs import config


def test_json_round_trip_keeps_every_field():
    original = tiny_config(model="DistilledStudentModel", frame_stride=4, distill_mode="final")
    restored = config.RunConfig.from_json(original.to_json())
    assert restored == original
    counted = tiny_config(frames_per_video=6, frame_sampling="first_middle_last")
    assert config.RunConfig.from_json(counted.to_json()) == counted
    written = json.loads(original.to_json())
    assert written["version"] == config.CONFIG_VERSION
    assert written["feature_names"] == ["rgb", "audio"] and written["feature_sizes"] == [1024, 128]


def test_a_version_1_file_loads_with_defaults_for_what_it_lacks(tmp_path):
    # model_flags.json as the first releases wrote it: no version, no frame selection or
    # distillation fields.
    old = {
        "model": "HierarchicalTeacherModel",
        "frame_features": True,
        "feature_names": ["rgb", "audio"],
        "feature_sizes": [1024, 128],
        "num_classes": 3862,
        "max_frames": 300,
        "lstm_cells": 16,
        "lstm_layers": 2,
        "dropout": 0.5,
        "block_size": 20,
        "l2_penalty": 1e-08,
        "label_loss": "CrossEntropyLoss",
    }
    (tmp_path / config.MODEL_FLAGS_FILE).write_text(json.dumps(old))
    loaded = config.RunConfig.load(str(tmp_path))
    assert loaded.lstm_cells == 16 and loaded.frame_stride == 1
    assert loaded.frame_sampling == "uniform" and loaded.distill_weight == 10.0
    assert loaded.version == config.CONFIG_VERSION


def test_load_names_the_file_for_a_newer_version_an_unknown_key_or_bad_json(tmp_path):
    path = tmp_path / config.MODEL_FLAGS_FILE
    for text, message in [
        (json.dumps({"version": config.CONFIG_VERSION + 1}), "has version"),
        (json.dumps({"model": "LstmModel", "lstm_size": 3}), "unknown setting.*lstm_size"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ]:
        path.write_text(text)
        with pytest.raises(utils.UserInputError, match=message) as raised:
            config.RunConfig.load(str(tmp_path))
        assert str(path) in str(raised.value)
    with pytest.raises(utils.UserInputError, match="train.py"):
        config.RunConfig.load(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"label_loss": "BaseLoss"}, "--label_loss=BaseLoss"),
        ({"label_loss": "tf"}, "--label_loss=tf"),
        ({"frame_stride": 0}, "--frame_stride"),
        ({"block_size": 0}, "--block_size"),
        ({"lstm_cells": 0}, "--lstm_cells"),
        ({"lstm_layers": 0}, "--lstm_layers"),
        ({"dropout": 1.0}, "--dropout"),
        ({"num_classes": 0}, "--num_classes"),
        ({"max_frames": 0}, "--max_frames"),
        ({"frame_sampling": "every"}, "--frame_sampling"),
        ({"distill_mode": "middle"}, "--distill_mode"),
        ({"distill_weight": -1.0}, "--distill_weight"),
        ({"model": "NoSuchModel"}, "--model=NoSuchModel.*HierarchicalTeacherModel"),
        ({"model": "LogisticModel"}, "--model=LogisticModel is a video-level"),
        ({"feature_sizes": "1024"}, "--feature_names"),
        ({"frame_stride": 50, "max_frames": 40}, "--frame_stride=50 is larger than --max_frames"),
        ({"frames_per_video": -1}, "--frames_per_video"),
        ({"frames_per_video": 6, "frame_stride": 10}, "--frames_per_video=6 and --frame_stride=10"),
        ({"frames_per_video": 50}, "--frames_per_video=50 is larger than --max_frames=40"),
        (
            {"frame_stride": 10, "frame_sampling": "first", "random_frame_offset": True},
            "--random_frame_offset .*--frame_sampling=first",
        ),
        (
            {"frames_per_video": 40, "random_frame_offset": True},
            "--random_frame_offset needs --frames_per_video below --max_frames=40",
        ),
    ],
)
def test_bad_values_name_the_flag(change, flag):
    with pytest.raises(utils.UserInputError, match=flag):
        tiny_config(**change)


def test_the_config_is_frozen_and_derives_the_feature_width():
    run_config = tiny_config(feature_names="rgb", feature_sizes="1024")
    assert run_config.feature_names == ("rgb",) and run_config.feature_size == 1024
    with pytest.raises(AttributeError):
        run_config.lstm_cells = 3
    assert run_config.replace(lstm_cells=3).lstm_cells == 3


def parsed_train_flags(*argv):
    """train.py's flags parsed from `argv`, in a FlagValues of their own."""
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    flag_values(["train.py", *argv])
    return flag_values


def test_from_flags_reads_train_py_flags_and_knows_which_were_given():
    flag_values = parsed_train_flags(
        "--lstm_cells=8", "--feature_names=rgb", "--feature_sizes=1024"
    )
    run_config = config.RunConfig.from_flags(flag_values)
    assert run_config.lstm_cells == 8 and run_config.feature_names == ("rgb",)
    assert run_config.block_size == 20  # the flag's default
    assert config.RunConfig.flags_given(flag_values) == {
        "lstm_cells",
        "feature_names",
        "feature_sizes",
    }
    options = config.TrainOptions.from_flags(flag_values, environ={"AIP_MODEL_DIR": "gs://b/m"})
    assert options.final_export_dir == "gs://b/m" and options.batch_size == 256


def test_vertex_directories_come_from_the_environment():
    environ = {
        "AIP_CHECKPOINT_DIR": "gs://bucket/checkpoints",
        "AIP_TENSORBOARD_LOG_DIR": "gs://bucket/logs",
        "AIP_MODEL_DIR": "gs://bucket/model",
    }
    assert config.cloud_directories(False, environ) == {
        "train_dir": "gs://bucket/checkpoints",
        "summary_dir": "gs://bucket/logs",
        "final_export_dir": "gs://bucket/model",
    }
    assert "train_dir" not in config.cloud_directories(True, environ)
    assert config.cloud_directories(False, {}) == {}


def test_resuming_binds_the_stored_config_once_a_checkpoint_exists(tmp_path):
    train_dir = str(tmp_path)
    stored = tiny_config(lstm_cells=4)
    stored.save(train_dir)
    # model_flags.json alone (a run that failed before its first checkpoint) binds nothing.
    requested = tiny_config(lstm_cells=8)
    assert config.resolve_run_config(train_dir, requested, {"lstm_cells"}, False) == requested
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "ckpt"))
    with pytest.raises(utils.UserInputError, match="--lstm_cells=8 .*checkpoint has 4"):
        config.resolve_run_config(train_dir, requested, {"lstm_cells"}, False)
    assert config.resolve_run_config(train_dir, requested, set(), False) == stored
    assert config.resolve_run_config(train_dir, requested, {"lstm_cells"}, True) == requested


def test_train_options_and_phases_name_the_bad_flag():
    with pytest.raises(utils.UserInputError, match="--clip_gradient_norm"):
        config.TrainOptions(clip_gradient_norm=-1)
    with pytest.raises(utils.UserInputError, match="--batch_size"):
        config.TrainOptions(batch_size=0)
    with pytest.raises(utils.UserInputError, match="--strategy=gpu"):
        config.TrainOptions(strategy="gpu")
    with pytest.raises(utils.UserInputError, match="--corrupt_record_policy=ignore"):
        config.TrainOptions(corrupt_record_policy="ignore")
    with pytest.raises(utils.UserInputError, match="both 0"):
        config.DistillOptions(joint_epochs=0, finetune_epochs=0)
    with pytest.raises(utils.UserInputError, match="--joint_epochs"):
        config.DistillOptions(joint_epochs=-1)
