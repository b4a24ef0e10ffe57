"""Trains a DistilledStudentModel from a hierarchical teacher: the paper's two phases.

Phase 1, `joint_epochs` passes over the data. The reader yields every frame (for the teacher)
and the student's selected frames (1 in `frame_stride`) of the same videos.
- Joint (the paper): a teacher encoder, the student and one shared output layer are trained
  together on L_model(teacher's predictions) + distill_weight * L_student(E_T, E_S)
  [+ intermediate_weight * distance of the lower-level outputs at the selected frames].
- Serial (`teacher_train_dir`): the teacher is a trained HierarchicalTeacherModel, frozen. The
  student starts with the teacher's output layer and its encoder is trained on the distillation
  terms alone.
Phase 2, `finetune_epochs` passes: the teacher is dropped; the student and the output layer are
fine-tuned on L_model of the student's own predictions, reading only the selected frames.

Checkpoints: phase 1 writes to `train_dir/distill/` (student, teacher encoder, optimizer, step);
phase 2 writes to `train_dir` itself, student only, so the checkpoints eval.py, inference.py and
export_model.py read hold no teacher variable. Each phase resumes where it was stopped; the
global step runs on across the phases and drives the learning-rate schedule. An epoch that was
interrupted is redone whole (with a new shuffle).
"""

import dataclasses
import os

import tensorflow as tf
from absl import logging

import distribution
import export_model
import frame_level_models
import losses
import readers
import train
import utils

DISTILL_MODES = ("final", "intermediate")
PHASE_ONE_DIR = "distill"


@dataclasses.dataclass
class DistillOptions:
    """The phases (the distillation weights are model flags, saved with the student)."""

    joint_epochs: int = 5
    finetune_epochs: int = 1
    teacher_train_dir: str = ""  # a trained teacher to distil from (serial mode); "" = joint

    def validate(self):
        if self.joint_epochs < 0 or self.finetune_epochs < 0:
            raise utils.UserInputError("--joint_epochs and --finetune_epochs must be >= 0.")
        if self.joint_epochs + self.finetune_epochs == 0:
            raise utils.UserInputError("--joint_epochs and --finetune_epochs are both 0.")
        return self


def load_frozen_teacher(teacher_train_dir, model_flags):
    """Restores a trained teacher for serial distillation and checks that it fits the student.

    Raises:
      utils.UserInputError: when the teacher does not read every frame or its representation,
        classes or features differ from the student's.
    """
    teacher, teacher_flags, checkpoint_path = export_model.restore_model(teacher_train_dir)
    if not isinstance(teacher, frame_level_models.HierarchicalTeacherModel):
        raise utils.UserInputError(
            f"--teacher_train_dir={teacher_train_dir} holds a {teacher_flags['model']}; "
            "distillation needs a HierarchicalTeacherModel."
        )
    if teacher_flags.get("frame_stride", 1) != 1:
        raise utils.UserInputError(
            f"--teacher_train_dir={teacher_train_dir} holds a teacher that reads 1 frame in "
            f"{teacher_flags['frame_stride']}; the teacher must read every frame."
        )
    for name in ("num_classes", "feature_names", "feature_sizes", "lstm_cells", "lstm_layers"):
        if teacher_flags[name] != model_flags[name]:
            raise utils.UserInputError(
                f"--{name}={model_flags[name]} differs from the teacher's {teacher_flags[name]} "
                f"in {teacher_train_dir}: the student must match it (drop the flag to inherit it)."
            )
    teacher.trainable = False
    logging.info("Distilling from the frozen teacher %s", checkpoint_path)
    return teacher


def make_phase_one_step(student, teacher, joint, model_flags, optimizer, options, strategy):
    """The compiled phase-1 step, run on every replica of `strategy`.

    Returns:
      (step(batch) -> train.StepResult with scalars {label_loss, distill_final[,
      distill_intermediate]}, the variables it trains).
    """
    label_loss_fn = getattr(losses, model_flags["label_loss"])()
    intermediate = model_flags["distill_mode"] == "intermediate"
    distill_weight = model_flags["distill_weight"]
    intermediate_weight = model_flags["intermediate_weight"]
    if joint:
        variables = teacher.trainable_variables + student.trainable_variables
    else:
        variables = student.encoder.trainable_variables

    def replica_step(batch):
        labels = batch["labels"]
        num_frames = batch["num_frames"]
        batch_size = tf.shape(labels)[0]
        with tf.GradientTape() as tape:
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
                regularization = train.regularization_loss(student, options.regularization_penalty)
            else:
                teacher_outputs = teacher(
                    batch["full_video_matrix"],
                    num_frames=batch["full_num_frames"],
                    training=False,
                )
                label_loss = tf.constant(0.0)
                regularization = 0.0
            final = distribution.replica_share(
                losses.representation_distance(
                    teacher_outputs["representation"], student_outputs["representation"]
                ),
                batch_size,
            )
            scalars = {"label_loss": label_loss, "distill_final": final}
            total_loss = label_loss + regularization + distill_weight * final
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
                total_loss += intermediate_weight * between
        train.apply_gradients(optimizer, tape, total_loss, variables, options.clip_gradient_norm)
        return total_loss, student_outputs["predictions"], scalars

    return train.distributed_step(strategy, replica_step), variables


def build_teacher_encoder(model_flags, student):
    """The joint teacher: a hierarchical encoder over every frame (it shares the student's output
    layer), with its variables created."""
    encoder = frame_level_models.HierarchicalEncoder(
        model_flags["teacher_block_size"],
        model_flags["lstm_cells"],
        model_flags["lstm_layers"],
        name="teacher_encoder",
    )
    feature_size = student.config.feature_size
    encoder(tf.zeros([1, 1, feature_size]), tf.ones([1], tf.int32))
    return encoder


def train_distilled(options, model_flags, distill_options, strategy=None):
    """Runs both phases (resuming either) and returns like `train.train`.

    Args:
      options: train.TrainOptions (num_epochs is not used: the phases have their own).
      model_flags: normalised flags of a DistilledStudentModel.
      distill_options: DistillOptions.
      strategy: a tf.distribute strategy; None builds the one `options.strategy` names.
    """
    distill_options.validate()
    options.validate()
    strategy = strategy or distribution.make_strategy(options.strategy)
    chief = distribution.is_chief(strategy)
    files, student = train.prepare_train_dir(options, model_flags, strategy)
    skipped = readers.SkippedRecords()
    train_dir = options.train_dir
    joint = not distill_options.teacher_train_dir
    with strategy.scope():
        if joint:
            teacher = build_teacher_encoder(model_flags, student)
        else:
            teacher = load_frozen_teacher(distill_options.teacher_train_dir, model_flags)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
    schedule = train.make_learning_rate(options)

    def learning_rate():
        return schedule(step)

    def current_step():
        return distribution.variable_int(step)

    # Phase 2's objects hold no teacher: its checkpoints are what eval and inference read.
    with strategy.scope():
        finetune_optimizer = train.make_optimizer(learning_rate, options.mixed_precision)
        finetune_optimizer.build(student.trainable_variables)
        joint_optimizer = train.make_optimizer(learning_rate, options.mixed_precision)
    finetune_checkpoint = tf.train.Checkpoint(
        model=student, optimizer=finetune_optimizer, step=step, epochs_done=epochs_done
    )
    finetune_manager = distribution.make_checkpoint_manager(
        strategy, finetune_checkpoint, train_dir, options.max_checkpoints_to_keep
    )
    joint_checkpoint_objects = {"model": student, "step": step, "epochs_done": epochs_done}
    if joint:
        joint_checkpoint_objects["teacher"] = teacher
    joint_checkpoint = tf.train.Checkpoint(optimizer=joint_optimizer, **joint_checkpoint_objects)
    joint_manager = distribution.make_checkpoint_manager(
        strategy,
        joint_checkpoint,
        os.path.join(train_dir, PHASE_ONE_DIR),
        options.max_checkpoints_to_keep,
    )
    phase_one_step, phase_one_variables = make_phase_one_step(
        student, teacher, joint, model_flags, joint_optimizer, options, strategy
    )
    with strategy.scope():
        joint_optimizer.build(phase_one_variables)

    if finetune_manager.latest_checkpoint:
        phase = 2
        finetune_checkpoint.restore(finetune_manager.latest_checkpoint)
        logging.info("Resumed fine-tuning from %s", finetune_manager.latest_checkpoint)
    elif joint_manager.latest_checkpoint and distill_options.joint_epochs > 0:
        phase = 1
        joint_checkpoint.restore(joint_manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed distillation from %s", joint_manager.latest_checkpoint)
    else:
        phase = 1 if distill_options.joint_epochs > 0 else 2
        if not joint:
            # The student starts with the teacher's output layer (the paper's shared layer).
            for student_weight, teacher_weight in zip(
                student.classifier.weights, teacher.classifier.weights, strict=True
            ):
                student_weight.assign(teacher_weight)
        logging.info("Starting a new DistilledStudentModel (%s)", "joint" if joint else "serial")
    if chief:
        utils.save_model_flags(train_dir, model_flags)
    logger = train.ProgressLogger(
        options.summary_dir or train_dir,
        options.log_every_n_steps,
        learning_rate,
        write_summaries=chief,
    )

    def advancing(step_fn):
        """The step, then the global step advanced (run_steps reads it right after)."""

        def advanced_step(batch):
            result = step_fn(batch)
            step.assign_add(1)
            return result

        return advanced_step

    stop = train.StopSignals()

    def run_phase(epochs, step_fn, manager, keep_all_frames, export=None):
        """Runs the phase's remaining epochs; True when --max_steps stopped it."""
        while distribution.variable_int(epochs_done) < epochs:
            logging.info(
                "Phase %d, epoch %d of %d",
                phase,
                distribution.variable_int(epochs_done) + 1,
                epochs,
            )
            _, batches = train.make_training_dataset(
                model_flags, options, files, 1, step, strategy, keep_all_frames, skipped
            )
            _, stopped = train.run_steps(
                advancing(step_fn), batches, current_step, manager, options, logger, export, stop
            )
            if stopped:
                train.save_if_new(manager, current_step())
                return True
            epochs_done.assign_add(1)
            manager.save(checkpoint_number=current_step())
        return False

    try:
        with stop:
            stopped = bool(options.max_steps) and current_step() >= options.max_steps
            if phase == 1 and not stopped:
                stopped = run_phase(
                    distill_options.joint_epochs, phase_one_step, joint_manager, True
                )
                if not stopped:
                    phase = 2
                    epochs_done.assign(0)
                    # The first student-only checkpoint marks the start of phase 2 for a resume.
                    finetune_manager.save(checkpoint_number=current_step())
                    logging.info("Phase 1 done at step %d: the teacher is dropped", current_step())
            if phase == 2 and not stopped:
                label_loss_fn = getattr(losses, model_flags["label_loss"])()
                supervised = train.make_supervised_step(
                    student, label_loss_fn, finetune_optimizer, options, strategy
                )
                export_reader = readers.reader_from_model_flags(model_flags, options.video_id_key)

                def export(global_step):
                    if chief:
                        train.export_snapshot(student, export_reader, train_dir, global_step)

                run_phase(
                    distill_options.finetune_epochs, supervised, finetune_manager, False, export
                )
                train.save_if_new(finetune_manager, current_step())
                train.export_final_model(options, student, export_reader, chief)
    finally:
        logger.flush()
    if phase == 1:
        logging.info(
            "Stopped in phase 1 at step %d (%s); the student has no fine-tuned checkpoint yet.",
            current_step(),
            joint_manager.latest_checkpoint,
        )
    else:
        logging.info(
            "Done at step %d; checkpoint %s", current_step(), finetune_manager.latest_checkpoint
        )
    train.report_skipped(options, skipped)
    return {
        "global_step": current_step(),
        "last_loss": None,
        "checkpoint": finetune_manager.latest_checkpoint,
        "phase": phase,
        "skipped_records": skipped.count,
    }
