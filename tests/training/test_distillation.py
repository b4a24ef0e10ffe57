"""Tests of the student and the paper's two distillation phases (distillation.py, run through
tasks.DistillationTask and the training loop)."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import short_video_train_set, tiny_config, tiny_options
from tensorflow.core.protobuf import trackable_object_graph_pb2

import model_zoo
import readers
import utils
from runs import checkpoints, config, students
from training import distillation, tasks, trainer

NUM_CLASSES = 5


def student_config(**changes):
    values = {
        "model": "DistilledStudentModel",
        "num_classes": NUM_CLASSES,
        "max_frames": 300,
        "frame_stride": 4,
        "block_size": 3,
        "teacher_block_size": 6,
    }
    values.update(changes)
    return tiny_config(**values)


@pytest.fixture(scope="module")
def train_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill_data")
    return short_video_train_set(root, 40, NUM_CLASSES, seed=2, min_frames=12, max_frames=40)


def distill(train_dir, train_pattern, run_config, phases, **options):
    """Trains a student through the loop; 40 videos in batches of 10 make 4 steps an epoch."""
    task = tasks.make_task(run_config, phases)
    return trainer.train(task, tiny_options(train_pattern, train_dir, **options))


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
    skipped += ("epochs_done", "epoch_steps", "random_states", "_CHECKPOINTABLE_OBJECT_GRAPH")
    return len([name for name in names if not name.startswith(skipped)])


def fixed_batch(train_pattern, run_config):
    reader = readers.reader_for(run_config, keep_all_frames=True)
    dataset, _ = reader.make_dataset(train_pattern, 10)
    return next(iter(dataset))


def phase_one_step(student, teacher, joint, run_config, learning_rate):
    """Phase 1's compiled step on one device, and the variables it trains."""
    loss, variables = distillation.distill_loss(student, teacher, joint, run_config, 1.0)
    phase = trainer.Phase("distill", 1, loss, variables, {}, "", keep_all_frames=True)
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    strategy = tf.distribute.get_strategy()
    return trainer.compile_step(strategy, phase, optimizer, clip_gradient_norm=1.0), variables


@pytest.mark.parametrize("distill_mode", ["final", "intermediate"])
def test_joint_phase_step_lowers_its_loss(train_pattern, distill_mode):
    run_config = student_config(distill_mode=distill_mode)
    tf.keras.utils.set_random_seed(0)
    student = model_zoo.build_model(run_config)
    teacher = distillation.build_teacher_encoder(run_config, student)
    step, variables = phase_one_step(student, teacher, True, run_config, 0.003)
    assert len(variables) == len(teacher.trainable_variables) + len(student.trainable_variables)
    batch = fixed_batch(train_pattern, run_config)
    assert batch["video_matrix"].shape[1] == -(-batch["full_video_matrix"].shape[1] // 4)
    first = step(batch)
    for _ in range(20):
        last = step(batch)
    # Joint training: the teacher learns the labels while the student follows a moving target
    # (the distance grows from ~0 as the teacher's representation develops); the sum falls.
    assert float(last.loss) < float(first.loss)
    assert float(last.scalars["label_loss"]) < float(first.scalars["label_loss"])
    # The loss is the label loss plus the weighted distances (plus L2 at 1e-8).
    expected = float(last.scalars["label_loss"]) + 10.0 * float(last.scalars["distill_final"])
    if distill_mode == "intermediate":
        expected += 1.0 * float(last.scalars["distill_intermediate"])
    else:
        assert "distill_intermediate" not in last.scalars
    assert float(last.loss) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "distill_mode, extra_terms",
    [
        ("final", {}),
        ("intermediate", {}),
        ("final", {"prediction_weight": 2.0, "student_label_weight": 0.5}),
    ],
)
def test_serial_phase_step_brings_the_student_to_a_fixed_teacher(
    train_pattern, distill_mode, extra_terms
):
    run_config = student_config(distill_mode=distill_mode, **extra_terms)
    tf.keras.utils.set_random_seed(1)
    teacher = model_zoo.build_model(run_config.replace(model="HierarchicalTeacherModel"))
    teacher.trainable = False
    student = model_zoo.build_model(run_config)
    step, variables = phase_one_step(student, teacher, False, run_config, 0.01)
    assert len(variables) == len(student.encoder.trainable_variables)
    batch = fixed_batch(train_pattern, run_config)
    first_step = step(batch)
    for _ in range(20):
        last_step = step(batch)
    first, last = first_step.scalars, last_step.scalars
    if distill_mode == "intermediate":
        assert float(last["distill_intermediate"]) < float(first["distill_intermediate"])
    if extra_terms:
        # The loss is the sum of the weighted terms, and it falls.
        expected = (
            10.0 * float(last["distill_final"])
            + 2.0 * float(last["distill_predictions"])
            + 0.5 * float(last["student_label_loss"])
        )
        assert float(last_step.loss) == pytest.approx(expected, rel=1e-4)
        assert float(last_step.loss) < float(first_step.loss)
    else:
        assert float(last["distill_final"]) < 0.5 * float(first["distill_final"])
        assert "distill_predictions" not in last and "student_label_loss" not in last


def train_teacher(tmp_path, train_pattern):
    teacher_dir = tmp_path / "teacher"
    teacher_config = student_config(model="HierarchicalTeacherModel", frame_stride=1, block_size=6)
    trainer.train(
        tasks.SupervisedTask(teacher_config), tiny_options(train_pattern, teacher_dir, max_steps=3)
    )
    return str(teacher_dir)


def test_joint_distillation_two_phases_leave_a_student_only_checkpoint(tmp_path, train_pattern):
    train_dir = tmp_path / "student"
    run_config = student_config(distill_mode="intermediate")
    phases = config.DistillOptions(joint_epochs=2, finetune_epochs=1)
    result = distill(train_dir, train_pattern, run_config, phases)
    # 4 steps an epoch, 2 joint epochs then 1 fine-tuning epoch.
    assert result["global_step"] == 12 and result["phase"] == "finetune"
    final = result["checkpoint"]
    assert final.endswith("ckpt-12")
    assert "teacher" not in root_children(final)
    student = model_zoo.build_model(run_config)
    assert saved_model_variable_count(final) == len(student.trainable_variables)
    phase_one = tf.train.latest_checkpoint(str(train_dir / config.DISTILL_DIR))
    assert phase_one.endswith("ckpt-8") and "teacher" in root_children(phase_one)

    # eval and inference treat it like any other model, reading 1 frame in 4.
    restored, restored_config, _ = checkpoints.restore_model(str(train_dir))
    assert isinstance(restored, type(student)) and restored_config == run_config
    reader = readers.reader_for(restored_config)
    assert reader.frame_stride == 4 and not reader.keep_all_frames


def test_distillation_resumes_inside_phase_one(tmp_path, train_pattern):
    train_dir = tmp_path / "student"
    phases = config.DistillOptions(joint_epochs=2, finetune_epochs=1)
    first = distill(train_dir, train_pattern, student_config(), phases, max_steps=3)
    assert first["global_step"] == 3 and first["phase"] == "distill"
    assert first["checkpoint"] is None  # no student-only checkpoint yet
    assert tf.train.latest_checkpoint(str(train_dir)) is None
    second = distill(train_dir, train_pattern, student_config(), phases)
    # The interrupted first epoch goes on from its step 4: 3 + 1 + 4 (phase 1) + 4 (phase 2).
    assert second["global_step"] == 12 and second["phase"] == "finetune"
    third = distill(train_dir, train_pattern, student_config(), phases)
    assert third["global_step"] == 12 and third["last_loss"] is None  # nothing more to do


def test_serial_distillation_from_a_frozen_teacher(tmp_path, train_pattern):
    teacher_dir = train_teacher(tmp_path, train_pattern)
    teacher, _, _ = checkpoints.restore_model(teacher_dir)
    teacher_weights = [weight.numpy() for weight in teacher.weights]
    train_dir = tmp_path / "student"
    phases = config.DistillOptions(joint_epochs=1, finetune_epochs=0, teacher_train_dir=teacher_dir)
    result = distill(train_dir, train_pattern, student_config(), phases)
    assert result["global_step"] == 4 and result["checkpoint"].endswith("ckpt-4")
    student, _, _ = checkpoints.restore_model(str(train_dir))
    # Phase 1 trains the student's encoder only: its output layer is still the teacher's.
    np.testing.assert_array_equal(student.classifier.kernel.numpy(), teacher.classifier.kernel)
    # The teacher on disk is untouched.
    reloaded, _, _ = checkpoints.restore_model(teacher_dir)
    for before, after in zip(teacher_weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    assert "teacher" not in root_children(result["checkpoint"])


def test_serial_teacher_must_match_the_student(tmp_path, train_pattern):
    teacher_dir = train_teacher(tmp_path, train_pattern)
    phases = config.DistillOptions(teacher_train_dir=teacher_dir)
    with pytest.raises(utils.UserInputError, match="--lstm_cells=16 differs"):
        distill(tmp_path / "student", train_pattern, student_config(lstm_cells=16), phases)
    strided_dir = tmp_path / "strided_teacher"
    strided = student_config(model="HierarchicalTeacherModel", frame_stride=2, block_size=6)
    trainer.train(
        tasks.SupervisedTask(strided), tiny_options(train_pattern, strided_dir, max_steps=1)
    )
    phases = config.DistillOptions(teacher_train_dir=str(strided_dir))
    with pytest.raises(utils.UserInputError, match="reads 1 frame in 2"):
        distill(tmp_path / "student2", train_pattern, student_config(), phases)


# Small NeXtVLAD sizes for the family tests (rgb 1024 + audio 128 split in 8 groups).
NEXTVLAD_SIZES = {"cluster_size": 2, "hidden_size": 8}


def test_a_nextvlad_student_from_a_nextvlad_teacher_and_across_families(tmp_path, train_pattern):
    teacher_dir = tmp_path / "nextvlad_teacher"
    teacher_config = student_config(model="NeXtVLADModel", frame_stride=1, **NEXTVLAD_SIZES)
    trainer.train(
        tasks.SupervisedTask(teacher_config), tiny_options(train_pattern, teacher_dir, max_steps=2)
    )
    # The student inherits the teacher's architecture, sizes and output layer.
    student = students.student_run_config(
        student_config(), {"model", "frame_stride"}, str(teacher_dir)
    )
    assert (student.student_architecture, student.classifier, student.hidden_size) == (
        "NeXtVLADModel",
        "moe",
        8,
    )
    phases = config.DistillOptions(
        joint_epochs=1, finetune_epochs=0, teacher_train_dir=str(teacher_dir)
    )
    result = distill(tmp_path / "student", train_pattern, student, phases)
    assert result["global_step"] == 4
    restored, _, _ = checkpoints.restore_model(str(tmp_path / "student"))
    teacher, _, _ = checkpoints.restore_model(str(teacher_dir))
    assert type(restored).__name__ == "NeXtVLADModel"
    np.testing.assert_array_equal(
        restored.classifier.experts.kernel.numpy(), teacher.classifier.experts.kernel
    )

    # A hierarchical student of the NeXtVLAD teacher: not through the representations...
    across = student_config(student_architecture="HierarchicalTeacherModel")
    with pytest.raises(utils.UserInputError, match="is a NeXtVLADModel, the student a Hier"):
        distill(tmp_path / "across", train_pattern, across, phases)
    # ... but through the predictions alone, its own output layer trained.
    across = across.replace(distill_weight=0.0, prediction_weight=1.0)
    result = distill(tmp_path / "across", train_pattern, across, phases)
    assert result["global_step"] == 4
    restored, _, _ = checkpoints.restore_model(str(tmp_path / "across"))
    assert type(restored).__name__ == "DistilledStudentModel"
    assert restored.classifier.kernel.shape == (8, NUM_CLASSES)


def test_families_outside_the_hierarchical_one_refuse_the_papers_joint_scheme(
    tmp_path, train_pattern
):
    joint = config.DistillOptions(joint_epochs=1, finetune_epochs=0)
    nextvlad = student_config(student_architecture="NeXtVLADModel", **NEXTVLAD_SIZES)
    with pytest.raises(utils.UserInputError, match="--distill_recipe=serial"):
        distill(tmp_path / "student", train_pattern, nextvlad, joint)
    with pytest.raises(utils.UserInputError, match="--distill_mode=intermediate matches"):
        nextvlad.replace(distill_mode="intermediate")
    with pytest.raises(utils.UserInputError, match="--student_architecture=LstmModel"):
        student_config(student_architecture="LstmModel")


def test_own_teacher_of_a_family(tmp_path):
    student = student_config(student_architecture="DbofModel", cluster_size=16, hidden_size=8)
    teacher = students.own_teacher_run_config(student)
    assert (teacher.model, teacher.cluster_size, teacher.hidden_size, teacher.classifier) == (
        "DbofModel",
        16,
        8,
        "moe",
    )
    assert teacher.frame_stride == 1
