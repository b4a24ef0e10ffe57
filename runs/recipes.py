"""How a DistilledStudentModel is distilled by default (`--distill_recipe`): the scheme and the
values the recipe gives its loss-weight, frame-offset and exit-stage flags when they are not given.

    values = recipe_flag_values(DEFAULT_RECIPE, frame_stride=10, frame_sampling="uniform")
    stages = recipe_exit_stages(DEFAULT_RECIPE, "nextvlad")
"""

import dataclasses

from pipeline import frame_selection


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a DistilledStudentModel is distilled: the scheme, and the values its flags take when
    not given (`--distill_recipe`)."""

    scheme: str  # "joint" (the paper's phase 1) or "serial" (from a trained, frozen teacher)
    distill_weight: float  # L_rep, ||E_T - E_S||^2
    prediction_weight: float  # L_pred, the student's sigmoids against the teacher's
    student_label_weight: float  # L_CE, the student's own label loss in phase 1
    random_frame_offset: bool  # the student trains from a random offset per video and epoch
    # The families whose students read in `exit_stages` coarse-to-fine stages, each distilled
    # (--exit_stages; runs.config.STAGED_FAMILIES can), when --exit_stages is not given.
    staged_families: tuple = ()
    exit_stages: int = 1


# The loss-weight and frame-offset flags a recipe sets when they are not given (each a RunConfig
# field of the same name, and a setting of a grid).
RECIPE_FLAGS = (
    "distill_weight",
    "prediction_weight",
    "student_label_weight",
    "random_frame_offset",
)
RECIPES = {
    # What train.py does by default: the measured best student at k = 10 on both regimes
    # (BUILD_NOTES.md, "Which recipe is the default").
    "serial": Recipe(
        scheme="serial",
        distill_weight=10.0,
        prediction_weight=0.0,
        student_label_weight=1.0,
        random_frame_offset=True,
        # Distilling every stage makes the NeXtVLAD, NetVLAD and average-pooling DBoF students
        # better when they read all their frames, and lets them stop videos early; a max-pooling
        # DBoF student neither gains nor loses (BUILD_NOTES.md, "Which students read in stages").
        staged_families=("nextvlad", "netvlad", "dbof"),
        exit_stages=3,
    ),
    # The paper's: teacher and student trained together, L_rep only, frames 0, j, 2j, ...
    "paper": Recipe(
        scheme="joint",
        distill_weight=10.0,
        prediction_weight=0.0,
        student_label_weight=0.0,
        random_frame_offset=False,
    ),
}
DEFAULT_RECIPE = "serial"


def recipe_flag_values(name, frame_stride, frame_sampling, frames_per_video=0, max_frames=None):
    """{flag: value} of RECIPE_FLAGS that recipe `name` gives a student reading 1 frame in
    `frame_stride` (or `frames_per_video` frames of videos read to `max_frames`) by
    `frame_sampling`: random offsets only where uniform sampling has offsets to draw, at a stride
    j > 1 or at a count below `max_frames` (`frame_selection.random_offset_problem`)."""
    recipe = RECIPES[name]
    values = {flag: getattr(recipe, flag) for flag in RECIPE_FLAGS}
    values["random_frame_offset"] = recipe.random_frame_offset and not (
        frame_selection.random_offset_problem(
            frame_stride, frame_sampling, frames_per_video, max_frames
        )
    )
    return values


def recipe_exit_stages(name, family):
    """The exit stages recipe `name` gives a student of `family` (runs.config.FAMILIES) when
    --exit_stages is not given: 1 (one pass) outside the recipe's staged families."""
    recipe = RECIPES[name]
    return recipe.exit_stages if family in recipe.staged_families else 1
