"""Tests of runs/students.py: what a student takes from its teacher, and the refusals of a
--teacher_train_dir that holds no teacher."""

import pytest
import tensorflow as tf
from conftest import tiny_config

import utils
from runs import config, students


def test_a_student_takes_block_5_and_a_trained_teachers_sizes(tmp_path):
    teacher = tiny_config(num_classes=7, lstm_cells=12, max_frames=50)
    teacher.save(str(tmp_path))
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "ckpt"))
    requested = tiny_config(model="DistilledStudentModel", frame_stride=10)
    student = students.student_run_config(requested, {"lstm_cells"}, str(tmp_path))
    assert student.block_size == config.STUDENT_BLOCK_SIZE
    assert student.num_classes == 7 and student.max_frames == 50
    assert student.lstm_cells == requested.lstm_cells  # given: kept
    joint = students.student_run_config(requested, {"block_size"})
    assert joint.block_size == requested.block_size
    # A count as large as the teacher's max_frames reads every frame: no offset to draw.
    counted = tiny_config(model="DistilledStudentModel", frames_per_video=50, max_frames=60)
    counted = students.student_run_config(
        counted.replace(distill_recipe="serial"), set(), str(tmp_path)
    )
    assert counted.max_frames == 50 and not counted.random_frame_offset


def test_a_teacher_train_dir_that_holds_no_teacher_is_refused_saying_what_it_holds(tmp_path):
    def refusal(path):
        with pytest.raises(utils.UserInputError) as raised:
            students.load_teacher_config(str(path))
        message = str(raised.value)
        assert message.startswith(f"--teacher_train_dir={path} ")
        assert message.endswith(f"{students.TEACHER_NEEDED}.")
        return message

    def trained(name, run_config):
        train_dir = tmp_path / name
        run_config.save(str(train_dir))
        tf.train.Checkpoint(step=tf.Variable(1)).save(str(train_dir / "ckpt"))
        return train_dir

    assert "does not exist" in refusal(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "holds no model written by train.py" in refusal(tmp_path / "empty")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    assert "holds a SavedModel" in refusal(tmp_path / "export")
    student = trained("student", tiny_config(model="DistilledStudentModel", frame_stride=10))
    trained("student/teacher", tiny_config())
    message = refusal(student)
    assert "holds a student (DistilledStudentModel that reads 1 frame in 10), not a teacher" in (
        message
    )
    assert f"its own teacher is in {student / 'teacher'}" in message
    logistic = trained(
        "logistic",
        tiny_config(
            model="LogisticModel", frame_features=False, feature_names=("mean_rgb", "mean_audio")
        ),
    )
    assert "holds a LogisticModel" in refusal(logistic)
    uniform = trained("uniform", tiny_config(frame_stride=10))
    assert "reads 1 frame in 10 (a TEACHER-UNIFORM baseline)" in refusal(uniform)
    first = trained("first", tiny_config(frames_per_video=6, frame_sampling="first"))
    assert "reads 6 frames of each video (a TEACHER-FIRST baseline)" in refusal(first)
    tiny_config().save(str(tmp_path / "untrained"))
    assert "with no checkpoint yet" in refusal(tmp_path / "untrained")
    teacher = trained("teacher", tiny_config())
    assert students.load_teacher_config(str(teacher)) == tiny_config()
