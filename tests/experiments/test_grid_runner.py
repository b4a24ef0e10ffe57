"""grid_runner.py: the grid on a tiny synthetic set (results, reports, reuse) and real samples."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE
from reference_metrics import brute_force_ap

import readers
import utils
from experiments import grid, grid_report, grid_runner
from runs import checkpoints
from runs.config import RunConfig
from runs.recipes import DEFAULT_RECIPE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The tiny grid at k = 25 % with two training seeds: the teacher and a baseline (the other
# methods differ from these only in their RunConfig, which test_grid.py checks; a student is
# trained in the serial grid on the real samples below).
METHODS = ["uniform"]
SEEDS = [1, 2]
EXPECTED_NAMES = ["TEACHER-FULL", "TEACHER-UNIFORM-25"]
EXPECTED_RUNS = [(name, seed) for name in EXPECTED_NAMES for seed in SEEDS]


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """One run of the grid for k = 25 % with the tests' preset (2 models x 2 seeds)."""
    output_dir = str(tmp_path_factory.mktemp("grid"))
    config = grid.resolve_config(preset="tiny")
    lines = []
    outcome = grid_runner.run_grid(
        config,
        grid.parse_ks("25"),
        output_dir,
        report=lines.append,
        methods=METHODS,
        seeds=SEEDS,
    )
    return {"output_dir": output_dir, "config": config, "grid": outcome, "lines": lines}


def checkpoint_files(output_dir):
    """{path: mtime} of every checkpoint file under output_dir/models."""
    found = {}
    for root, _, names in os.walk(os.path.join(output_dir, "models")):
        for name in names:
            if name.startswith("ckpt-") or name == "checkpoint":
                path = os.path.join(root, name)
                found[path] = os.stat(path).st_mtime_ns
    return found


def recomputed_metrics(model_dir, eval_pattern, config):
    """GAP (top 20), Hit@1 and the video count of a model's latest checkpoint on the eval set,
    from its predictions, with plain-Python metrics (not eval.py's or eval_util's)."""
    model, run_config, _ = checkpoints.restore_model(model_dir)
    reader = readers.reader_for(run_config, video_id_key=config.video_id_key)
    dataset, _ = reader.make_dataset(
        eval_pattern, config.eval_batch_size, flag_name="--eval_data_pattern"
    )
    scores, labels = [], []
    for batch in dataset:
        outputs = model(batch["video_matrix"], num_frames=batch["num_frames"], training=False)
        scores.append(outputs["predictions"].numpy().astype(np.float64))
        labels.append(batch["labels"].numpy() > 0)
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    pairs = []
    for row_scores, row_labels in zip(scores, labels, strict=True):
        top = np.argsort(-row_scores, kind="stable")[:20]  # ties: the lower class first
        pairs.extend(zip(row_scores[top].tolist(), row_labels[top].tolist(), strict=True))
    gap = brute_force_ap(
        [score for score, _ in pairs],
        [int(label) for _, label in pairs],
        num_positives=int(labels.sum()),
    )
    hits = [
        row_labels[int(np.argmax(row_scores))]
        for row_scores, row_labels in zip(scores, labels, strict=True)
    ]
    return {"gap": gap, "avg_hit_at_one": float(np.mean(hits)), "videos": len(scores)}


def count_videos(pattern):
    return sum(1 for path in glob.glob(pattern) for _ in tf.data.TFRecordDataset(path))


@pytest.mark.xdist_group("tiny_grid")
def test_grid_writes_results_and_reports(tiny_grid):
    output_dir = tiny_grid["output_dir"]
    config = tiny_grid["config"]
    assert tiny_grid["grid"]["trained"] == [
        f"{name}/seed{seed}" for seed in SEEDS for name in EXPECTED_NAMES
    ]
    with open(os.path.join(output_dir, grid_runner.RESULTS_FILE)) as handle:
        stored = json.load(handle)
    results = stored["models"]
    assert results == tiny_grid["grid"]["results"]
    assert [(entry["name"], entry["seed"]) for entry in results] == EXPECTED_RUNS
    assert stored["machine"]["cores"] >= 1 and stored["machine"]["tensorflow"]
    summary = stored["summary"]
    assert list(summary) == EXPECTED_NAMES
    for name in EXPECTED_NAMES:
        gaps = [entry["gap"] for entry in results if entry["name"] == name]
        assert summary[name]["n"] == 2
        assert summary[name]["gap_mean"] == pytest.approx(np.mean(gaps))
        assert summary[name]["gap_std"] == pytest.approx(np.std(gaps, ddof=1))
    # Two seeds train two different models on the same data.
    assert (
        results[0]["gap"] != results[1]["gap"] or results[0]["avg_loss"] != (results[1]["avg_loss"])
    )
    eval_dirs = glob.glob(os.path.join(output_dir, "data", "validate-*"))
    assert len(eval_dirs) == 1
    eval_pattern = os.path.join(eval_dirs[0], "validate-*.tfrecord")
    assert count_videos(eval_pattern) == config.num_eval_videos == 12
    for entry in results:
        model_dir = grid.model_dir(output_dir, entry["name"], entry["seed"])
        assert entry["k"] == (100 if entry["name"] == "TEACHER-FULL" else 25)
        assert entry["eval_videos"] == 12
        # Every model gets 2 passes of 2 batches (24 videos, batch 12).
        assert entry["global_step"] == config.total_epochs * config.steps_per_epoch == 4
        assert entry["checkpoint"] == grid_runner.latest_checkpoint_name(model_dir)
        with open(os.path.join(model_dir, grid_runner.TRAINED_MARKER_FILE)) as handle:
            marker = json.load(handle)
        assert marker["checkpoint"] == entry["checkpoint"]
        assert marker["train_seconds"] == entry["train_seconds"]
        with open(os.path.join(model_dir, "eval_metrics.json")) as handle:
            assert json.load(handle)["gap"] == entry["gap"]
        recomputed = recomputed_metrics(model_dir, eval_pattern, config)
        assert recomputed["videos"] == 12
        assert entry["gap"] == pytest.approx(recomputed["gap"], abs=1e-5), entry["name"]
        assert entry["avg_hit_at_one"] == pytest.approx(recomputed["avg_hit_at_one"])
        stored = RunConfig.load(model_dir)
        assert stored == grid.run_config_for(grid.GridModel(entry["method"], entry["k"]), config)
    strides = {entry["name"]: entry["frame_stride"] for entry in results}
    assert strides["TEACHER-FULL"] == 1 and strides["TEACHER-UNIFORM-25"] == 4
    # One progress line per model, with its GAP.
    progress = [line for line in tiny_grid["lines"] if line.startswith("[")]
    model_lines = [line for line in progress if "GAP" in line]
    in_training_order = sorted(results, key=lambda entry: entry["seed"])
    assert model_lines == [
        grid_runner.format_progress(index, len(EXPECTED_RUNS), entry, reused=False)
        for index, entry in enumerate(in_training_order, start=1)
    ]
    assert f"GAP {results[0]['gap']:.4f}" in model_lines[0]

    with open(os.path.join(output_dir, grid_report.RESULTS_MARKDOWN_FILE)) as handle:
        assert handle.read() == grid_report.format_markdown(config, results)
    for name in (grid_report.GAP_PLOT_FILE, grid_report.TIME_PLOT_FILE):
        with open(os.path.join(output_dir, name), "rb") as handle:
            assert handle.read(8) == PNG_SIGNATURE, name
    with open(os.path.join(output_dir, grid_runner.CONFIG_FILE)) as handle:
        assert json.load(handle) == dataclasses.asdict(config)
    leftovers = [name for name in os.listdir(output_dir) if ".tmp-" in name]
    assert not leftovers


@pytest.mark.xdist_group("tiny_grid")
def test_a_rerun_reuses_finished_models_and_evaluates_an_unlisted_one(tiny_grid):
    output_dir = tiny_grid["output_dir"]
    config = tiny_grid["config"]
    ks = grid.parse_ks("25")
    before = checkpoint_files(output_dir)
    assert before
    lines = []
    again = grid_runner.run_grid(
        config, ks, output_dir, report=lines.append, methods=METHODS, seeds=SEEDS
    )
    assert again["trained"] == []
    assert checkpoint_files(output_dir) == before
    assert sum("reused" in line for line in lines) == len(EXPECTED_RUNS)
    assert [entry["gap"] for entry in again["results"]] == [
        entry["gap"] for entry in tiny_grid["grid"]["results"]
    ]

    # A model missing from results.json (stopped after training, before its evaluation) is
    # evaluated again, not trained again.
    results_path = os.path.join(output_dir, grid_runner.RESULTS_FILE)
    with open(results_path) as handle:
        stored = json.load(handle)
    missing = ("TEACHER-UNIFORM-25", 2)
    stored["models"] = [row for row in stored["models"] if (row["name"], row["seed"]) != missing]
    utils.write_text_atomically(results_path, json.dumps(stored))
    third = grid_runner.run_grid(
        config, ks, output_dir, report=lambda line: None, methods=METHODS, seeds=SEEDS
    )
    assert third["trained"] == ["TEACHER-UNIFORM-25/seed2"]
    assert checkpoint_files(output_dir) == before
    assert [(entry["name"], entry["seed"]) for entry in third["results"]] == EXPECTED_RUNS
    reevaluated = third["results"][EXPECTED_RUNS.index(missing)]
    first = tiny_grid["grid"]["results"][EXPECTED_RUNS.index(missing)]
    assert reevaluated["gap"] == pytest.approx(first["gap"], abs=1e-6)
    assert reevaluated["train_seconds"] == first["train_seconds"]  # from trained.json


def test_serial_grid_on_the_real_samples(tmp_path):
    """Real YouTube-8M records, 3,862 classes, students distilled from the grid's own teacher."""
    eval_pattern = str(FRAME_SAMPLE / "clippedtrain1*.tfrecord")
    config = grid.resolve_config(
        preset="tiny",
        distill_scheme="serial",
        train_data_pattern=str(FRAME_SAMPLE / "clippedtrain0*.tfrecord"),
        eval_data_pattern=eval_pattern,
    )
    assert config.num_classes == grid.YT8M_NUM_CLASSES and not config.synthetic
    eval_videos = count_videos(eval_pattern)
    outcome = grid_runner.run_grid(
        config, [50], str(tmp_path), report=lambda line: None, methods=["final", "default"]
    )
    names = [entry["name"] for entry in outcome["results"]]
    assert names == ["TEACHER-FULL", "STUDENT-50-FINAL", "STUDENT-50-DEFAULT"]
    default_flags = RunConfig.load(grid.model_dir(str(tmp_path), "STUDENT-50-DEFAULT", 1))
    assert default_flags.distill_recipe == DEFAULT_RECIPE
    for entry in outcome["results"]:
        assert entry["eval_videos"] == eval_videos
        model_dir = grid.model_dir(str(tmp_path), entry["name"], entry["seed"])
        recomputed = recomputed_metrics(model_dir, eval_pattern, config)
        assert recomputed["videos"] == eval_videos
        assert entry["gap"] == pytest.approx(recomputed["gap"], abs=1e-5), entry["name"]
    assert not os.path.exists(tmp_path / "data")  # nothing synthetic was written
    with open(tmp_path / grid_report.RESULTS_MARKDOWN_FILE) as handle:
        markdown = handle.read()
    assert markdown == grid_report.format_markdown(config, outcome["results"])
    assert "STUDENT-k-DEFAULT: train.py's default recipe" in markdown


def test_a_tiny_grid_of_another_family_sweeps_its_staged_student(tmp_path):
    """The NeXtVLAD family: its teacher, baseline and default student (read in exit stages),
    data shared from a root; the student is evaluated again at each exit threshold."""
    config = grid.resolve_config(preset="tiny", family="nextvlad")
    output_dir = str(tmp_path / "nextvlad")

    def run(exit_thresholds):
        return grid_runner.run_grid(
            config,
            [50],
            output_dir,
            report=lambda line: None,
            methods=["uniform", "default"],
            data_root=str(tmp_path),
            exit_thresholds=exit_thresholds,
        )

    outcome = run([0.0, 0.9])
    names = [entry["name"] for entry in outcome["results"]]
    assert names == ["TEACHER-FULL", "TEACHER-UNIFORM-50", "STUDENT-50-DEFAULT"]
    student_dir = grid.model_dir(output_dir, "STUDENT-50-DEFAULT", 1)
    student = RunConfig.load(student_dir)
    assert (student.student_architecture, student.exit_stages) == ("NeXtVLADModel", 3)
    assert os.path.isdir(tmp_path / "data") and not os.path.exists(tmp_path / "nextvlad" / "data")
    teacher, baseline, entry = outcome["results"]
    assert "exit_sweep" not in teacher and "exit_sweep" not in baseline
    every_stage, first_stage, _ = entry["exit_sweep"]
    assert [point["threshold"] for point in entry["exit_sweep"]] == [-1.0, 0.0, 0.9]
    # Every stage read is the model's own evaluation; threshold 0 stops after the first.
    assert every_stage["gap"] == pytest.approx(entry["gap"], abs=1e-4)
    assert every_stage["mean_frames_read"] == pytest.approx(entry["mean_frames_read"])
    assert first_stage["exit_stage_shares"] == [1.0, 0.0, 0.0]
    assert first_stage["mean_frames_read"] < every_stage["mean_frames_read"]
    with open(os.path.join(output_dir, grid_report.RESULTS_MARKDOWN_FILE)) as handle:
        assert "## Stopping videos early" in handle.read()
    # A rerun with other thresholds sweeps again without training.
    before = checkpoint_files(output_dir)
    rerun = run([0.5])
    swept = [point["threshold"] for point in rerun["results"][-1]["exit_sweep"]]
    assert swept == [-1.0, 0.5] and checkpoint_files(output_dir) == before
    assert rerun["trained"] == []


def test_exit_thresholds_are_parsed_and_a_bad_one_named():
    assert grid_runner.parse_exit_thresholds("0.9, 0.5,0.9") == [0.5, 0.9]
    assert grid_runner.parse_exit_thresholds("") == []
    for text in ("0.5,1.5", "0.5,x"):
        with pytest.raises(utils.UserInputError, match=f"--exit_thresholds={text}"):
            grid_runner.parse_exit_thresholds(text)


def test_other_settings_in_the_same_output_dir_are_refused(tmp_path):
    assert not grid_runner.check_config(str(tmp_path), grid.resolve_config(preset="tiny"))
    assert grid_runner.check_config(str(tmp_path), grid.resolve_config(preset="tiny"))
    changed = grid.resolve_config(preset="tiny", lstm_cells=16)
    with pytest.raises(utils.UserInputError, match="lstm_cells 8 \\(now 16\\)"):
        grid_runner.run_grid(changed, [25], str(tmp_path), report=lambda line: None)
    assert os.listdir(tmp_path) == [grid_runner.CONFIG_FILE]
    # A directory written before a setting existed holds that setting's default.
    with open(tmp_path / grid_runner.CONFIG_FILE) as handle:
        older = {k: v for k, v in json.load(handle).items() if k != "align_teacher_blocks"}
    with open(tmp_path / grid_runner.CONFIG_FILE, "w") as handle:
        json.dump(older, handle)
    assert grid_runner.check_config(str(tmp_path), grid.resolve_config(preset="tiny"))
    aligned = grid.resolve_config(preset="tiny", align_teacher_blocks=True)
    with pytest.raises(utils.UserInputError, match="align_teacher_blocks False \\(now True\\)"):
        grid_runner.check_config(str(tmp_path), aligned)


def test_a_pattern_without_files_is_refused_before_anything_is_written(tmp_path):
    missing = grid.resolve_config(
        train_data_pattern=str(tmp_path / "train*.tfrecord"),
        eval_data_pattern=str(tmp_path / "validate*.tfrecord"),
    )
    with pytest.raises(utils.UserInputError, match="--train_data_pattern"):
        grid_runner.run_grid(missing, [10], str(tmp_path / "out"), report=lambda line: None)
    assert not os.path.exists(tmp_path / "out")


def test_a_proxy_grid_writes_the_real_label_proxy_once(tmp_path):
    """The proxy's splits are written once and then reused; the grid trains on them as on any
    frame-level data (the other tests train)."""
    config = grid.resolve_config(
        preset="tiny", data="proxy", num_train_videos=24, num_eval_videos=12, proxy_top_classes=50
    )
    assert config.data == "proxy" and config.num_classes == grid.YT8M_NUM_CLASSES
    lines = []
    patterns = grid_runner.prepare_data(str(tmp_path), config, lines.append)
    assert sorted(os.listdir(tmp_path / "data")) == [
        "proxy-train-shot0-frame2-top50-24videos-seed1",
        "proxy-validate-shot0-frame2-top50-12videos-seed1",
    ]
    assert count_videos(patterns["train"]) == 24 and count_videos(patterns["eval"]) == 12
    reader = readers.reader_for(grid.run_config_for(grid.GridModel("teacher", 100), config))
    dataset, _ = reader.make_dataset(patterns["eval"], 12)
    batch = next(iter(dataset))
    assert batch["video_matrix"].shape[0] == 12 and batch["labels"].shape[1] == 3862
    assert sum("real-label proxy" in line for line in lines) == 2
    again = []
    assert grid_runner.prepare_data(str(tmp_path), config, again.append) == patterns
    assert all("reusing" in line for line in again)
    assert "the real-label proxy" in grid_report.describe_data(config)
    with pytest.raises(utils.UserInputError, match="--data=proxy writes its own data"):
        grid.resolve_config(data="proxy", train_data_pattern="a", eval_data_pattern="b")
    with pytest.raises(utils.UserInputError, match="--data=real"):
        grid.resolve_config(data="real")
