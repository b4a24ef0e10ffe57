"""results_report.py: README's generated blocks are what the committed measurements give."""

import dataclasses
import json
import pathlib

import pytest
from conftest import REPO_ROOT

import results_report
import utils
from experiments import benchmark_report, grid


def committed_pages():
    paths = results_report.page_paths(str(REPO_ROOT / "README.md"))
    return {path: pathlib.Path(path).read_text() for path in paths}


def test_the_pages_blocks_match_the_committed_measurements():
    """`make results` would not change README or docs/: their figures are those of results/."""
    pages = committed_pages()
    assert len(pages) > 1
    assert results_report.render_pages(pages, str(REPO_ROOT / "results")) == pages


def test_every_committed_measurement_has_its_block_and_records_where_it_ran():
    results_dir = REPO_ROOT / "results"
    every_page = "".join(committed_pages().values())
    benchmark = json.loads((results_dir / results_report.BENCHMARK_FILE).read_text())
    assert benchmark["commit"]["sha"] and benchmark["machine"]["cores"] >= 1
    assert "<!-- generated:benchmark -->" in every_page
    names = results_report.grid_names(str(results_dir))
    assert names
    for name in names:
        assert f"<!-- generated:grid-{name} -->" in every_page
        stored = json.loads((results_dir / f"grid_{name}" / "results.json").read_text())
        assert stored["machine"]["cores"] >= 1
        assert all(entry.get("commit") for entry in stored["models"])


def hand_made_benchmark():
    row = {"videos_per_s": 1000.0, "per_core": 500.0, "bytes_per_video": 25000}
    return {
        "commit": {"sha": "0123456789abcdef", "dirty": False},
        "machine": {"cpu_model": "A CPU", "cores": 2, "tensorflow": "2.21.0"},
        "num_videos": 640,
        "frames_per_video": 211.6,
        "batch_size": 64,
        "repeats": 3,
        "input": {
            "cores": 2,
            "teacher": {**row, "videos_per_s": 200.0, "per_core": 100.0},
            "student_10_cache": row,
            "student_10_cache_over_teacher_per_core": 5.0,
        },
        "gpu_projection": {
            "host_cores": 16,
            "fp16": {
                "teacher_videos_per_s": 1600.0,
                "student_10_videos_per_s": 8000.0,
                "student_10_over_teacher": 5.0,
            },
        },
        "presets": {},
    }


def test_benchmark_block_holds_the_readers_and_the_labelled_projection():
    text = benchmark_report.benchmark_markdown(hand_made_benchmark())
    assert text.startswith("`make bench`, commit 0123456789; A CPU, 2 cores, TensorFlow 2.21.0;")
    assert "| teacher reader (every frame) | 200 | 100 | 25.0 |" in text
    assert "| student-10 reader, frame cache | 1,000 | 500 | 25.0 |" in text
    assert "gives 5.0x the teacher reader's videos per core" in text
    assert "**Projected** (not measured) for one H200 fed by 16 such cores" in text
    assert "| fp16 | 1,600 | 8,000 | 5.0x |" in text


def test_blocks_are_replaced_between_their_markers_and_a_missing_one_is_named(tmp_path):
    text = "a\n<!-- generated:benchmark -->\nold\n<!-- /generated:benchmark -->\nb\n"
    replaced = results_report.replace_block(text, "benchmark", "new\nlines")
    assert (
        replaced
        == "a\n<!-- generated:benchmark -->\nnew\nlines\n<!-- /generated:benchmark -->\nb\n"
    )
    with pytest.raises(utils.UserInputError, match="No page has a block for grid-x"):
        results_report.replace_block(text, "grid-x", "body")


def test_a_grid_run_is_imported_and_rendered_with_its_seeds(tmp_path):
    source = tmp_path / "run"
    source.mkdir()
    config = grid.resolve_config(preset="tiny")
    entries = [
        {
            "name": name,
            "method": method,
            "k": k,
            "seed": seed,
            "gap": gap + seed / 100,
            "avg_hit_at_one": 0.5,
            "avg_perr": 0.5,
            "map": 0.5,
            "commit": {"sha": "abc", "dirty": False},
        }
        for name, method, k, gap in (
            ("TEACHER-FULL", "teacher", 100, 0.9),
            ("TEACHER-UNIFORM-10", "uniform", 10, 0.7),
            ("STUDENT-10-FINAL", "final", 10, 0.8),
        )
        for seed in (1, 2)
    ]
    entries[-1]["exit_sweep"] = [  # a student read in stages, swept over exit thresholds
        {"threshold": -1.0, "gap": 0.82, "mean_frames_read": 20.0, "exit_stage_shares": [0, 1]},
        {"threshold": 0.9, "gap": 0.81, "mean_frames_read": 12.0, "exit_stage_shares": [0.8, 0.2]},
    ]
    (source / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (source / "results.json").write_text(
        json.dumps({"models": entries, "machine": {"cores": 2, "tensorflow": "2.21.0"}})
    )
    (source / "results.md").write_text("# table\n")
    results_dir = tmp_path / "results"
    results_report.import_grid(f"tiny={source}", str(results_dir))
    assert results_report.grid_names(str(results_dir)) == ["tiny"]
    page = "<!-- generated:grid-tiny -->\n<!-- /generated:grid-tiny -->\n"
    pages = results_report.render_pages(
        {"README.md": "no blocks\n", "docs/grid.md": page}, str(results_dir)
    )
    assert pages["README.md"] == "no blocks\n"
    rendered = pages["docs/grid.md"]
    assert "Mean ± standard deviation over 2 training seeds" in rendered
    assert "| STUDENT-10-FINAL | TEACHER-UNIFORM-10 | +0.100 ± 0.014 (2 SE) | beats | 50% |" in (
        rendered
    )
    assert "| STUDENT-10-FINAL | 0.9 | 0.810 | 12.0 | 6.0 | 80%, 20% |" in rendered
    assert "## Stopping videos early" not in rendered
    with pytest.raises(utils.UserInputError, match="No page has a block for grid-tiny"):
        results_report.render_pages({"README.md": "no blocks\n"}, str(results_dir))
    with pytest.raises(utils.UserInputError, match="NAME=DIR"):
        results_report.import_grid("no-separator", str(results_dir))


def test_the_demo_block_is_what_demo_py_printed_with_where_it_ran(tmp_path):
    metrics = {
        "gap": 0.96781,
        "avg_hit_at_one": 0.99,
        "avg_perr": 0.95,
        "map": 0.97,
        "avg_loss": 1.0,
    }
    record = {
        "metrics": {**metrics, "num_examples": 400},
        "seconds": 61.2,
        "commit": {"sha": "0123456789abcdef", "dirty": False},
        "machine": {"cpu_model": "A CPU", "cores": 2, "tensorflow": "2.21.0"},
    }
    (tmp_path / results_report.DEMO_FILE).write_text(json.dumps(record))
    page = "<!-- generated:demo -->\n<!-- /generated:demo -->\n"
    rendered = results_report.render_pages({"README.md": page}, str(tmp_path))["README.md"]
    assert "```\n=== demo results (synthetic validate split) ===\n  gap             0.9678\n" in (
        rendered
    )
    assert "`make demo`, commit 0123456789; A CPU, 2 cores, TensorFlow 2.21.0: 61 s" in rendered
