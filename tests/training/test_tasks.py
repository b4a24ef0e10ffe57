"""Tests of tasks.make_stages through the loop: a serial student without a trained teacher
trains its own first, in train_dir/teacher, and the run resumes in the stage where it stopped."""

import pytest
import tensorflow as tf
from conftest import short_video_train_set, tiny_config, tiny_options

import utils
from runs import checkpoints, config, students
from training import tasks, trainer

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def train_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages_data")
    # 20 videos in batches of 10: 2 steps an epoch.
    return short_video_train_set(root, 20, NUM_CLASSES, seed=3, min_frames=12, max_frames=30)


def student_config(**changes):
    values = {
        "model": "DistilledStudentModel",
        "num_classes": NUM_CLASSES,
        "frame_stride": 4,
        "block_size": 3,
        "teacher_block_size": 6,
        "distill_recipe": "serial",
        "prediction_weight": 1.0,
        "student_label_weight": 1.0,
        "random_frame_offset": True,
    }
    values.update(changes)
    return tiny_config(**values)


def run(train_dir, train_pattern, run_config, **options):
    distill_options = config.DistillOptions(joint_epochs=1, finetune_epochs=1, scheme="serial")
    stages = tasks.make_stages(
        run_config, tiny_options(train_pattern, train_dir, **options), distill_options
    )
    return stages, trainer.train_stages(stages)


def test_a_serial_student_trains_its_own_teacher_first_and_resumes_by_stage(
    tmp_path, train_pattern
):
    train_dir = tmp_path / "student"
    stages, results = run(train_dir, train_pattern, student_config(), max_steps=1)
    assert [stage.name for stage in stages] == ["teacher", "student"]
    # --max_steps stopped the teacher: the student does not start from a half-trained one.
    assert len(results) == 1 and not results[0]["finished"]
    assert tf.train.latest_checkpoint(str(train_dir)) is None

    _, results = run(train_dir, train_pattern, student_config())
    # The teacher went on from step 1 of its 1 + 1 passes (2 steps each); the student
    # distilled 1 pass and fine-tuned 1 (its own steps, from 0).
    assert [result["global_step"] for result in results] == [4, 4]
    assert all(result["finished"] for result in results)
    teacher_dir = str(train_dir / config.TEACHER_DIR)
    teacher, teacher_config, _ = checkpoints.restore_model(teacher_dir)
    assert teacher_config == students.own_teacher_run_config(student_config())
    assert teacher_config.model == "HierarchicalTeacherModel" and teacher_config.block_size == 6
    student, student_flags, _ = checkpoints.restore_model(str(train_dir))
    assert student_flags == student_config()

    _, again = run(train_dir, train_pattern, student_config())
    assert [result["steps_run"] for result in again] == [0, 0]  # a finished run is a no-op


def test_a_teacher_dir_built_for_another_student_is_refused(tmp_path, train_pattern):
    train_dir = tmp_path / "student"
    run(train_dir, train_pattern, student_config(), max_steps=1)
    with pytest.raises(utils.UserInputError, match="teacher built for another student: lstm"):
        run(train_dir, train_pattern, student_config(lstm_cells=4))
    # --start_new_model trains both anew, the old teacher gone once the input was read.
    _, results = run(
        train_dir, train_pattern, student_config(lstm_cells=4), start_new_model=True, max_steps=1
    )
    assert results[0]["global_step"] == 1
    assert checkpoints.restore_model(str(train_dir / "teacher"))[1].lstm_cells == 4
