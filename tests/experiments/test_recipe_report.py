"""recipe_report.py: the ablation table of distillation recipes, from rows of grid runs."""

import json

import pytest
from conftest import seed_entries

import results_report
import utils
from experiments import recipe_report
from runs.recipes import DEFAULT_RECIPE, RECIPES

TEACHER = seed_entries("TEACHER-FULL", "teacher", [0.70, 0.71, 0.72])


def row(label, models, **settings):
    values = {
        "distill_scheme": "serial",
        "distill_weight": 10.0,
        "prediction_weight": 0.0,
        "student_label_weight": 0.0,
        "random_frame_offset": True,
    }
    values.update(settings)
    return {"label": label, "settings": values, "models": TEACHER + models}


def test_each_student_row_is_compared_with_both_baselines_and_the_default_is_marked():
    recipe = RECIPES[DEFAULT_RECIPE]
    recipes = {
        "rows": [
            row(
                "uniform",
                seed_entries("TEACHER-UNIFORM-10", "uniform", [0.60, 0.61, 0.62]),
                random_frame_offset=False,
            ),
            row(
                "uniform-offset", seed_entries("TEACHER-UNIFORM-10", "uniform", [0.69, 0.70, 0.71])
            ),
            row("L_rep", seed_entries("STUDENT-10-FINAL", "final", [0.75, 0.76, 0.77])),
            row(
                "default",
                seed_entries("STUDENT-10-FINAL", "final", [0.70, 0.70, 0.70]),
                distill_weight=recipe.distill_weight,
                prediction_weight=recipe.prediction_weight,
                student_label_weight=recipe.student_label_weight,
                random_frame_offset=recipe.random_frame_offset,
                distill_scheme=recipe.scheme,
            ),
        ]
    }
    lines = recipe_report.ablation_markdown(recipes).splitlines()
    assert lines[2].startswith("| TEACHER-FULL | | 0.710 ± 0.010 (0.700, 0.710, 0.720)")
    assert lines[3].startswith("| TEACHER-UNIFORM | | 0.610")
    # Each baseline's seeds are its own row's, though both are named TEACHER-UNIFORM-10.
    assert lines[4].startswith("| TEACHER-UNIFORM, offsets | | 0.700 ± 0.010 (0.690, 0.700, 0.710)")
    rep = lines[5]
    # 0.76 - 0.61 = +0.150 beats; against the offset baseline +0.060 beats; (0.76 - 0.61) /
    # (0.71 - 0.61) of the gap: 150 %.
    assert rep.startswith("| L_rep | serial; L_rep 10; random offsets | 0.760 ± 0.010")
    assert "+0.150 ± 0.016, beats" in rep and "+0.060 ± 0.016, beats" in rep
    assert rep.endswith("| 150% |")
    assert lines[6].startswith("| default (default) |")
    assert "(default)" not in rep


def test_a_recipe_row_is_imported_and_replaced_by_its_label(tmp_path):
    grid_dir = tmp_path / "grid"
    grid_dir.mkdir()
    (grid_dir / "config.json").write_text(json.dumps({"distill_scheme": "serial"}))
    (grid_dir / "results.json").write_text(json.dumps({"models": TEACHER}))
    results_dir = str(tmp_path / "results")
    results_report.import_recipe(f"proxy:L_rep={grid_dir}", results_dir)
    results_report.import_recipe(f"proxy:L_rep={grid_dir}", results_dir)
    stored = json.loads((tmp_path / "results" / "recipes_proxy.json").read_text())
    assert [row["label"] for row in stored["rows"]] == ["L_rep"]
    assert "recipes-proxy" in results_report.generated_blocks(results_dir)
    with pytest.raises(utils.UserInputError, match="REGIME:LABEL=DIR"):
        results_report.import_recipe(f"L_rep={grid_dir}", results_dir)
    with pytest.raises(utils.UserInputError, match="not found"):
        results_report.import_recipe(f"proxy:x={tmp_path / 'nothing'}", results_dir)
