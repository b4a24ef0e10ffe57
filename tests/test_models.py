"""Tests of the model contract (models.py) and the zoo (model_zoo.py)."""

import numpy as np
import pytest
from conftest import tiny_config

import frame_level_models
import model_zoo
import utils
import video_level_models


def test_zoo_lists_the_models_and_their_input_kinds():
    names = model_zoo.model_names()
    expected = {
        "HierarchicalTeacherModel",
        "LstmModel",
        "FrameLevelLogisticModel",
        "DistilledStudentModel",
        "LogisticModel",
        "MoeModel",
        "DbofModel",
        "NetVLADModel",
        "NeXtVLADModel",
    }
    assert set(names) == expected and names == sorted(names)
    assert model_zoo.MODELS.get("HierarchicalTeacherModel").input_kind == utils.FRAME_INPUT
    assert model_zoo.MODELS.get("LogisticModel").input_kind == utils.VIDEO_INPUT
    assert model_zoo.MODELS.get("MoeModel").input_kind == utils.VIDEO_INPUT


def test_unknown_model_lists_the_choices():
    with pytest.raises(utils.UserInputError, match="--model=NoSuchModel.*HierarchicalTeacher"):
        model_zoo.MODELS.get("NoSuchModel")


def test_find_class_by_name_searches_modules_in_order():
    found = utils.find_class_by_name("LstmModel", [video_level_models, frame_level_models])
    assert found is frame_level_models.LstmModel
    with pytest.raises(utils.UserInputError):
        utils.find_class_by_name("Missing", [frame_level_models])


def test_build_model_creates_the_variables_for_the_configs_sizes():
    run_config = tiny_config(num_classes=5, feature_names="rgb", feature_sizes="6")
    model = model_zoo.build_model(run_config)
    assert model.classifier.kernel.shape == (run_config.lstm_cells * run_config.lstm_layers, 5)
    video = model_zoo.build_model(
        run_config.replace(model="LogisticModel", frame_features=False, feature_names="mean_rgb")
    )
    assert video.classifier.kernel.shape == (6, 5)


def test_prepare_frames_dequantizes_and_zeroes_the_padding():
    model = model_zoo.build_model(
        tiny_config(num_classes=2, feature_names="rgb", feature_sizes="3")
    )
    video = np.full((2, 4, 3), 255, np.uint8)
    frames, mask, num_frames = model.prepare_frames(video, np.array([2, 9]))
    np.testing.assert_array_equal(num_frames, [2, 4])  # counts clamped to the frames given
    np.testing.assert_array_equal(mask, [[True, True, False, False], [True] * 4])
    top = 255 * 4.0 / 255 + 4.0 / 512 - 2.0  # the dataset's dequantization of 255
    np.testing.assert_allclose(frames[0, :2], top, rtol=1e-6)
    np.testing.assert_array_equal(frames[0, 2:], 0.0)
