"""The demo job on a tiny synthetic set, in process: the whole job, its rerun, determinism."""

import json
import os

from experiments import demo_job
from serving import evaluator


def test_demo_runs_the_whole_job_a_rerun_reuses_it_and_a_fresh_run_repeats_it(tmp_path):
    settings = {
        "num_train_videos": 24,
        "num_validate_videos": 10,
        "num_classes": 5,
        "lstm_cells": 4,
        "num_epochs": 1,
        "batch_size": 8,
    }
    lines = []
    metrics, output_file = demo_job.run_demo(str(tmp_path), report=lines.append, **settings)
    assert metrics["num_examples"] == 10 and metrics["global_step"] == 3  # ceil(24 / 8)
    with open(output_file) as handle:
        rows = handle.read().splitlines()
    assert rows[0] == "VideoId,LabelConfidencePairs" and len(rows) == 1 + 10
    with open(os.path.join(tmp_path, "teacher", evaluator.EVAL_METRICS_FILE)) as handle:
        assert json.load(handle)["gap"] == metrics["gap"]
    assert "[train] done at step 3" in lines

    # The same command again: the data and the trained model are reused, nothing is retrained.
    again = []
    metrics_again, _ = demo_job.run_demo(str(tmp_path), report=again.append, **settings)
    assert "[train] done at step 3" in again and metrics_again["gap"] == metrics["gap"]
    assert sum("reusing" in line for line in again) == 2  # both data splits

    # From scratch in another directory: the demo is deterministic, the same figures and CSV.
    fresh_metrics, fresh_file = demo_job.run_demo(
        str(tmp_path / "fresh"), report=lambda line: None, **settings
    )
    lines = demo_job.results_lines(metrics)
    assert demo_job.results_lines(fresh_metrics) == lines
    with open(output_file) as first, open(fresh_file) as fresh:
        assert first.read() == fresh.read()
    # What demo.py prints (and README shows) comes back from its record.
    record = json.loads(json.dumps(demo_job.results_record(metrics, settings, seconds=1.25)))
    assert record["settings"] == settings and record["machine"]["cores"] >= 1
    assert demo_job.results_lines(record["metrics"]) == lines
    assert lines[0] == demo_job.RESULTS_HEADER and lines[1].startswith("  gap ")
