"""grid.py: parsing --ks and --methods, the grid's models and order, settings, model flags."""

import dataclasses
import random

import pytest

import utils
from experiments import grid
from runs.config import RunConfig
from runs.recipes import DEFAULT_RECIPE, RECIPE_FLAGS, RECIPES

TABLE_1_ORDER = [
    "TEACHER-FULL",
    "TEACHER-UNIFORM-50",
    "TEACHER-UNIFORM-25",
    "TEACHER-UNIFORM-10",
    "TEACHER-UNIFORM-5",
    "TEACHER-RANDOM-50",
    "TEACHER-RANDOM-25",
    "TEACHER-RANDOM-10",
    "TEACHER-RANDOM-5",
    "STUDENT-50-FINAL",
    "STUDENT-25-FINAL",
    "STUDENT-10-FINAL",
    "STUDENT-5-FINAL",
    "STUDENT-50-INTERMEDIATE",
    "STUDENT-25-INTERMEDIATE",
    "STUDENT-10-INTERMEDIATE",
    "STUDENT-5-INTERMEDIATE",
    "STUDENT-50-DEFAULT",
    "STUDENT-25-DEFAULT",
    "STUDENT-10-DEFAULT",
    "STUDENT-5-DEFAULT",
]


@pytest.mark.parametrize(
    "text, expected",
    [("5,10,25,50", [50, 25, 10, 5]), ("10", [10]), (" 25, 25 ,100", [100, 25]), ("1", [1])],
)
def test_parse_ks_accepts_percentages_with_an_integer_stride(text, expected):
    assert grid.parse_ks(text) == expected


@pytest.mark.parametrize("text", ["7", "0", "-5", "150", "abc", "", "10,,25", "12.5"])
def test_parse_ks_refuses_other_values(text):
    with pytest.raises(utils.UserInputError, match="--ks"):
        grid.parse_ks(text)


def test_parse_methods_keeps_table_order_and_refuses_unknown_names():
    assert grid.parse_methods(" final,uniform,final") == ["uniform", "final"]
    for text in ("teacher", "final,distilled", ""):
        with pytest.raises(utils.UserInputError, match="--methods"):
            grid.parse_methods(text)


def test_the_default_grid_is_table_1_in_its_order():
    models = grid.grid_models(grid.DEFAULT_KS)
    assert [model.name for model in models] == TABLE_1_ORDER
    assert [(model.k, model.frame_stride) for model in models[:5]] == [
        (100, 1),
        (50, 2),
        (25, 4),
        (10, 10),
        (5, 20),
    ]
    assert [model.is_student for model in models].count(True) == 12
    narrowed = grid.grid_models([10, 50], ["intermediate", "uniform"])
    # The methods keep the order they are given in; k descends within each.
    assert [model.name for model in narrowed] == [
        "TEACHER-FULL",
        "STUDENT-50-INTERMEDIATE",
        "STUDENT-10-INTERMEDIATE",
        "TEACHER-UNIFORM-50",
        "TEACHER-UNIFORM-10",
    ]


def test_row_order_sorts_any_names_into_table_1_order():
    shuffled = TABLE_1_ORDER + ["SOMETHING-ELSE"]
    random.Random(0).shuffle(shuffled)
    assert sorted(shuffled, key=grid.row_order) == TABLE_1_ORDER + ["SOMETHING-ELSE"]
    assert grid.row_order("TEACHER-UNIFORM-20") < grid.row_order("TEACHER-UNIFORM-10")


def test_bad_preset_data_and_sizes_are_user_errors(tmp_path):
    with pytest.raises(utils.UserInputError, match="--preset=huge"):
        grid.resolve_config(preset="huge")
    with pytest.raises(utils.UserInputError, match="--eval_data_pattern"):
        grid.resolve_config(train_data_pattern=str(tmp_path / "*.tfrecord"))
    with pytest.raises(utils.UserInputError, match="--distill_scheme"):
        grid.resolve_config(distill_scheme="parallel")
    with pytest.raises(utils.UserInputError, match="--batch_size=0"):
        grid.resolve_config(batch_size=0)
    with pytest.raises(utils.UserInputError, match="--joint_epochs \\+ --finetune_epochs"):
        grid.resolve_config(joint_epochs=0, finetune_epochs=0)
    with pytest.raises(utils.UserInputError, match="--base_learning_rate=0"):
        grid.resolve_config(base_learning_rate=0)
    real = grid.resolve_config(
        train_data_pattern=str(tmp_path / "train*.tfrecord"),
        eval_data_pattern=str(tmp_path / "validate*.tfrecord"),
    )
    assert real.num_classes == grid.YT8M_NUM_CLASSES and not real.synthetic
    assert (real.num_train_videos, real.steps_per_epoch) == (0, 0)


def test_size_overrides_replace_only_the_preset_values_they_name():
    tiny = grid.resolve_config(preset="tiny")
    assert (tiny.num_train_videos, tiny.batch_size, tiny.num_classes) == (24, 12, 4)
    assert (tiny.total_epochs, tiny.steps_per_epoch) == (2, 2)
    changed = grid.resolve_config(preset="tiny", lstm_cells=16, num_train_videos=25, seed=3)
    assert (changed.lstm_cells, changed.num_train_videos, changed.seed) == (16, 25, 3)
    assert changed.steps_per_epoch == 3  # ceil(25 / 12)
    unchanged = grid.resolve_config(preset="tiny", lstm_cells=None, batch_size=None)
    assert unchanged == tiny
    with pytest.raises(TypeError, match="frame_stride"):
        grid.resolve_config(preset="tiny", frame_stride=2)


def test_the_proxy_takes_the_presets_proxy_sizes_and_the_users_overrides_win():
    synthetic = grid.resolve_config(preset="small")
    assert (synthetic.base_learning_rate, synthetic.joint_epochs) == (0.003, 3)
    proxy = grid.resolve_config(preset="small", data="proxy")
    assert (proxy.base_learning_rate, proxy.joint_epochs, proxy.finetune_epochs) == (0.01, 9, 1)
    assert (proxy.lstm_cells, proxy.num_classes) == (64, 3862)
    chosen = grid.resolve_config(preset="small", data="proxy", base_learning_rate=0.002)
    assert (chosen.base_learning_rate, chosen.joint_epochs) == (0.002, 9)
    assert grid.resolve_config(preset="paper", data="proxy").base_learning_rate == 0.001


def test_aligned_teacher_blocks_span_the_students_blocks_in_video_frames():
    config = grid.resolve_config(preset="small", align_teacher_blocks=True)
    models = {model.name: model for model in grid.grid_models([10, 25])}
    assert grid.run_config_for(models["STUDENT-10-INTERMEDIATE"], config).teacher_block_size == 50
    assert grid.run_config_for(models["STUDENT-25-FINAL"], config).teacher_block_size == 20
    assert grid.run_config_for(models["TEACHER-FULL"], config).block_size == 20
    paper = grid.resolve_config(preset="small")
    assert grid.run_config_for(models["STUDENT-10-INTERMEDIATE"], paper).teacher_block_size == 20


def test_a_random_offset_trains_the_uniform_baselines_and_students_only():
    config = grid.resolve_config(preset="small", random_frame_offset=True)
    # The default row follows its recipe, not the grid's setting.
    models = {
        model.name: model
        for model in grid.grid_models([10], ["uniform", "random", "final", "intermediate"])
    }
    shifted = {
        name
        for name, model in models.items()
        if grid.run_config_for(model, config).random_frame_offset
    }
    assert shifted == {"TEACHER-UNIFORM-10", "STUDENT-10-FINAL", "STUDENT-10-INTERMEDIATE"}
    paper = grid.resolve_config(preset="small")
    assert not any(
        grid.run_config_for(model, paper).random_frame_offset for model in models.values()
    )
    with pytest.raises(utils.UserInputError, match="--random_frame_offset"):
        RunConfig(frame_stride=10, frame_sampling="random", random_frame_offset=True)


def test_run_configs_follow_the_method_and_k():
    config = grid.resolve_config(preset="tiny")
    teacher = grid.run_config_for(grid.GridModel("teacher", 100), config)
    assert teacher.model == "HierarchicalTeacherModel"
    assert (teacher.frame_stride, teacher.block_size) == (1, config.teacher_block_size)
    baseline = grid.run_config_for(grid.GridModel("random", 10), config)
    assert baseline.model == "HierarchicalTeacherModel"
    assert (baseline.frame_stride, baseline.frame_sampling) == (10, "random")
    assert baseline.block_size == config.student_block_size
    student = grid.run_config_for(grid.GridModel("intermediate", 25), config)
    assert student.model == "DistilledStudentModel"
    assert (student.distill_mode, student.frame_sampling) == ("intermediate", "uniform")
    assert (student.frame_stride, student.block_size) == (4, config.student_block_size)
    assert student.teacher_block_size == config.teacher_block_size
    # Everything else is the same for every model of the grid.
    teacher_values, student_values = teacher.to_dict(), student.to_dict()
    differing = {name for name in teacher_values if teacher_values[name] != student_values[name]}
    assert differing == {"model", "frame_stride", "block_size", "distill_mode"}


def test_the_default_row_is_train_pys_default_recipe_from_the_grids_teacher():
    joint = grid.resolve_config(preset="tiny", prediction_weight=3.0)
    default = grid.GridModel("default", 10)
    run_config = grid.run_config_for(default, joint)
    recipe = RECIPES[DEFAULT_RECIPE]
    assert run_config.model == "DistilledStudentModel" and run_config.frame_stride == 10
    assert run_config.distill_recipe == DEFAULT_RECIPE
    for name in RECIPE_FLAGS:  # the recipe's, not the grid's weights
        assert getattr(run_config, name) == getattr(recipe, name)
    assert run_config.exit_stages == 1  # the hierarchical family reads in one pass
    nextvlad = dataclasses.replace(joint, family="nextvlad")
    assert grid.run_config_for(default, nextvlad).exit_stages == recipe.exit_stages > 1
    phases = grid.distill_options_for(joint, "teacher_dir", default)
    assert phases.scheme == recipe.scheme
    assert phases.teacher_train_dir == ("teacher_dir" if recipe.scheme == "serial" else "")
    # The paper's students keep the grid's scheme.
    assert grid.distill_options_for(joint, "teacher_dir", grid.GridModel("final", 10)).joint


def test_every_model_trains_the_same_epochs_and_students_split_them_in_phases(tmp_path):
    config = grid.resolve_config(preset="tiny")
    options = grid.train_options_for(config, "dir", "train*")
    assert (options.max_steps, options.num_epochs, options.checkpoint_steps) == (0, 2, 2)
    assert (options.train_dir, options.train_data_pattern) == ("dir", "train*")
    phases = grid.distill_options_for(config, "teacher_dir")
    assert (phases.joint_epochs, phases.finetune_epochs, phases.teacher_train_dir) == (1, 1, "")
    serial = grid.resolve_config(preset="tiny", distill_scheme="serial")
    assert grid.distill_options_for(serial, "teacher_dir").teacher_train_dir == "teacher_dir"
    real = grid.resolve_config(
        preset="tiny", train_data_pattern="train*", eval_data_pattern="validate*"
    )
    assert grid.train_options_for(real, "dir", "train*").checkpoint_steps == 1000


def test_a_family_grid_builds_every_model_as_the_family_and_refuses_the_papers_methods():
    config = grid.resolve_config(preset="small", family="nextvlad")
    assert (config.cluster_size, config.hidden_size) == (16, 128)
    teacher = grid.run_config_for(grid.GridModel("teacher", 100), config)
    assert (teacher.model, teacher.cluster_size, teacher.classifier) == ("NeXtVLADModel", 16, "moe")
    student = grid.run_config_for(grid.GridModel("default", 10), config)
    assert student.model == "DistilledStudentModel"
    assert (student.student_architecture, student.hidden_size) == ("NeXtVLADModel", 128)
    uniform = grid.run_config_for(grid.GridModel("uniform", 10), config)
    assert (uniform.model, uniform.frame_stride) == ("NeXtVLADModel", 10)
    grid.check_methods_for_family(config, ["uniform", "default"])
    with pytest.raises(utils.UserInputError, match="intermediate is not trained for the nextvlad"):
        grid.check_methods_for_family(config, ["uniform", "intermediate"])
    with pytest.raises(utils.UserInputError, match="--families: 'lstm'"):
        grid.resolve_config(preset="small", family="lstm")
    # The paper's preset takes the published sizes.
    assert grid.resolve_config(preset="paper", family="netvlad").cluster_size == 0
    published = grid.run_config_for(
        grid.GridModel("teacher", 100), grid.resolve_config(preset="paper", family="netvlad")
    )
    assert (published.cluster_size, published.hidden_size) == (256, 1024)
    # DBoF grids pool by average, teacher and student; a grid written before kept the max.
    dbof = grid.resolve_config(preset="tiny", family="dbof")
    for model in (grid.GridModel("teacher", 100), grid.GridModel("default", 10)):
        assert grid.run_config_for(model, dbof).dbof_pooling == "average"
    defaults = {field.name: field.default for field in dataclasses.fields(grid.GridConfig)}
    assert defaults["dbof_pooling"] == "max" == config.dbof_pooling
    starter = grid.resolve_config(preset="tiny", family="dbof", dbof_pooling="max")
    assert grid.run_config_for(grid.GridModel("teacher", 100), starter).dbof_pooling == "max"


def test_the_follow_ups_frame_selection_baselines():
    config = grid.resolve_config(preset="tiny", random_frame_offset=True)
    methods = grid.parse_methods("first_middle_last,last,middle,first")
    assert methods == list(grid.SELECTION_METHODS)
    models = grid.grid_models([10], methods)
    assert [model.name for model in models] == [
        "TEACHER-FULL",
        "TEACHER-FIRST-10",
        "TEACHER-MIDDLE-10",
        "TEACHER-LAST-10",
        "TEACHER-FIRST-MIDDLE-LAST-10",
    ]
    for model in models[1:]:
        run_config = grid.run_config_for(model, config)
        assert run_config.frame_sampling == model.method and run_config.frame_stride == 10
        assert not run_config.random_frame_offset  # fixed places have no offset to draw
    # Not in the grid unless asked for.
    assert not set(grid.SELECTION_METHODS) & set(grid.DEFAULT_METHODS)
