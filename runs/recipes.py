"""How a DistilledStudentModel is distilled by default (`--distill_recipe`): the scheme and the
values the recipe gives its loss-weight and frame-offset flags when they are not given.

    values = recipe_flag_values(DEFAULT_RECIPE, frame_stride=10, frame_sampling="uniform")
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


# The flags a recipe sets when they are not given: every Recipe field but the scheme (each a
# RunConfig field of the same name).
RECIPE_FLAGS = tuple(field.name for field in dataclasses.fields(Recipe) if field.name != "scheme")
RECIPES = {
    # What train.py does by default: the measured best student at k = 10 on both regimes
    # (BUILD_NOTES.md, "Which recipe is the default").
    "serial": Recipe(
        scheme="serial",
        distill_weight=10.0,
        prediction_weight=0.0,
        student_label_weight=1.0,
        random_frame_offset=True,
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
