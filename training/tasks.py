"""What each way of training gives the training loop (trainer.py).

- `SupervisedTask`: one phase, the model on its label loss (every model of the zoo).
- `DistillationTask`: a DistilledStudentModel in the paper's two phases (distillation.py has the
  teachers and the distillation loss): phase "distill" (the paper's phase 1), joint with a
  teacher trained alongside or serial from a trained, frozen one, checkpointed with the joint
  teacher under `train_dir/distill/`; then phase "finetune" (phase 2), the student alone,
  checkpointed in train_dir.
`make_task` picks the task a RunConfig needs; `make_stages` the trainings a run needs in turn
(a serial student without a trained teacher trains its own first).

A task builds its models (`build`, called under the strategy's scope), sets up a new run
(`start`), and supplies `phases(options)`: for each, the loss of a replica's batch, the variables
it trains, what its checkpoints hold and where they go.
"""

import os

import tensorflow as tf

import losses
import model_zoo
import utils
from runs import distribution
from runs.config import DISTILL_DIR, TEACHER_DIR, DistillOptions, RunConfig, resolve_run_config
from runs.students import own_teacher_run_config
from training import distillation, optimization, trainer


def supervised_phase(name, model, config, options, epochs, directory):
    """A phase that trains all of `model` on its label loss (+ regularization)."""
    label_loss_fn = losses.LOSSES.get(config.label_loss)()

    def loss(batch):
        labels = batch["labels"]
        outputs = model(batch["video_matrix"], num_frames=batch["num_frames"], training=True)
        label_loss = distribution.replica_share(
            distillation.staged_label_loss(label_loss_fn, outputs, labels), tf.shape(labels)[0]
        )
        total = label_loss + optimization.regularization_loss(model, options.regularization_penalty)
        return total, label_loss, outputs["predictions"], {}

    return trainer.Phase(
        name=name,
        epochs=epochs,
        loss=loss,
        variables=model.trainable_variables,
        checkpoint_objects={"model": model},
        directory=directory,
        export_model=model,
    )


class SupervisedTask:
    """Trains a model of the zoo on its labels for --num_epochs."""

    def __init__(self, config):
        self.config = config
        self.model = None

    @property
    def description(self):
        return self.config.model

    @property
    def final_model(self):
        return self.model

    def build(self):
        self.model = model_zoo.build_model(self.config)

    def start(self):
        pass

    def phases(self, options):
        return [
            supervised_phase(
                "train", self.model, self.config, options, options.num_epochs, options.train_dir
            )
        ]


class DistillationTask:
    """The paper's two phases for a DistilledStudentModel (`distill_options`: a
    config.DistillOptions). Phase 2's checkpoints, in train_dir itself, hold the student alone:
    they are what eval.py, inference.py and export_model.py read."""

    def __init__(self, config, distill_options):
        self.config = config
        self.distill_options = distill_options
        self.student = None
        self.teacher = None

    @property
    def description(self):
        scheme = "joint" if self.distill_options.joint else "serial"
        return f"{self.config.model} ({scheme})"

    @property
    def final_model(self):
        return self.student

    def build(self):
        self.student = model_zoo.build_model(self.config)
        if self.distill_options.joint:
            self.teacher = distillation.build_teacher_encoder(self.config, self.student)
        else:
            self.teacher = distillation.load_frozen_teacher(
                self.distill_options.teacher_train_dir, self.config
            )

    def start(self):
        if not self.distill_options.joint and distillation.same_family(
            self.teacher.config, self.config
        ):
            # The student starts with the teacher's output layer (the paper's shared layer).
            for student_weight, teacher_weight in zip(
                self.student.classifier.weights, self.teacher.classifier.weights, strict=True
            ):
                student_weight.assign(teacher_weight)

    def phases(self, options):
        joint = self.distill_options.joint
        loss, variables = distillation.distill_loss(
            self.student, self.teacher, joint, self.config, options.regularization_penalty
        )
        checkpoint_objects = {"model": self.student}
        if joint:
            checkpoint_objects["teacher"] = self.teacher
        distill = trainer.Phase(
            name="distill",
            epochs=self.distill_options.joint_epochs,
            loss=loss,
            variables=variables,
            checkpoint_objects=checkpoint_objects,
            directory=os.path.join(options.train_dir, DISTILL_DIR),
            keep_all_frames=True,
        )
        finetune = supervised_phase(
            "finetune",
            self.student,
            self.config,
            options,
            self.distill_options.finetune_epochs,
            options.train_dir,
        )
        return [distill, finetune]


def make_stages(config, options, distill_options=None):
    """The trainings a run of `config` needs, in order (trainer.Stage for trainer.train_stages).

    One stage, the task of `make_task`, except for a serial student without a
    `teacher_train_dir`: first its own teacher (students.own_teacher_run_config,
    `own_teacher_epochs` passes, in `train_dir/teacher` with its own model_flags.json, resumed or
    reused there), then
    the student distilled from it, exactly as with `--teacher_train_dir=train_dir/teacher`. With
    --start_new_model the teacher stage empties the whole train_dir once its input is read; the
    student stage then starts anew in it.

    Raises:
      utils.UserInputError: when `train_dir/teacher` holds a teacher that does not fit `config`.
    """
    distill_options = distill_options or DistillOptions()
    if not (config.is_student and distill_options.trains_own_teacher):
        return [
            trainer.Stage(
                "student" if config.is_student else "model",
                make_task(config, distill_options),
                options,
            )
        ]
    teacher_dir = os.path.join(options.train_dir, TEACHER_DIR)
    teacher_config = own_teacher_run_config(config)
    stored = resolve_run_config(teacher_dir, teacher_config, set(), options.start_new_model)
    if stored != teacher_config:
        differences = ", ".join(
            f"{name} {getattr(stored, name)} (this student needs {getattr(teacher_config, name)})"
            for name in RunConfig.flag_names()
            if getattr(stored, name) != getattr(teacher_config, name)
        )
        raise utils.UserInputError(
            f"{teacher_dir} holds a teacher built for another student: {differences}. Pass "
            "--start_new_model to train both anew, or train in another --train_dir."
        )
    teacher_options = options.replace(
        train_dir=teacher_dir,
        num_epochs=distill_options.own_teacher_epochs,
        summary_dir=os.path.join(options.summary_dir, TEACHER_DIR) if options.summary_dir else "",
        final_export_dir="",
        new_model_dir=options.train_dir,
    )
    student_options = options.replace(start_new_model=False)
    student_distill = distill_options.replace(teacher_train_dir=teacher_dir)
    return [
        trainer.Stage("teacher", SupervisedTask(teacher_config), teacher_options),
        trainer.Stage("student", DistillationTask(config, student_distill), student_options),
    ]


def make_task(config, distill_options=None):
    """The task that trains `config`'s model: distillation for a DistilledStudentModel
    (`distill_options`: config.DistillOptions, its defaults when None), else supervised."""
    if config.is_student:
        return DistillationTask(config, distill_options or DistillOptions())
    return SupervisedTask(config)
