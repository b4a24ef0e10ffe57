"""The ablation of distillation recipes: rows of grid runs that differ only in the students'
scheme, loss terms and frame offsets, beside the same teachers and baselines.

    table = recipe_report.ablation_markdown(recipes)

`recipes` (results/recipes_<regime>.json, written by `results_report.py --import_recipe`) holds
`rows`: each a `label`, the `settings` of its grid run (config.json) and its `models` (the
results.json entries: every model and seed). The baselines are the rows labelled `uniform` (a
fixed-frames TEACHER-UNIFORM-k, frames 0, j, 2j) and `uniform-offset` (the same trained from
random offsets); TEACHER-FULL is every row's (the runs share it). Each student row is compared
with both baselines (difference of means, two standard errors) and with the better of the two,
and gets the share of the fixed-frames UNIFORM-k -> TEACHER-FULL gap it closes (the papers'
measure).
"""

import dataclasses

from experiments import grid, grid_report
from runs.recipes import DEFAULT_RECIPE, RECIPE_FLAGS, RECIPES

BASELINE_LABELS = ("uniform", "uniform-offset")


def describe_settings(settings):
    """A row's scheme and terms in words, e.g. `serial; L_rep 10 + L_pred 1 + L_CE 1; offsets`."""
    terms = [
        f"{name} {settings.get(key, 0.0):g}"
        for name, key in (
            ("L_rep", "distill_weight"),
            ("L_pred", "prediction_weight"),
            ("L_CE", "student_label_weight"),
        )
        if settings.get(key, 0.0)
    ]
    offsets = "random offsets" if settings.get("random_frame_offset") else "frames 0, j, 2j"
    return f"{settings['distill_scheme']}; {' + '.join(terms)}; {offsets}"


def is_default_recipe(settings):
    """True when a row's students are trained as train.py's default recipe trains them."""
    recipe = RECIPES[DEFAULT_RECIPE]
    # A setting a config.json lacks was written before it existed: the grid's default then.
    defaults = {field.name: field.default for field in dataclasses.fields(grid.GridConfig)}
    return settings["distill_scheme"] == recipe.scheme and all(
        settings.get(name, defaults[name]) == getattr(recipe, name) for name in RECIPE_FLAGS
    )


def row_summaries(recipes):
    """((row, TEACHER-FULL's summary), {baseline label: (row, summary)}, [(row, student
    summary)]); None where a row is missing."""
    teacher = None
    baselines = {}
    students = []
    for row in recipes["rows"]:
        summary = grid_report.summarize(row["models"])
        if teacher is None and "TEACHER-FULL" in summary:
            teacher = (row, summary["TEACHER-FULL"])
        for model in summary.values():
            if row["label"] in BASELINE_LABELS and model["method"] == "uniform":
                baselines[row["label"]] = (row, model)
            elif model["method"] in grid.STUDENT_METHODS:
                students.append((row, model))
    return teacher, baselines, students


def format_gap(row, model):
    """`mean ± std (seed 1, seed 2, ...)` of the GAP of `model` in `row`."""
    gaps = [entry["gap"] for entry in row["models"] if entry["name"] == model["name"]]
    per_seed = ", ".join(f"{gap:.3f}" for gap in gaps)
    return f"{grid_report.format_mean(model, 'gap')} ({per_seed})"


def format_difference(student, baseline):
    if baseline is None:
        return "–"
    result = grid_report.compare(student, baseline)
    error = result["standard_error"]
    bound = f" ± {2 * error:.3f}" if error is not None else ""
    return f"{result['difference']:+.3f}{bound}, {result['verdict']}"


def ablation_markdown(recipes):
    """The ablation table: the teacher and both baselines, then one row per student recipe."""
    teacher_row, baselines, students = row_summaries(recipes)
    teacher = teacher_row[1] if teacher_row else None
    fixed = baselines["uniform"][1] if "uniform" in baselines else None
    offset = baselines["uniform-offset"][1] if "uniform-offset" in baselines else None
    lines = [
        "| model | scheme; terms; training frames | GAP, mean ± std (seeds) | vs UNIFORM "
        "(2 SE) | vs UNIFORM from offsets (2 SE) | share of the UNIFORM -> TEACHER-FULL gap "
        "closed |",
        "|---|---|---|---|---|---|",
    ]

    for label, found in (
        ("TEACHER-FULL", teacher_row),
        ("TEACHER-UNIFORM", baselines.get("uniform")),
        ("TEACHER-UNIFORM, offsets", baselines.get("uniform-offset")),
    ):
        if found is not None:
            lines.append(f"| {label} | | {format_gap(*found)} | | | |")
    for row, student in students:
        closed = None
        if teacher is not None and fixed is not None:
            closed = grid_report.gap_closed(student, fixed, teacher)
        marker = " (default)" if is_default_recipe(row["settings"]) else ""
        lines.append(
            f"| {row['label']}{marker} | {describe_settings(row['settings'])} | "
            f"{format_gap(row, student)} | "
            f"{format_difference(student, fixed)} | {format_difference(student, offset)} | "
            f"{'–' if closed is None else f'{closed:.0%}'} |"
        )
    return "\n".join(lines)
