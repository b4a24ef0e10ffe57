"""reproduce.py: the grid on a tiny synthetic set (results, tables, plots, reuse) and bad flags."""

import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, REPO_ROOT

import reproduce
import utils

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_NAMES = [
    "TEACHER-FULL",
    "TEACHER-UNIFORM-25",
    "TEACHER-RANDOM-25",
    "STUDENT-25-FINAL",
    "STUDENT-25-INTERMEDIATE",
]


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """One run of the grid for k = 25 % with the tests' preset (5 models)."""
    output_dir = str(tmp_path_factory.mktemp("grid"))
    config = reproduce.resolve_config(preset="tiny")
    lines = []
    grid = reproduce.run_grid(config, reproduce.parse_ks("25"), output_dir, report=lines.append)
    return {"output_dir": output_dir, "config": config, "grid": grid, "lines": lines}


def checkpoint_files(output_dir):
    """{path: mtime} of every checkpoint file under output_dir/models."""
    found = {}
    for root, _, names in os.walk(os.path.join(output_dir, "models")):
        for name in names:
            if name.startswith("ckpt-") or name == "checkpoint":
                path = os.path.join(root, name)
                found[path] = os.stat(path).st_mtime_ns
    return found


@pytest.mark.xdist_group("tiny_grid")
def test_grid_writes_results_tables_and_plots(tiny_grid):
    output_dir = tiny_grid["output_dir"]
    assert tiny_grid["grid"]["trained"] == EXPECTED_NAMES
    with open(os.path.join(output_dir, reproduce.RESULTS_FILE)) as handle:
        results = json.load(handle)
    assert [entry["name"] for entry in results] == EXPECTED_NAMES
    for entry in results:
        for key in ("gap", "avg_hit_at_one", "avg_perr", "map"):
            assert math.isfinite(entry[key]) and 0.0 <= entry[key] <= 1.0, (entry["name"], key)
        assert entry["k"] == (100 if entry["name"] == "TEACHER-FULL" else 25)
        assert entry["eval_videos"] == 12 and entry["eval_seconds"] > 0
        assert entry["videos_per_second"] == pytest.approx(12 / entry["eval_seconds"])
        assert entry["inference_seconds"] > 0
        assert os.path.isdir(os.path.join(output_dir, "models", entry["name"]))
    strides = {entry["name"]: entry["frame_stride"] for entry in results}
    assert strides["TEACHER-FULL"] == 1 and strides["STUDENT-25-FINAL"] == 4
    # One progress line per model, with its GAP.
    progress = [line for line in tiny_grid["lines"] if line.startswith("[")]
    model_lines = [line for line in progress if "GAP" in line]
    assert len(model_lines) == 5
    assert f"GAP {results[0]['gap']:.4f}" in model_lines[0]

    with open(os.path.join(output_dir, reproduce.RESULTS_MARKDOWN_FILE)) as handle:
        markdown = handle.read()
    for entry in results:
        paper = reproduce.PAPER_TABLE_1[entry["name"]]
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {entry['name']} "))
        assert f"{entry['gap']:.3f}" in row and f"{paper[3]:.3f}" in row
        assert f"{entry['avg_hit_at_one']:.3f}" in row and f"{paper[0]:.3f}" in row
    assert "13.00 (1.00)" in markdown and "11.00 (0.85)" in markdown  # the paper's Table 2
    teacher_seconds = results[0]["eval_seconds"]
    assert f"{teacher_seconds:.2f} (1.00)" in markdown

    for name in (reproduce.GAP_PLOT_FILE, reproduce.TIME_PLOT_FILE):
        with open(os.path.join(output_dir, name), "rb") as handle:
            assert handle.read(8) == PNG_SIGNATURE, name
    leftovers = [name for name in os.listdir(output_dir) if ".tmp-" in name]
    assert not leftovers


@pytest.mark.xdist_group("tiny_grid")
def test_a_rerun_reuses_finished_models_and_evaluates_an_unlisted_one(tiny_grid):
    output_dir = tiny_grid["output_dir"]
    config = tiny_grid["config"]
    ks = reproduce.parse_ks("25")
    before = checkpoint_files(output_dir)
    assert before
    lines = []
    again = reproduce.run_grid(config, ks, output_dir, report=lines.append)
    assert again["trained"] == []
    assert checkpoint_files(output_dir) == before
    assert sum("reused" in line for line in lines) == 5
    assert [entry["gap"] for entry in again["results"]] == [
        entry["gap"] for entry in tiny_grid["grid"]["results"]
    ]

    # A model missing from results.json (stopped after training, before its evaluation) is
    # evaluated again, not trained again.
    results_path = os.path.join(output_dir, reproduce.RESULTS_FILE)
    with open(results_path) as handle:
        results = json.load(handle)
    utils.write_text_atomically(
        results_path, json.dumps([row for row in results if row["name"] != "STUDENT-25-FINAL"])
    )
    third = reproduce.run_grid(config, ks, output_dir, report=lambda line: None)
    assert third["trained"] == ["STUDENT-25-FINAL"]
    assert checkpoint_files(output_dir) == before
    assert [entry["name"] for entry in third["results"]] == EXPECTED_NAMES


def test_serial_grid_on_the_real_samples(tmp_path):
    """Real YouTube-8M records, 3,862 classes, students distilled from the grid's own teacher."""
    config = reproduce.resolve_config(
        preset="tiny",
        distill_scheme="serial",
        train_data_pattern=str(FRAME_SAMPLE / "clippedtrain0*.tfrecord"),
        eval_data_pattern=str(FRAME_SAMPLE / "clippedtrain1*.tfrecord"),
    )
    assert config.num_classes == reproduce.YT8M_NUM_CLASSES and not config.synthetic
    eval_files = sorted(FRAME_SAMPLE.glob("clippedtrain1*.tfrecord"))
    eval_videos = sum(1 for path in eval_files for _ in tf.data.TFRecordDataset(str(path)))
    grid = reproduce.run_grid(
        config, [50], str(tmp_path), report=lambda line: None, methods=["final"]
    )
    assert [entry["name"] for entry in grid["results"]] == ["TEACHER-FULL", "STUDENT-50-FINAL"]
    for entry in grid["results"]:
        assert entry["eval_videos"] == eval_videos
        assert math.isfinite(entry["gap"]) and 0.0 <= entry["gap"] <= 1.0
    assert not os.path.exists(tmp_path / "data")  # nothing synthetic was written
    with open(tmp_path / reproduce.RESULTS_MARKDOWN_FILE) as handle:
        markdown = handle.read()
    assert "serial distillation" in markdown
    # Table 2 holds rows for the methods that ran only.
    assert "STUDENT-k-FINAL, eval s" in markdown and "UNIFORM-k, eval s" not in markdown


@pytest.mark.xdist_group("tiny_grid")
def test_other_settings_in_the_same_output_dir_are_refused(tiny_grid):
    changed = reproduce.resolve_config(preset="tiny", lstm_cells=16)
    with pytest.raises(utils.UserInputError, match="lstm_cells 8 \\(now 16\\)"):
        reproduce.run_grid(changed, [25], tiny_grid["output_dir"], report=lambda line: None)


@pytest.mark.parametrize(
    "text, expected",
    [("5,10,25,50", [50, 25, 10, 5]), ("10", [10]), (" 25, 25 ,100", [100, 25]), ("1", [1])],
)
def test_parse_ks_accepts_percentages_with_an_integer_stride(text, expected):
    assert reproduce.parse_ks(text) == expected


def test_parse_methods_keeps_table_order_and_refuses_unknown_names():
    assert reproduce.parse_methods(" final,uniform,final") == ["uniform", "final"]
    for text in ("teacher", "final,distilled", ""):
        with pytest.raises(utils.UserInputError, match="--methods"):
            reproduce.parse_methods(text)


@pytest.mark.parametrize("text", ["7", "0", "-5", "150", "abc", "", "10,,25", "12.5"])
def test_parse_ks_refuses_other_values(text):
    with pytest.raises(utils.UserInputError, match="--ks"):
        reproduce.parse_ks(text)


def test_bad_preset_data_and_sizes_are_user_errors(tmp_path):
    with pytest.raises(utils.UserInputError, match="--preset=huge"):
        reproduce.resolve_config(preset="huge")
    with pytest.raises(utils.UserInputError, match="--eval_data_pattern"):
        reproduce.resolve_config(train_data_pattern=str(tmp_path / "*.tfrecord"))
    with pytest.raises(utils.UserInputError, match="--distill_scheme"):
        reproduce.resolve_config(distill_scheme="parallel")
    with pytest.raises(utils.UserInputError, match="--batch_size=0"):
        reproduce.resolve_config(batch_size=0)
    missing = reproduce.resolve_config(
        train_data_pattern=str(tmp_path / "train*.tfrecord"),
        eval_data_pattern=str(tmp_path / "validate*.tfrecord"),
    )
    assert missing.num_classes == reproduce.YT8M_NUM_CLASSES
    with pytest.raises(utils.UserInputError, match="--train_data_pattern"):
        reproduce.run_grid(missing, [10], str(tmp_path / "out"), report=lambda line: None)


def test_cli_bad_ks_prints_one_error_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "reproduce.py"), "--ks=7", f"--output_dir={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=120,
    )
    assert completed.returncode == 1
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and "--ks=7" in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert not os.listdir(tmp_path)  # nothing written before the flags were checked
