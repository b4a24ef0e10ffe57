"""Tests of the student and the two distillation phases."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import short_video_train_set
from tensorflow.core.protobuf import trackable_object_graph_pb2

import distillation
import export_model
import models
import readers
import train
import utils

NUM_CLASSES = 5


def student_flags(**changes):
    values = train.normalise_model_flags(
        {
            "model": "DistilledStudentModel",
            "frame_features": True,
            "feature_names": "rgb,audio",
            "feature_sizes": "1024,128",
            "num_classes": NUM_CLASSES,
            "max_frames": 300,
            "frame_stride": 4,
            "lstm_cells": 8,
            "lstm_layers": 1,
            "dropout": 0.0,
            "block_size": 3,
            "l2_penalty": 1e-8,
            "label_loss": "CrossEntropyLoss",
            "teacher_block_size": 6,
        }
    )
    values.update(changes)
    return values


@pytest.fixture(scope="module")
def train_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill_data")
    return short_video_train_set(root, 40, NUM_CLASSES, seed=2, min_frames=12, max_frames=40)


def options_for(train_dir, train_pattern, **changes):
    values = {
        "train_data_pattern": train_pattern,
        "train_dir": str(train_dir),
        "batch_size": 10,
        "log_every_n_steps": 1,
        "checkpoint_steps": 100,
    }
    values.update(changes)
    return train.TrainOptions(**values)


def root_children(checkpoint_path):
    """Names of the objects a checkpoint saves at its root."""
    proto = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
        tf.train.load_checkpoint(checkpoint_path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    )
    return {child.local_name for child in proto.nodes[0].children}


def saved_model_variable_count(checkpoint_path):
    """Saved tensors that are weights (not optimizer slots, counters or the object graph)."""
    names = [name for name, _ in tf.train.list_variables(checkpoint_path)]
    skipped = ("optimizer/_variables/", "optimizer/_iterations", "save_counter", "step/")
    skipped += ("epochs_done", "_CHECKPOINTABLE_OBJECT_GRAPH")
    return len([name for name in names if not name.startswith(skipped)])


def fixed_batch(train_pattern, model_flags):
    reader = readers.reader_from_model_flags(model_flags, keep_all_frames=True)
    dataset, _ = reader.make_dataset(train_pattern, 10)
    return next(iter(dataset))


@pytest.mark.parametrize("distill_mode", ["final", "intermediate"])
def test_joint_phase_step_lowers_its_loss(train_pattern, distill_mode):
    model_flags = student_flags(distill_mode=distill_mode)
    tf.keras.utils.set_random_seed(0)
    student = models.build_from_model_flags(model_flags)
    teacher = distillation.build_teacher_encoder(model_flags, student)
    options = train.TrainOptions(train_data_pattern="", train_dir="")
    step, variables = distillation.make_phase_one_step(
        student,
        teacher,
        True,
        model_flags,
        tf.keras.optimizers.Adam(0.003),
        options,
        tf.distribute.get_strategy(),
    )
    assert len(variables) == len(teacher.trainable_variables) + len(student.trainable_variables)
    batch = fixed_batch(train_pattern, model_flags)
    assert batch["video_matrix"].shape[1] == -(-batch["full_video_matrix"].shape[1] // 4)
    first = step(batch)
    for _ in range(20):
        last = step(batch)
    first_loss, first_scalars, loss, scalars = first.loss, first.scalars, last.loss, last.scalars
    # Joint training: the teacher learns the labels while the student follows a moving target
    # (the distance grows from ~0 as the teacher's representation develops); the sum falls.
    assert float(loss) < float(first_loss)
    assert float(scalars["label_loss"]) < float(first_scalars["label_loss"])
    if distill_mode == "intermediate":
        assert float(scalars["distill_intermediate"]) > 0


@pytest.mark.parametrize("distill_mode", ["final", "intermediate"])
def test_serial_phase_step_brings_the_student_to_a_fixed_teacher(train_pattern, distill_mode):
    model_flags = student_flags(distill_mode=distill_mode)
    tf.keras.utils.set_random_seed(1)
    teacher_flags = dict(model_flags, model="HierarchicalTeacherModel", block_size=6)
    teacher = models.build_from_model_flags(teacher_flags)
    teacher.trainable = False
    student = models.build_from_model_flags(model_flags)
    options = train.TrainOptions(train_data_pattern="", train_dir="")
    step, variables = distillation.make_phase_one_step(
        student,
        teacher,
        False,
        model_flags,
        tf.keras.optimizers.Adam(0.01),
        options,
        tf.distribute.get_strategy(),
    )
    assert len(variables) == len(student.encoder.trainable_variables)
    batch = fixed_batch(train_pattern, model_flags)
    first = step(batch).scalars
    for _ in range(20):
        last = step(batch).scalars
    assert float(last["distill_final"]) < 0.5 * float(first["distill_final"])
    if distill_mode == "intermediate":
        assert float(last["distill_intermediate"]) < float(first["distill_intermediate"])


def train_teacher(tmp_path, train_pattern):
    teacher_dir = tmp_path / "teacher"
    teacher_flags = train.normalise_model_flags(
        dict(student_flags(), model="HierarchicalTeacherModel", frame_stride=1, block_size=6)
    )
    train.train(options_for(teacher_dir, train_pattern, max_steps=3), teacher_flags)
    return str(teacher_dir)


def test_joint_distillation_two_phases_leave_a_student_only_checkpoint(tmp_path, train_pattern):
    train_dir = tmp_path / "student"
    model_flags = student_flags(distill_mode="intermediate")
    result = distillation.train_distilled(
        options_for(train_dir, train_pattern),
        model_flags,
        distillation.DistillOptions(joint_epochs=2, finetune_epochs=1),
    )
    # 40 videos in batches of 10: 4 steps an epoch, 2 joint epochs then 1 fine-tuning epoch.
    assert result["global_step"] == 12 and result["phase"] == 2
    final = result["checkpoint"]
    assert final.endswith("ckpt-12")
    assert "teacher" not in root_children(final)
    student = models.build_from_model_flags(model_flags)
    assert saved_model_variable_count(final) == len(student.trainable_variables)
    phase_one = tf.train.latest_checkpoint(str(train_dir / distillation.PHASE_ONE_DIR))
    assert "teacher" in root_children(phase_one)

    # eval and inference treat it like any other model, reading 1 frame in 4.
    restored, restored_flags, _ = export_model.restore_model(str(train_dir))
    assert isinstance(restored, type(student)) and restored_flags["frame_stride"] == 4
    reader = readers.reader_from_model_flags(restored_flags)
    assert reader.frame_stride == 4 and not reader.keep_all_frames


def test_distillation_resumes_inside_phase_one(tmp_path, train_pattern):
    train_dir = tmp_path / "student"
    phases = distillation.DistillOptions(joint_epochs=2, finetune_epochs=1)
    first = distillation.train_distilled(
        options_for(train_dir, train_pattern, max_steps=3), student_flags(), phases
    )
    assert first["global_step"] == 3 and first["phase"] == 1
    assert tf.train.latest_checkpoint(str(train_dir)) is None  # no student-only checkpoint yet
    second = distillation.train_distilled(
        options_for(train_dir, train_pattern), student_flags(), phases
    )
    # The interrupted first epoch is redone whole: 3 + 4 + 4 (phase 1) + 4 (phase 2).
    assert second["global_step"] == 15 and second["phase"] == 2
    third = distillation.train_distilled(
        options_for(train_dir, train_pattern), student_flags(), phases
    )
    assert third["global_step"] == 15  # finished: nothing more to do


def test_serial_distillation_from_a_frozen_teacher(tmp_path, train_pattern):
    teacher_dir = train_teacher(tmp_path, train_pattern)
    teacher, _, _ = export_model.restore_model(teacher_dir)
    teacher_weights = [weight.numpy() for weight in teacher.weights]
    train_dir = tmp_path / "student"
    result = distillation.train_distilled(
        options_for(train_dir, train_pattern),
        student_flags(),
        distillation.DistillOptions(
            joint_epochs=1, finetune_epochs=0, teacher_train_dir=teacher_dir
        ),
    )
    assert result["global_step"] == 4
    student, _, _ = export_model.restore_model(str(train_dir))
    # Phase 1 trains the student's encoder only: its output layer is still the teacher's.
    np.testing.assert_array_equal(student.classifier.kernel.numpy(), teacher.classifier.kernel)
    # The teacher on disk is untouched.
    reloaded, _, _ = export_model.restore_model(teacher_dir)
    for before, after in zip(teacher_weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    assert "teacher" not in root_children(result["checkpoint"])


def test_serial_teacher_must_match_the_student(tmp_path, train_pattern):
    teacher_dir = train_teacher(tmp_path, train_pattern)
    with pytest.raises(utils.UserInputError, match="--lstm_cells=16 differs"):
        distillation.train_distilled(
            options_for(tmp_path / "student", train_pattern),
            student_flags(lstm_cells=16),
            distillation.DistillOptions(teacher_train_dir=teacher_dir),
        )


def test_phase_lengths_are_validated():
    with pytest.raises(utils.UserInputError, match="both 0"):
        distillation.DistillOptions(joint_epochs=0, finetune_epochs=0).validate()
    with pytest.raises(utils.UserInputError, match="--joint_epochs"):
        distillation.DistillOptions(joint_epochs=-1).validate()
