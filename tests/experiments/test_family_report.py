"""family_report.py: the model families side by side, from rows of grid runs."""

import json

import pytest
from conftest import seed_entries

import results_report
import utils
from experiments import family_report
from runs.recipes import DEFAULT_RECIPE, RECIPES


def family_row(family, label, models):
    return {"family": family, "label": label, "settings": {"family": family}, "models": models}


NEXTVLAD = [
    family_row(
        "nextvlad",
        "grid",
        seed_entries("TEACHER-FULL", "teacher", [0.72, 0.73, 0.74])
        + seed_entries("TEACHER-UNIFORM-10", "uniform", [0.60, 0.61, 0.62])
        + seed_entries("STUDENT-10-DEFAULT", "default", [0.725, 0.73, 0.735]),
    ),
    family_row(
        "nextvlad",
        "uniform-offset",
        seed_entries("TEACHER-UNIFORM-10", "uniform", [0.68, 0.69, 0.70]),
    ),
]


def hierarchical_recipes():
    recipe = RECIPES[DEFAULT_RECIPE]
    teacher = seed_entries("TEACHER-FULL", "teacher", [0.70, 0.70, 0.70])
    default_settings = {
        "distill_scheme": recipe.scheme,
        "distill_weight": recipe.distill_weight,
        "prediction_weight": recipe.prediction_weight,
        "student_label_weight": recipe.student_label_weight,
        "random_frame_offset": recipe.random_frame_offset,
    }
    other = dict(default_settings, distill_weight=0.0)
    return {
        "rows": [
            {
                "label": "uniform",
                "settings": other,
                "models": teacher
                + seed_entries("TEACHER-UNIFORM-10", "uniform", [0.66, 0.67, 0.68]),
            },
            {
                "label": "uniform-offset",
                "settings": other,
                "models": teacher
                + seed_entries("TEACHER-UNIFORM-10", "uniform", [0.69, 0.69, 0.69]),
            },
            {
                "label": "L_pred",
                "settings": other,
                "models": teacher + seed_entries("STUDENT-10-FINAL", "final", [0.50, 0.50, 0.50]),
            },
            {
                "label": "L_rep + L_CE",
                "settings": default_settings,
                "models": teacher + seed_entries("STUDENT-10-FINAL", "final", [0.75, 0.75, 0.75]),
            },
        ]
    }


def test_each_family_against_its_better_baseline_its_teacher_and_the_follow_up():
    table = family_report.families_markdown({"rows": NEXTVLAD}, hierarchical_recipes())
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, hierarchical (from the recipes), nextvlad
    hierarchical, nextvlad = lines[2], lines[3]
    assert hierarchical.startswith("| hierarchical | 0.700 ± 0.000 (0.700, 0.700, 0.700) |")
    # The default-recipe row is the student, not L_pred's.
    assert "0.750 ± 0.000" in hierarchical and "0.500" not in hierarchical
    assert "(69%)" in hierarchical  # the follow-up's share at 30 frames
    # NeXtVLAD: the better baseline is the one from offsets (0.69); 0.73 beats it.
    assert "+0.040 ± " in nextvlad and "beats" in nextvlad
    assert "+0.000, within 1 %" in nextvlad
    assert "| 100% |" in nextvlad  # the student is at the teacher: the whole fixed gap
    assert "0.831 / 0.812 / 0.818 (32%)" in nextvlad


def test_import_family_adds_and_replaces_rows_and_checks_the_family(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"family": "nextvlad"}))
    (run / "results.json").write_text(json.dumps({"models": NEXTVLAD[0]["models"]}))
    results = tmp_path / "results"
    results_report.import_family(f"proxy:nextvlad:grid={run}", str(results))
    results_report.import_family(f"proxy:nextvlad:grid={run}", str(results))
    stored = json.loads((results / "families_proxy.json").read_text())
    assert [(row["family"], row["label"]) for row in stored["rows"]] == [("nextvlad", "grid")]
    with pytest.raises(utils.UserInputError, match="holds a grid of the nextvlad family"):
        results_report.import_family(f"proxy:dbof:grid={run}", str(results))
    with pytest.raises(utils.UserInputError, match="REGIME:FAMILY:LABEL=DIR"):
        results_report.import_family(f"proxy:nextvlad:other={run}", str(results))
