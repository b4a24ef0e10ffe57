"""The adaptive student's curve: GAP against the frames read per video, over its exit thresholds,
beside fixed-stride students of the same family.

    sweep = adaptive_report.read_sweep("/tmp/adaptive")   # label -> entries
    table = adaptive_report.adaptive_markdown(record)

A sweep directory holds one folder per seed (`seed1`, `seed2`, ...), each with the
`eval_metrics.json` of one evaluation per exit threshold, saved as
`eval_metrics_threshold<T>.json` (T below 0: every stage read, or a model without stages).
`results_report.py --import_adaptive=REGIME:LABEL=DIR` keeps the entries in
results/adaptive_<regime>.json: `rows`, each a `label` (`adaptive`: a student with exit
stages; `student-k`: a fixed student reading k % of the frames) and its `entries` (`seed`,
`exit_threshold` or None, `gap`, `mean_frames_read`, `exit_stage_shares`).

Per row and threshold: GAP mean ± std over the seeds, the frames read per video, and the
frames as a share of the fixed STUDENT-10's; each adaptive point against STUDENT-10 (difference,
two standard errors, verdict: grid_report.compare).
"""

import glob
import json
import os
import re
import statistics

import utils
from experiments import grid_report

THRESHOLD_FILE = re.compile(r"eval_metrics_threshold(-?[0-9.]+)\.json$")
REFERENCE_LABEL = "student-10"  # the fixed student every point is compared with


def read_sweep(directory):
    """The entries of a sweep directory (see the module docstring), seeds in order.

    Raises:
      utils.UserInputError: when it holds no `seed*/eval_metrics_threshold*.json`.
    """
    entries = []
    seed_dirs = [
        path
        for path in glob.glob(os.path.join(directory, "seed*"))
        if os.path.isdir(path) and re.fullmatch(r"seed\d+", os.path.basename(path))
    ]
    for seed_dir in sorted(seed_dirs, key=lambda path: int(os.path.basename(path)[4:])):
        seed = int(os.path.basename(seed_dir).removeprefix("seed"))
        for path in sorted(glob.glob(os.path.join(seed_dir, "eval_metrics_threshold*.json"))):
            threshold = float(THRESHOLD_FILE.search(path).group(1))
            with open(path) as handle:
                metrics = json.load(handle)
            entries.append(
                {
                    "seed": seed,
                    "exit_threshold": threshold if threshold >= 0 else None,
                    "gap": metrics["gap"],
                    "mean_frames_read": metrics["mean_frames_read"],
                    "exit_stage_shares": metrics.get("exit_stage_shares"),
                }
            )
    if not entries:
        raise utils.UserInputError(
            f"{directory} holds no seed*/eval_metrics_threshold*.json: evaluate each seed's "
            "model with eval.py --exit_threshold=T and save eval_metrics.json under that name."
        )
    return entries


def summarize_points(entries):
    """[(threshold or None, summary)] per threshold, in order (None first): the summary has
    grid_report's `n`, `gap_mean`, `gap_std`, and `frames_mean`, `shares` (mean per stage)."""
    by_threshold = {}
    for entry in entries:
        by_threshold.setdefault(entry["exit_threshold"], []).append(entry)
    points = []
    for threshold in sorted(by_threshold, key=lambda value: -1.0 if value is None else value):
        group = by_threshold[threshold]
        gaps = [entry["gap"] for entry in group]
        summary = {
            "n": len(group),
            "gap_mean": statistics.fmean(gaps),
            "gap_std": statistics.stdev(gaps) if len(gaps) > 1 else 0.0,
            "frames_mean": statistics.fmean(entry["mean_frames_read"] for entry in group),
        }
        shares = [entry["exit_stage_shares"] for entry in group if entry["exit_stage_shares"]]
        if shares:
            summary["shares"] = [statistics.fmean(values) for values in zip(*shares, strict=True)]
        points.append((threshold, summary))
    return points


def adaptive_markdown(record):
    """The curve's table (see the module docstring)."""
    rows = {row["label"]: summarize_points(row["entries"]) for row in record.get("rows", [])}
    reference = rows.get(REFERENCE_LABEL, [(None, None)])[0][1]
    lines = [
        "| model | exit threshold | GAP | frames read per video | of STUDENT-10's frames "
        "| stopped after each stage | against STUDENT-10 (2 SE) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, points in rows.items():
        for threshold, summary in points:
            shown_threshold = "every stage" if threshold is None else f"{threshold:g}"
            if not label.startswith("adaptive"):
                shown_threshold = "–"
            share = f"{summary['frames_mean'] / reference['frames_mean']:.0%}" if reference else "–"
            stages = ", ".join(f"{value:.0%}" for value in summary.get("shares", [])) or "–"
            against = "–"
            if reference and label != REFERENCE_LABEL:
                comparison = grid_report.compare(summary, reference)
                spread = comparison["standard_error"]
                against = f"{comparison['difference']:+.3f}" + (
                    f" ± {2 * spread:.3f}, {comparison['verdict']}"
                    if spread is not None
                    else f", {comparison['verdict']}"
                )
            gap = grid_report.format_mean(summary, "gap")
            lines.append(
                f"| {label} | {shown_threshold} | {gap} | {summary['frames_mean']:.1f} | "
                f"{share} | {stages} | {against} |"
            )
    return "\n".join(lines)
