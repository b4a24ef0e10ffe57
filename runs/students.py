"""A student's run configuration beside its teacher's: what --teacher_train_dir must hold
(`load_teacher_config`), what the student takes from it and from its recipe
(`student_run_config`), and the teacher a serial student trains first when it has none
(`own_teacher_run_config`).
"""

import os

import tensorflow as tf

import model_zoo
import utils
from runs.config import (
    MODEL_FLAGS_FILE,
    STUDENT_ARCHITECTURES,
    STUDENT_BLOCK_SIZE,
    TEACHER_DIR,
    RunConfig,
    family_of,
)
from runs.recipes import recipe_exit_stages, recipe_flag_values

# What a student distilled from a trained teacher takes from it unless given (and, from a
# teacher of its family, that family's FAMILY_SIZE_FLAGS and CLASSIFIER_FLAGS).
TEACHER_INHERITED_FLAGS = ("num_classes", "feature_names", "feature_sizes", "max_frames")
# What --teacher_train_dir must hold, said by every refusal of one.
TEACHER_NEEDED = (
    "distillation needs the train_dir of a trained teacher that reads every frame "
    f"(--frame_stride=1, no --frames_per_video), a model of one of "
    f"{', '.join(STUDENT_ARCHITECTURES)}, or no --teacher_train_dir: the default recipe trains "
    "its own teacher"
)
# The flags that size each family's network (the student inherits them from a teacher of its
# family unless given, and must match them to take its output layer).
FAMILY_SIZE_FLAGS = {
    "hierarchical": ("lstm_cells", "lstm_layers"),
    "netvlad": ("cluster_size", "hidden_size"),
    "nextvlad": ("cluster_size", "hidden_size", "groups", "expansion", "gating_reduction"),
    "dbof": ("cluster_size", "hidden_size", "dbof_pooling"),
}
# What a student shares with a teacher of its family: its output layer reads the same
# representation.
CLASSIFIER_FLAGS = ("classifier", "moe_num_mixtures")


def load_teacher_config(teacher_train_dir):
    """The RunConfig of the trained teacher in `teacher_train_dir` (--teacher_train_dir).

    Raises:
      utils.UserInputError: saying what the directory holds instead (nothing, a SavedModel, a
        student, another model, a teacher that reads 1 frame in j or k frames of each video, no
        checkpoint yet) and what distillation needs.
    """
    flag = f"--teacher_train_dir={teacher_train_dir}"
    if not tf.io.gfile.isdir(teacher_train_dir):
        raise utils.UserInputError(f"{flag} does not exist: {TEACHER_NEEDED}.")
    if not tf.io.gfile.exists(os.path.join(teacher_train_dir, MODEL_FLAGS_FILE)):
        if tf.io.gfile.exists(os.path.join(teacher_train_dir, "saved_model.pb")):
            held = "a SavedModel (an export), not a train_dir with checkpoints"
        else:
            held = f"no model written by train.py (no {MODEL_FLAGS_FILE})"
        raise utils.UserInputError(f"{flag} holds {held}: {TEACHER_NEEDED}.")
    teacher = RunConfig.load(teacher_train_dir, "--teacher_train_dir")
    if teacher.frames_per_video:
        strided = f"reads {teacher.frames_per_video} frames of each video"
    else:
        strided = f"reads 1 frame in {teacher.frame_stride}"
    # A count of at least max_frames takes every frame read.
    selects = teacher.frame_stride != 1 or 0 < teacher.frames_per_video < teacher.max_frames
    if teacher.is_student:
        own_teacher = os.path.join(teacher_train_dir, TEACHER_DIR)
        held = f"a student ({teacher.model} that {strided}), not a teacher"
        if tf.io.gfile.exists(os.path.join(own_teacher, MODEL_FLAGS_FILE)):
            held += f"; its own teacher is in {own_teacher}"
    elif teacher.model not in STUDENT_ARCHITECTURES:
        held = f"a {teacher.model}"
    elif selects:
        baseline = f"TEACHER-{teacher.frame_sampling.upper()}"
        held = f"a {teacher.model} that {strided} (a {baseline} baseline)"
    elif not tf.train.latest_checkpoint(teacher_train_dir):
        held = f"a {teacher.model} with no checkpoint yet"
    else:
        return teacher
    raise utils.UserInputError(f"{flag} holds {held}: {TEACHER_NEEDED}.")


def student_run_config(requested, given, teacher_train_dir=""):
    """A DistilledStudentModel's RunConfig: its recipe's loss weights and frame offsets for the
    flags not given (RECIPE_FLAGS), the paper's student block size (5) unless --block_size is
    given, and, when distilling from a trained teacher, the teacher's classes, features and
    max_frames for the flags not given, and its architecture (--student_architecture) with
    its sizes and output layer unless another architecture is given, and the recipe's exit
    stages for the student's family unless --exit_stages is given."""
    changes = {}
    if "block_size" not in given:
        changes["block_size"] = STUDENT_BLOCK_SIZE
    if teacher_train_dir:
        teacher = load_teacher_config(teacher_train_dir)
        inherited = list(TEACHER_INHERITED_FLAGS)
        architecture = requested.student_architecture
        if "student_architecture" not in given:
            architecture = teacher.model
            changes["student_architecture"] = architecture
        if architecture == teacher.model:
            inherited += FAMILY_SIZE_FLAGS[teacher.family] + CLASSIFIER_FLAGS
        elif "classifier" not in given:
            # Across families the student keeps its own architecture's output layer.
            changes["classifier"] = model_zoo.MODELS.get(architecture).published_defaults[
                "classifier"
            ]
        for name in inherited:
            if name not in given:
                changes[name] = getattr(teacher, name)
    recipe_values = recipe_flag_values(
        requested.distill_recipe,
        requested.frame_stride,
        requested.frame_sampling,
        requested.frames_per_video,
        changes.get("max_frames", requested.max_frames),
    )
    changes.update({name: value for name, value in recipe_values.items() if name not in given})
    if "exit_stages" not in given:
        architecture = changes.get("student_architecture", requested.student_architecture)
        changes["exit_stages"] = recipe_exit_stages(
            requested.distill_recipe, family_of(architecture)
        )
    return requested.replace(**changes)


def own_teacher_run_config(student):
    """The RunConfig of the teacher a serial student trains first (in `train_dir/teacher`): its
    architecture over every frame (blocks of `teacher_block_size` for the hierarchical one),
    with the student's features, classes, sizes, dropout, output layer and label loss."""
    shared = (
        "frame_features",
        "feature_names",
        "feature_sizes",
        "num_classes",
        "max_frames",
        "dropout",
        "l2_penalty",
        "label_loss",
        *FAMILY_SIZE_FLAGS[student.family],
        *CLASSIFIER_FLAGS,
    )
    return RunConfig(
        model=student.architecture,
        block_size=student.teacher_block_size,
        **{name: getattr(student, name) for name in shared},
    )
