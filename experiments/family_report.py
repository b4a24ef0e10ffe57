"""The model families side by side: each family's teacher, its no-teacher baselines and its
default student at k = 10 %, beside the authors' follow-up (CVPR 2019) at 30 frames.

    table = family_report.families_markdown(families, recipes)

`families` (results/families_<regime>.json, written by `results_report.py --import_family`)
holds `rows`: each a `family`, a `label` (`grid`: a grid run of the family with TEACHER-FULL,
TEACHER-UNIFORM-10 on frames 0, j, 2j and STUDENT-10-DEFAULT; `uniform-offset`: the same
family's TEACHER-UNIFORM-10 trained from random offsets), the run's `settings` and `models`.
The hierarchical family's rows come from the recipe ablation (`recipes`, recipe_report.py)
when `families` has none: its `uniform` and `uniform-offset` rows and its default-recipe row.

Per family: GAP mean ± std over the seeds of each model; the student against the better
baseline (difference, two standard errors, verdict); the student against TEACHER-FULL (the
target: at most 1 % below it, relative); the share of the fixed UNIFORM -> TEACHER-FULL gap
the student closes, beside the follow-up's share.
"""

from experiments import grid_report, recipe_report
from runs.config import FAMILIES

# The follow-up's GAP at 30 frames (about 10 % of a video), serial distillation with all three
# losses (Bhardwaj, Srinivasan, Khapra, CVPR 2019): teacher, Uniform-30, student-30.
FOLLOW_UP_30_FRAMES = {
    "hierarchical": (0.811, 0.795, 0.806),
    "netvlad": (0.823, 0.803, 0.812),
    "nextvlad": (0.831, 0.812, 0.818),
}
STUDENT_NAME = "STUDENT-10-DEFAULT"
TEACHER_NAME = "TEACHER-FULL"
UNIFORM_NAME = "TEACHER-UNIFORM-10"
# The student's target: at least TEACHER-FULL's GAP minus this fraction of it.
TEACHER_TOLERANCE = 0.01


def family_models(families, recipes, family):
    """{"teacher", "uniform", "uniform-offset", "student"}: (summary, per-seed GAPs) of one
    family's models; missing ones are left out."""
    found = {}

    def add(key, models, name, method=None):
        entries = [
            entry
            for entry in models
            if entry["name"] == name or (method and entry["method"] == method and entry["k"] == 10)
        ]
        if entries and key not in found:
            summary = next(iter(grid_report.summarize(entries).values()))
            found[key] = (summary, [entry["gap"] for entry in entries])

    rows = [row for row in families.get("rows", []) if row["family"] == family]
    for row in rows:
        models = row["models"]
        if row["label"] == "grid":
            add("teacher", models, TEACHER_NAME)
            add("uniform", models, UNIFORM_NAME)
            add("student", models, STUDENT_NAME)
        elif row["label"] == "uniform-offset":
            add("uniform-offset", models, UNIFORM_NAME)
    if not rows and family == "hierarchical" and recipes:
        for row in recipes["rows"]:
            models = row["models"]
            if row["label"] == "uniform":
                add("teacher", models, TEACHER_NAME)
                add("uniform", models, UNIFORM_NAME)
            elif row["label"] == "uniform-offset":
                add("uniform-offset", models, UNIFORM_NAME)
            elif recipe_report.is_default_recipe(row["settings"]):
                add("student", models, None, method="final")
    return found


def format_gaps(found, key):
    if key not in found:
        return "–"
    summary, gaps = found[key]
    per_seed = ", ".join(f"{gap:.3f}" for gap in gaps)
    return f"{grid_report.format_mean(summary, 'gap')} ({per_seed})"


def student_verdicts(found):
    """(vs the better baseline, vs the teacher, share closed) cells of a family's row."""
    if "student" not in found:
        return "–", "–", "–"
    student = found["student"][0]
    baselines = [found[key][0] for key in ("uniform", "uniform-offset") if key in found]
    versus_baseline = "–"
    if baselines:
        best = max(baselines, key=lambda row: row["gap_mean"])
        versus_baseline = recipe_report.format_difference(student, best)
    versus_teacher, closed = "–", "–"
    if "teacher" in found:
        teacher = found["teacher"][0]
        difference = student["gap_mean"] - teacher["gap_mean"]
        within = student["gap_mean"] >= teacher["gap_mean"] * (1 - TEACHER_TOLERANCE)
        versus_teacher = f"{difference:+.3f}, {'within' if within else 'beyond'} 1 %"
        if "uniform" in found:
            share = grid_report.gap_closed(student, found["uniform"][0], teacher)
            closed = "–" if share is None else f"{share:.0%}"
    return versus_baseline, versus_teacher, closed


def families_markdown(families, recipes=None):
    """The table: one row per family that has results, in FAMILIES' order."""
    lines = [
        "| family | TEACHER-FULL | UNIFORM-10 | UNIFORM-10, offsets | STUDENT-10 (default "
        "recipe) | student vs the better UNIFORM (2 SE) | student vs TEACHER-FULL | gap "
        "closed | follow-up, 30 frames: teacher / Uniform / student (gap closed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        found = family_models(families, recipes, family)
        if not found:
            continue
        versus_baseline, versus_teacher, closed = student_verdicts(found)
        follow_up = "–"
        if family in FOLLOW_UP_30_FRAMES:
            teacher, uniform, student = FOLLOW_UP_30_FRAMES[family]
            share = (student - uniform) / (teacher - uniform)
            follow_up = f"{teacher:.3f} / {uniform:.3f} / {student:.3f} ({share:.0%})"
        cells = [
            family,
            format_gaps(found, "teacher"),
            format_gaps(found, "uniform"),
            format_gaps(found, "uniform-offset"),
            format_gaps(found, "student"),
            versus_baseline,
            versus_teacher,
            closed,
            follow_up,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
