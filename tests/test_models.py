"""Tests of the model zoo and its config."""

import pytest

import models
import utils


def test_zoo_lists_the_models():
    names = models.model_names()
    for name in ("HierarchicalTeacherModel", "LstmModel", "FrameLevelLogisticModel"):
        assert name in names
    assert "LogisticModel" in names
    assert models.is_frame_level("HierarchicalTeacherModel")
    assert not models.is_frame_level("LogisticModel")


def test_unknown_model_lists_the_choices():
    with pytest.raises(utils.UserInputError, match="--model=NoSuchModel.*HierarchicalTeacher"):
        models.build_model("NoSuchModel", models.ModelConfig())


def test_find_class_by_name_searches_modules_in_order():
    import frame_level_models
    import video_level_models

    found = utils.find_class_by_name("LstmModel", [video_level_models, frame_level_models])
    assert found is frame_level_models.LstmModel
    with pytest.raises(utils.UserInputError):
        utils.find_class_by_name("Missing", [frame_level_models])


@pytest.mark.parametrize(
    "field, value",
    [
        ("block_size", 0),
        ("lstm_cells", 0),
        ("lstm_layers", 0),
        ("dropout", 1.0),
        ("num_classes", 0),
    ],
)
def test_config_rejects_bad_values_naming_the_flag(field, value):
    config = models.ModelConfig(**{field: value})
    with pytest.raises(utils.UserInputError, match=f"--{field}"):
        config.validate()


def test_config_from_model_flags_sums_feature_sizes():
    config = models.config_from_model_flags(
        {"feature_sizes": [1024, 128], "num_classes": 5, "block_size": 3, "model": "x"}
    )
    assert config.feature_size == 1152 and config.num_classes == 5 and config.block_size == 3
