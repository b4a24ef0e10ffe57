"""Tests of train.py's command line in process: flags -> configuration, and its last line."""

import pytest
import tensorflow as tf
from absl import flags
from conftest import tiny_config

import train
import utils
from runs import config, recipes, students
from training import trainer


def configure(*argv):
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    flag_values(["train.py", "--train_data_pattern=data*.tfrecord", *argv])
    return train.configure(flag_values)


def test_a_teacher_refuses_the_flags_only_a_student_reads(tmp_path):
    for flag in ("--teacher_train_dir=/tmp/teacher", "--joint_epochs=2", "--distill_weight=3"):
        with pytest.raises(utils.UserInputError, match=f"{flag.split('=')[0]} is for"):
            configure(f"--train_dir={tmp_path}", flag)
    run_config, options, distill_options = configure(f"--train_dir={tmp_path}")
    assert run_config.model == "HierarchicalTeacherModel" and distill_options is None
    assert options.train_dir == str(tmp_path)


def test_a_student_without_a_stride_is_warned_and_takes_block_5(tmp_path, caplog):
    run_config, _, distill_options = configure(
        f"--train_dir={tmp_path}", "--model=DistilledStudentModel", "--joint_epochs=2"
    )
    assert "reads every frame" in caplog.text
    assert run_config.frame_stride == 1 and run_config.block_size == config.STUDENT_BLOCK_SIZE
    assert distill_options.joint_epochs == 2 and distill_options.trains_own_teacher
    # Every frame read: no offset to draw, whatever the recipe.
    assert not run_config.random_frame_offset
    caplog.clear()
    configure(f"--train_dir={tmp_path}", "--model=DistilledStudentModel", "--frame_stride=10")
    assert "reads every frame" not in caplog.text
    run_config, _, _ = configure(
        f"--train_dir={tmp_path}",
        "--model=DistilledStudentModel",
        "--frames_per_video=10",
        "--frame_sampling=first_middle_last",
    )
    assert "reads every frame" not in caplog.text
    assert (run_config.frames_per_video, run_config.frame_sampling) == (10, "first_middle_last")
    assert not run_config.random_frame_offset  # fixed places: no phase to draw
    with pytest.raises(utils.UserInputError, match="--frames_per_video=10 and --frame_stride=4"):
        configure(f"--train_dir={tmp_path}", "--frames_per_video=10", "--frame_stride=4")


def test_the_default_recipe_is_serial_and_a_given_flag_wins(tmp_path):
    student = ("--model=DistilledStudentModel", "--frame_stride=10")
    run_config, _, distill_options = configure(f"--train_dir={tmp_path}", *student)
    recipe = recipes.RECIPES[recipes.DEFAULT_RECIPE]
    assert run_config.distill_recipe == recipes.DEFAULT_RECIPE
    assert distill_options.scheme == recipe.scheme == "serial"
    for name in recipes.RECIPE_FLAGS:
        assert getattr(run_config, name) == getattr(recipe, name)
    run_config, _, _ = configure(f"--train_dir={tmp_path}", *student, "--prediction_weight=0.5")
    assert run_config.prediction_weight == 0.5
    run_config, _, distill_options = configure(
        f"--train_dir={tmp_path}", *student, "--distill_recipe=paper"
    )
    assert distill_options.joint and not run_config.random_frame_offset
    assert (run_config.prediction_weight, run_config.student_label_weight) == (0.0, 0.0)
    # A teacher has no recipe: its model_flags.json keeps the RunConfig's default.
    run_config, _, _ = configure(f"--train_dir={tmp_path}")
    assert run_config.distill_recipe == config.RunConfig.distill_recipe


def test_a_student_of_another_family_and_its_own_teacher(tmp_path):
    run_config, _, _ = configure(
        f"--train_dir={tmp_path}",
        "--model=DistilledStudentModel",
        "--frame_stride=10",
        "--student_architecture=NeXtVLADModel",
    )
    # The published sizes and output layer, resolved into what model_flags.json will hold.
    assert (run_config.architecture, run_config.family) == ("NeXtVLADModel", "nextvlad")
    assert (run_config.cluster_size, run_config.hidden_size, run_config.classifier) == (
        128,
        2048,
        "moe",
    )
    teacher = students.own_teacher_run_config(run_config)
    assert (teacher.model, teacher.hidden_size, teacher.frame_stride) == ("NeXtVLADModel", 2048, 1)
    with pytest.raises(utils.UserInputError, match="--student_architecture is for"):
        configure(f"--train_dir={tmp_path}", "--student_architecture=NeXtVLADModel")
    run_config, _, _ = configure(
        f"--train_dir={tmp_path}", "--model=DbofModel", "--cluster_size=64"
    )
    assert (run_config.cluster_size, run_config.hidden_size) == (64, 1024)


def test_a_missing_teacher_is_named_by_its_own_flag(tmp_path):
    with pytest.raises(utils.UserInputError, match="--teacher_train_dir=.* does not exist"):
        configure(
            f"--train_dir={tmp_path / 'student'}",
            "--model=DistilledStudentModel",
            "--frame_stride=10",
            f"--teacher_train_dir={tmp_path / 'no-teacher'}",
        )


def test_a_student_stopped_while_distilling_resumes_with_its_stored_flags(tmp_path):
    stored = tiny_config(model="DistilledStudentModel", frame_stride=4, distill_weight=3.0)
    stored.save(str(tmp_path))
    (tmp_path / config.DISTILL_DIR).mkdir()
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / config.DISTILL_DIR / "ckpt"))
    run_config, _, _ = configure(f"--train_dir={tmp_path}", "--model=DistilledStudentModel")
    assert run_config == stored  # not the defaults, though only phase 1 has a checkpoint
    with pytest.raises(utils.UserInputError, match="--distill_weight=10.0 .*checkpoint has 3.0"):
        configure(f"--train_dir={tmp_path}", "--model=DistilledStudentModel", "--distill_weight=10")


def test_the_last_lines_say_what_each_stage_did_and_how_to_evaluate():
    def stage(name, train_dir):
        return trainer.Stage(name, None, config.TrainOptions(train_dir=train_dir))

    stages = [stage("teacher", "/s/teacher"), stage("student", "/s")]
    teacher = {"global_step": 8, "steps_run": 8, "checkpoint": "/s/teacher/ckpt-8"}
    student = {"global_step": 6, "steps_run": 6, "checkpoint": "/s/ckpt-6", "finished": True}
    lines = train.describe_results([teacher, student], stages).splitlines()
    assert lines[0] == "Teacher: Trained to step 8; checkpoint /s/teacher/ckpt-8"
    assert lines[1] == "Student: Trained to step 6; checkpoint /s/ckpt-6"
    assert lines[2].startswith("Evaluate it: python eval.py --train_dir=/s ")
    done = [dict(teacher, steps_run=0), dict(student, steps_run=0)]
    lines = train.describe_results(done, stages).splitlines()
    assert lines[0].startswith("Nothing to train: the teacher at step 8 in /s/teacher, the")
    assert lines[1].startswith("Evaluate it")
    stopped = dict(teacher, finished=False)
    lines = train.describe_results([stopped], stages).splitlines()
    assert lines[-1].startswith("Stopped in the teacher stage, before the student: rerun")


def test_the_last_line_says_what_happened():
    trained = {"global_step": 12, "steps_run": 12, "checkpoint": "/m/ckpt-12", "phase": "train"}
    assert train.describe_result(trained, "/m") == "Trained to step 12; checkpoint /m/ckpt-12"
    finished = dict(trained, steps_run=0)
    assert train.describe_result(finished, "/m").startswith("Nothing to train: /m is at step 12")
    distilling = {"global_step": 9, "steps_run": 9, "checkpoint": None, "phase": "distill"}
    line = train.describe_result(distilling, "/s")
    assert line.startswith("Stopped in phase distill at step 9") and "Rerun" in line
