"""The paper's distillation: the teachers a DistilledStudentModel learns from, and its loss.

Phase 1 ("distill", run by tasks.DistillationTask) reads every frame (for the teacher) and the
student's selected frames (1 in `frame_stride`) of the same videos:
- Joint (the paper): a teacher encoder (`build_teacher_encoder`), the student and one shared
  output layer are trained together on L_model(teacher's predictions) + distill_weight *
  L_student(E_T, E_S) [+ intermediate_weight * distance of the lower-level outputs at the
  selected frames].
- Beyond the paper, both schemes can add prediction_weight * the cross-entropy of the
  student's sigmoid outputs against the teacher's (as the authors' released code does), and
  student_label_weight * the student's own label loss; both weights are 0 by default.
- Serial: the teacher is a trained model, frozen (`load_frozen_teacher`), of any family
  (runs.config.FAMILIES). A student of the teacher's family starts with the teacher's output
  layer and its encoder is trained on the distillation terms alone. A student of another family
  (its representation is not the teacher's) learns through the prediction and label terms only,
  with its own output layer, all its variables trained.
Phase 2 ("finetune") is plain supervised training of the student on its own frames.
A student that reads in exit stages (`--exit_stages`) is matched after every stage: each term
is the mean over the stages (`mean_over_stages`), and so is its label loss in both phases.
"""

import tensorflow as tf
from absl import logging

import losses
import models
import utils
from layers import recurrent
from runs import checkpoints, distribution
from runs.students import CLASSIFIER_FLAGS, FAMILY_SIZE_FLAGS, load_teacher_config
from training import optimization

# What the student must share with any frozen teacher.
SHARED_WITH_TEACHER = ("num_classes", "feature_names", "feature_sizes")


def same_family(teacher_config, config):
    """True when the student (`config`) is built as the teacher's architecture."""
    return teacher_config.architecture == config.architecture


def check_teacher_family(teacher_config, config, teacher_train_dir):
    """The flags the student must share with its teacher: classes and features always; for a
    teacher of its family, the family's sizes and the output layer (the student's representation
    is matched to the teacher's and starts with its output layer).

    Raises:
      utils.UserInputError: for a teacher of another family while the representation term
        (--distill_weight) is on, naming both architectures.
    """
    if same_family(teacher_config, config):
        return SHARED_WITH_TEACHER + FAMILY_SIZE_FLAGS[config.family] + CLASSIFIER_FLAGS
    if config.distill_weight:
        raise utils.UserInputError(
            f"The teacher in {teacher_train_dir} is a {teacher_config.architecture}, the "
            f"student a {config.architecture} (--student_architecture): their representations "
            "differ, so --distill_weight (||E_T - E_S||^2) cannot compare them. Build the "
            f"student as the teacher (--student_architecture={teacher_config.architecture}), "
            "or distil across families through the predictions alone: --distill_weight=0 "
            "--prediction_weight=1."
        )
    return SHARED_WITH_TEACHER


def load_frozen_teacher(teacher_train_dir, config):
    """Restores a trained teacher for serial distillation and checks that it fits the student.

    Raises:
      utils.UserInputError: when the directory holds no trained teacher that reads every frame
        (the message says what it holds: `load_teacher_config`), or its classes, features,
        sizes or family do not fit the student's (`config`; `check_teacher_family`).
    """
    teacher_config = load_teacher_config(teacher_train_dir)
    shared = check_teacher_family(teacher_config, config, teacher_train_dir)
    teacher, teacher_config, checkpoint_path = checkpoints.restore_model(
        teacher_train_dir, flag_name="--teacher_train_dir"
    )
    for name in shared:
        if getattr(teacher_config, name) != getattr(config, name):
            raise utils.UserInputError(
                f"--{name}={getattr(config, name)} differs from the teacher's "
                f"{getattr(teacher_config, name)} in {teacher_train_dir}: the student must match "
                "it (drop the flag to inherit it)."
            )
    teacher.trainable = False
    logging.info("Distilling from the frozen teacher %s", checkpoint_path)
    return teacher


def build_teacher_encoder(config, student):
    """The joint teacher: a hierarchical encoder over every frame, blocks of
    `config.teacher_block_size` (it shares the student's output layer), variables created.

    Raises:
      utils.UserInputError: for a student of another family (the joint scheme is the paper's,
        for its hierarchical model).
    """
    if config.family != "hierarchical":
        raise utils.UserInputError(
            f"--distill_recipe={config.distill_recipe} trains the paper's hierarchical teacher "
            f"beside the student; --student_architecture={config.student_architecture} distils "
            "from a trained teacher of its family: --distill_recipe=serial (the default)."
        )
    encoder = recurrent.HierarchicalEncoder(
        config.teacher_block_size, config.lstm_cells, config.lstm_layers, name="teacher_encoder"
    )
    encoder(tf.zeros([1, 1, config.feature_size]), tf.ones([1], tf.int32))
    return encoder


def stage_outputs(outputs, key):
    """A model's `key` output (`logits`, `representation`) after each of its exit stages (its
    `models.STAGE_OUTPUTS[key]` when it reads in stages: models.EncoderModel.call_in_stages),
    or its one output as a list of one."""
    stacked = models.STAGE_OUTPUTS[key]
    return tf.unstack(outputs[stacked]) if stacked in outputs else [outputs[key]]


def mean_over_stages(term, teacher_value, outputs, key):
    """The mean over a student's exit stages of `term(teacher_value, stage output)`."""
    terms = [term(teacher_value, stage_value) for stage_value in stage_outputs(outputs, key)]
    return tf.add_n(terms) / len(terms)


def staged_label_loss(label_loss_fn, outputs, labels):
    """A model's label loss, averaged over its exit stages when it reads in stages."""
    return mean_over_stages(
        lambda labels, logits: label_loss_fn.calculate_loss(
            tf.sigmoid(logits), labels, logits=logits
        ),
        labels,
        outputs,
        "logits",
    )


def distill_loss(student, teacher, joint, config, regularization_penalty):
    """Phase 1's loss of a replica's batch, and the variables it trains.

    Args:
      student: the DistilledStudentModel.
      teacher: the joint teacher encoder, or the frozen HierarchicalTeacherModel (serial).
      joint: True for the paper's joint scheme.
      config: the student's RunConfig (distill_mode and the weights).
      regularization_penalty: weight of the regularization loss (joint scheme).

    Returns:
      (loss(batch) -> (loss, the same loss shown, student predictions, {label_loss,
      distill_final[, distill_intermediate]}), the variables it trains).
    """
    label_loss_fn = losses.LOSSES.get(config.label_loss)()
    intermediate = config.distill_mode == "intermediate"
    if joint:
        variables = teacher.trainable_variables + student.trainable_variables
    elif same_family(teacher.config, config):
        variables = student.encoder.trainable_variables  # the output layer is the teacher's
    else:
        variables = student.trainable_variables

    def loss(batch):
        labels = batch["labels"]
        num_frames = batch["num_frames"]
        batch_size = tf.shape(labels)[0]
        student_outputs = student(batch["video_matrix"], num_frames=num_frames, training=True)
        if joint:
            frames, _, full_num_frames = student.prepare_frames(
                batch["full_video_matrix"], batch["full_num_frames"]
            )
            teacher_outputs = teacher(frames, full_num_frames, training=True)
            teacher_logits = student.classify(
                student.representation_dropout(teacher_outputs["representation"], training=True)
            )["logits"]
            label_loss = distribution.replica_share(
                label_loss_fn.calculate_loss(
                    tf.sigmoid(teacher_logits), labels, logits=teacher_logits
                ),
                batch_size,
            )
            regularization = optimization.regularization_loss(student, regularization_penalty)
        else:
            teacher_outputs = teacher(
                batch["full_video_matrix"], num_frames=batch["full_num_frames"], training=False
            )
            teacher_logits = teacher_outputs["logits"]
            label_loss = tf.constant(0.0)
            regularization = 0.0
        # A student that reads in exit stages matches the teacher after every stage.
        final = distribution.replica_share(
            mean_over_stages(
                losses.representation_distance,
                teacher_outputs["representation"],
                student_outputs,
                "representation",
            ),
            batch_size,
        )
        scalars = {"label_loss": label_loss, "distill_final": final}
        total_loss = label_loss + regularization + config.distill_weight * final
        if config.prediction_weight:
            predictions = distribution.replica_share(
                mean_over_stages(
                    losses.prediction_distance, teacher_logits, student_outputs, "logits"
                ),
                batch_size,
            )
            scalars["distill_predictions"] = predictions
            total_loss += config.prediction_weight * predictions
        if config.student_label_weight:
            student_label_loss = distribution.replica_share(
                staged_label_loss(label_loss_fn, student_outputs, labels), batch_size
            )
            scalars["student_label_loss"] = student_label_loss
            total_loss += config.student_label_weight * student_label_loss
        if intermediate:
            between = distribution.replica_share(
                losses.intermediate_distance(
                    teacher_outputs["frame_outputs"],
                    student_outputs["frame_outputs"],
                    batch["frame_indices"],
                    num_frames,
                ),
                batch_size,
            )
            scalars["distill_intermediate"] = between
            total_loss += config.intermediate_weight * between
        return total_loss, total_loss, student_outputs["predictions"], scalars

    return loss, variables
