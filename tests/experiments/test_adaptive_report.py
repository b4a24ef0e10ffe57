"""adaptive_report.py: the adaptive student's sweep read from eval_metrics files, and its table
against the fixed STUDENT-10."""

import json

import pytest

import results_report
import utils
from experiments import adaptive_report


def write_sweep(root, points):
    """`points`: {seed: {threshold: (gap, frames, shares)}} as eval.py's files."""
    for seed, by_threshold in points.items():
        seed_dir = root / f"seed{seed}"
        seed_dir.mkdir(parents=True)
        for threshold, (gap, frames, shares) in by_threshold.items():
            metrics = {"gap": gap, "mean_frames_read": frames}
            if shares:
                metrics["exit_stage_shares"] = shares
            (seed_dir / f"eval_metrics_threshold{threshold}.json").write_text(json.dumps(metrics))
    return str(root)


def test_the_sweep_is_compared_with_the_fixed_student(tmp_path):
    adaptive = write_sweep(
        tmp_path / "adaptive",
        {
            seed: {
                "-1": (0.80 + offset, 30.0, None),
                "0.9": (0.79 + offset, 12.0, [0.6, 0.2, 0.2]),
            }
            for seed, offset in [(1, 0.0), (2, 0.002), (3, 0.004)]
        },
    )
    fixed = write_sweep(
        tmp_path / "student10",
        {seed: {"-1": (0.798 + offset, 30.0, None)} for seed, offset in [(1, 0), (2, 0.001)]},
    )
    (tmp_path / "adaptive" / "seed1.log").write_text("a training log beside the seeds\n")
    entries = adaptive_report.read_sweep(adaptive)
    assert [(entry["seed"], entry["exit_threshold"]) for entry in entries][:2] == [
        (1, None),
        (1, 0.9),
    ]
    results_dir = tmp_path / "results"
    results_report.import_adaptive(f"proxy:student-10={fixed}", str(results_dir))
    results_report.import_adaptive(f"proxy:adaptive={adaptive}", str(results_dir))
    record = json.loads((results_dir / "adaptive_proxy.json").read_text())
    text = adaptive_report.adaptive_markdown(record)
    assert "| student-10 | – | 0.798 ± 0.001 | 30.0 | 100% | – | – |" in text
    assert "| adaptive | every stage | 0.802 ± 0.002 | 30.0 | 100% | – |" in text
    assert "| adaptive | 0.9 | 0.792 ± 0.002 | 12.0 | 40% | 60%, 20%, 20% | -0.006 ± " in text
    assert "loses to" in text
    assert "adaptive-proxy" in results_report.generated_blocks(str(results_dir))


def test_an_empty_sweep_or_a_bad_spec_is_refused(tmp_path):
    with pytest.raises(utils.UserInputError, match="holds no seed"):
        adaptive_report.read_sweep(str(tmp_path))
    with pytest.raises(utils.UserInputError, match="give REGIME:LABEL=DIR"):
        results_report.import_adaptive(f"proxy={tmp_path}", str(tmp_path))
