"""The grid's reports: Table 1 and Table 2 beside the paper's figures, and two plots.

`write_reports` writes results.md (`format_markdown`), gap_vs_frames.png (`gap_figure`) and
time_vs_frames.png (`time_figure`) from the results.json entries of grid_runner.py (one per model
and seed), each replaced atomically. With several seeds every figure is the mean over the seeds,
tables show mean +- standard deviation, and `format_comparisons` says which differences exceed
two standard errors. The figures are drawn by matplotlib's Agg backend, without a display.
"""

import io
import math
import os
import statistics

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import eval_util
import utils
from experiments import grid
from runs.config import FAMILIES
from runs.recipes import DEFAULT_RECIPE, RECIPES, recipe_exit_stages

RESULTS_MARKDOWN_FILE = "results.md"
GAP_PLOT_FILE = "gap_vs_frames.png"
TIME_PLOT_FILE = "time_vs_frames.png"

# The paper's Table 1 (YouTube-8M validation): AVG-Hit@1, PERR, mAP, GAP.
PAPER_TABLE_1 = {
    "TEACHER-FULL": (0.862, 0.736, 0.402, 0.809),
    "TEACHER-UNIFORM-50": (0.859, 0.731, 0.390, 0.804),
    "TEACHER-UNIFORM-25": (0.855, 0.725, 0.371, 0.798),
    "TEACHER-UNIFORM-10": (0.848, 0.716, 0.362, 0.788),
    "TEACHER-UNIFORM-5": (0.834, 0.698, 0.333, 0.770),
    "TEACHER-RANDOM-50": (0.841, 0.702, 0.305, 0.775),
    "TEACHER-RANDOM-25": (0.832, 0.693, 0.297, 0.765),
    "TEACHER-RANDOM-10": (0.829, 0.693, 0.320, 0.765),
    "TEACHER-RANDOM-5": (0.804, 0.665, 0.288, 0.731),
    "STUDENT-50-FINAL": (0.860, 0.733, 0.360, 0.803),
    "STUDENT-25-FINAL": (0.857, 0.727, 0.385, 0.802),
    "STUDENT-10-FINAL": (0.852, 0.721, 0.375, 0.795),
    "STUDENT-5-FINAL": (0.842, 0.710, 0.359, 0.783),
    "STUDENT-50-INTERMEDIATE": (0.862, 0.739, 0.385, 0.805),
    "STUDENT-25-INTERMEDIATE": (0.851, 0.718, 0.346, 0.792),
    "STUDENT-10-INTERMEDIATE": (0.854, 0.725, 0.382, 0.799),
    "STUDENT-5-INTERMEDIATE": (0.845, 0.720, 0.356, 0.787),
}
TABLE_1_METRICS = tuple(
    (eval_util.METRIC_LABELS[name], name) for name in ("avg_hit_at_one", "avg_perr", "map", "gap")
)
# The paper's Table 2: evaluation time in hours on the validation set (Tesla K80), by k.
PAPER_EVAL_HOURS = {100: 13.00, 10: 9.11, 25: 11.00, 50: 12.50}


def describe_data(config):
    """One sentence on the data and training of the grid, for results.md."""
    if config.data == "proxy":
        data = (
            "the real-label proxy (proxy_data.py: real YouTube-8M ids, labels and mean "
            "features of the train and held-out samples, frames synthesized around them with "
            f"shot noise {config.proxy_shot_noise:g} and frame noise "
            f"{config.proxy_frame_noise:g}; "
            f"{config.proxy_top_classes or 'all'} classes kept, seed {config.seed})"
        )
    elif config.synthetic:
        data = (
            f"synthetic YouTube-8M-format data ({config.num_train_videos} train / "
            f"{config.num_eval_videos} validate videos, {config.num_classes} classes, "
            f"{config.synthetic_min_frames}-{config.synthetic_max_frames} frames, "
            f"seed {config.seed})"
        )
    else:
        data = (
            f"`{config.train_data_pattern}` (train) and `{config.eval_data_pattern}` (eval), "
            f"{config.num_classes} classes"
        )
    family = getattr(config, "family", "hierarchical")
    if family == "hierarchical":
        network = f"LSTM {config.lstm_cells} cells x {config.lstm_layers} layers"
    else:
        pooling = ""
        if family == "dbof":  # a grid written before the setting has its default, max
            pooling = f", {config.dbof_pooling} pooling"
        network = (
            f"the {family} family ({FAMILIES[family]}: {config.cluster_size or 'published'} "
            f"clusters, hidden {config.hidden_size or 'published'}{pooling}; its students are "
            "built as it and distilled by the default recipe)"
        )
    return (
        f"Preset `{config.preset}` on {data}; {network}, batch {config.batch_size}, learning rate "
        f"{config.base_learning_rate:g}; {config.distill_scheme} distillation. Every model gets "
        f"{config.total_epochs} passes: teachers {config.total_epochs} epochs, students "
        f"{config.joint_epochs} joint + {config.finetune_epochs} fine-tuning. Teacher blocks "
        f"{config.teacher_block_size} frames, student and baseline blocks "
        f"{config.student_block_size}. Student loss weights: distance {config.distill_weight:g}, "
        f"intermediate {config.intermediate_weight:g}, predictions "
        f"{config.prediction_weight:g}, own labels {config.student_label_weight:g}."
        + (
            " Joint students' teachers cut blocks at the student's (student block x j frames)."
            if config.align_teacher_blocks
            else ""
        )
        + (
            " UNIFORM-k baselines and students train on frames o, o + j, ... from a random "
            "offset o per video and epoch, and evaluate on frames 0, j, 2j, ..."
            if config.random_frame_offset
            else ""
        )
    )


SUMMARY_KEYS = (
    "gap",
    "avg_hit_at_one",
    "avg_perr",
    "map",
    "eval_seconds",
    "inference_seconds",
    "mean_frames_read",
)


def summarize(results):
    """Per model name, over its seeds: `n`, `seeds`, and `<key>_mean`, `<key>_std` (the sample
    standard deviation, 0 for one seed) of each of SUMMARY_KEYS an entry has.

    Returns:
      dict name -> summary row (also `name`, `method`, `k`), in the order names first appear.
    """
    by_name = {}
    for entry in results:
        by_name.setdefault(entry["name"], []).append(entry)
    summary = {}
    for name, entries in by_name.items():
        row = {
            "name": name,
            "method": entries[0]["method"],
            "k": entries[0]["k"],
            "n": len(entries),
            "seeds": [entry.get("seed") for entry in entries],
        }
        for key in SUMMARY_KEYS:
            values = [entry[key] for entry in entries if key in entry]
            if values:
                row[f"{key}_mean"] = statistics.fmean(values)
                row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[name] = row
    return summary


def format_mean(row, key, digits=3):
    """`mean` for one seed, `mean ± std` for several."""
    mean = f"{row[f'{key}_mean']:.{digits}f}"
    return mean if row["n"] < 2 else f"{mean} ± {row[f'{key}_std']:.{digits}f}"


def format_table_1(results):
    """Table 1: one row per model, each metric ours (mean ± std over seeds) then the paper's."""
    header = ["MODEL"]
    for label, _ in TABLE_1_METRICS:
        header += [f"{label} ours", f"{label} paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summarize(results).values():
        paper = PAPER_TABLE_1.get(row["name"])
        cells = [row["name"]]
        for metric_index, (_, key) in enumerate(TABLE_1_METRICS):
            cells.append(format_mean(row, key))
            cells.append(f"{paper[metric_index]:.3f}" if paper else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(better, worse, key="gap"):
    """Whether `better` beats `worse` on `key` beyond two standard errors of the difference.

    Returns:
      dict with `difference` (mean of better - mean of worse), `standard_error`
      (sqrt(s_a^2 / n_a + s_b^2 / n_b); None with one seed on either side) and `verdict`:
      "beats", "loses to", "no difference beyond 2 SE", or "one seed: no claim".
    """
    difference = better[f"{key}_mean"] - worse[f"{key}_mean"]
    if better["n"] < 2 or worse["n"] < 2:
        return {"difference": difference, "standard_error": None, "verdict": "one seed: no claim"}
    standard_error = math.sqrt(
        better[f"{key}_std"] ** 2 / better["n"] + worse[f"{key}_std"] ** 2 / worse["n"]
    )
    if difference > 2 * standard_error:
        verdict = "beats"
    elif difference < -2 * standard_error:
        verdict = "loses to"
    else:
        verdict = "no difference beyond 2 SE"
    return {"difference": difference, "standard_error": standard_error, "verdict": verdict}


def gap_closed(student, uniform, teacher):
    """The fraction of the UNIFORM-k -> TEACHER-FULL GAP gap that a student closes (None when
    the teacher is not above the baseline)."""
    gap = teacher["gap_mean"] - uniform["gap_mean"]
    if gap <= 0:
        return None
    return (student["gap_mean"] - uniform["gap_mean"]) / gap


def format_comparisons(results):
    """For each k: each student against TEACHER-UNIFORM-k and TEACHER-RANDOM-k (GAP difference,
    its standard error, the verdict) and the share of the UNIFORM-k -> TEACHER-FULL gap it
    closes. Empty when the grid has no student."""
    summary = summarize(results)
    teacher = summary.get("TEACHER-FULL")
    lines = []
    for row in summary.values():
        if row["method"] not in grid.STUDENT_METHODS:
            continue
        for method in ("uniform", "random"):
            baseline = summary.get(grid.GridModel(method, row["k"]).name)
            if baseline is None:
                continue
            result = compare(row, baseline)
            error = (
                f" ± {2 * result['standard_error']:.3f} (2 SE)"
                if result["standard_error"] is not None
                else ""
            )
            line = (
                f"| {row['name']} | {baseline['name']} | {result['difference']:+.3f}{error} "
                f"| {result['verdict']} |"
            )
            if method == "uniform" and teacher is not None:
                closed = gap_closed(row, baseline, teacher)
                line += f" {closed:.0%} |" if closed is not None else " – |"
            else:
                line += " |"
            lines.append(line)
    if not lines:
        return ""
    header = [
        "| student | baseline | GAP difference | verdict | share of the UNIFORM-k -> "
        "TEACHER-FULL gap closed |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(header + lines)


def format_table_2(results):
    """Table 2: eval time of TEACHER-FULL and of the k % models, ours (s, mean over seeds) and
    the paper's (h)."""
    by_name = {
        name: {key: row[f"{key}_mean"] for key in ("eval_seconds", "inference_seconds")}
        for name, row in summarize(results).items()
    }
    ks = sorted({entry["k"] for entry in results if entry["method"] != "teacher"})
    teacher = by_name.get("TEACHER-FULL")
    header = ["MODEL", "TEACHER-FULL"] + [f"{k}%" for k in ks]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    paper_teacher = PAPER_EVAL_HOURS[100]
    paper_cells = ["paper, eval hours (fraction)", f"{paper_teacher:.2f} (1.00)"]
    for k in ks:
        hours = PAPER_EVAL_HOURS.get(k)
        paper_cells.append(f"{hours:.2f} ({hours / paper_teacher:.2f})" if hours else "–")
    lines.append("| " + " | ".join(paper_cells) + " |")
    for key, what in (("eval_seconds", "eval s"), ("inference_seconds", "warm inference s")):
        for method in grid.METHODS[1:]:
            if not any(entry["method"] == method for entry in results):
                continue  # left out with --methods
            cells = [f"ours, {grid.model_name(method, 'k')}, {what} (fraction)"]
            cells.append(f"{teacher[key]:.2f} (1.00)" if teacher else "–")
            for k in ks:
                entry = by_name.get(grid.GridModel(method, k).name)
                if entry is None:
                    cells.append("–")
                elif teacher:
                    cells.append(f"{entry[key]:.2f} ({entry[key] / teacher[key]:.2f})")
                else:
                    cells.append(f"{entry[key]:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_markdown(config, results):
    """The whole results.md."""
    recipe_line = describe_default_recipe(results, config.family)
    return "\n".join(
        [
            "# The paper's grid, reproduced",
            "",
            describe_data(config),
            "",
            "Ours: this run, on its eval set. Paper: Bhardwaj & Khapra, Tables 1 and 2, on the "
            "YouTube-8M validation set. On other data compare the orderings, not the values.",
            "",
            "## Table 1: performance",
            "",
            format_seeds(results),
            "",
            *([recipe_line, ""] if recipe_line else []),
            format_table_1(results),
            "",
            *format_comparison_section(results),
            *format_exit_section(results),
            "## Table 2: evaluation time",
            "",
            "Ours in seconds on this machine: `eval s` is the whole evaluation (tracing and "
            "metrics included), `warm inference s` the fastest of four warm forward passes "
            "over the eval set. Fractions are of TEACHER-FULL's time. The paper's hours are on "
            "Tesla K80s; it does not say which k % model it timed.",
            "",
            format_table_2(results),
            "",
        ]
    )


def describe_default_recipe(results, family):
    """A sentence on the STUDENT-k-DEFAULT rows' recipe for a grid of `family`, or "" when the
    grid has none."""
    if not any(entry["method"] == "default" for entry in results):
        return ""
    recipe = RECIPES[DEFAULT_RECIPE]
    exit_stages = recipe_exit_stages(DEFAULT_RECIPE, family)
    return (
        f"STUDENT-k-DEFAULT: train.py's default recipe (`--distill_recipe={DEFAULT_RECIPE}`): "
        f"{recipe.scheme} from this grid's TEACHER-FULL, weights distance "
        f"{recipe.distill_weight:g}, predictions {recipe.prediction_weight:g}, own labels "
        f"{recipe.student_label_weight:g}"
        + (", from random frame offsets" if recipe.random_frame_offset else "")
        + (
            f", distilled after each of {exit_stages} exit stages and read to the end"
            if exit_stages > 1
            else ""
        )
        + ", whatever the grid's scheme and weights."
    )


def format_seeds(results):
    """One sentence on the seeds the figures are over."""
    seeds = sorted({entry.get("seed") for entry in results} - {None})
    if len(seeds) < 2:
        return "One training seed per model: differences carry no error bars."
    return (
        f"Mean ± standard deviation over {len(seeds)} training seeds "
        f"({', '.join(str(seed) for seed in seeds)}) per model, on the same data; every seed "
        "sets the initialisation, the shuffles and the frames drawn."
    )


def format_comparison_section(results):
    """The comparisons' heading, explanation and table, or nothing without a student."""
    table = format_comparisons(results)
    if not table:
        return []
    return [
        "## Students against their baselines",
        "",
        "A difference is a claim only beyond two standard errors of the difference of the means "
        "(sqrt(s_a^2 / n_a + s_b^2 / n_b)); every model had the same number of passes over the "
        "training data (equal passes, not equal compute: a serial student also relies on the "
        "teacher's own training).",
        "",
        table,
        "",
    ]


def summarize_exits(results):
    """Per model that reads in exit stages and was swept (its entries' `exit_sweep`,
    grid_runner.sweep_exits), one point per exit threshold ascending, over the seeds:
    `threshold`, `n`, `gap_mean`, `gap_std`, `frames_read_mean` (per video), `of_every_stage`
    (frames read over those read at every stage, the sweep's first point; mean over seeds),
    `percent_of_frames` (k x of_every_stage) and `exit_stage_shares` (means).

    Returns:
      dict name -> {`k`, `points`}, in the order names first appear.
    """
    by_name = {}
    for entry in results:
        if entry.get("exit_sweep"):
            by_name.setdefault(entry["name"], []).append(entry)
    summary = {}
    for name, entries in by_name.items():
        by_threshold = {}
        for entry in entries:
            every_stage = entry["exit_sweep"][0]["mean_frames_read"]
            for point in entry["exit_sweep"]:
                by_threshold.setdefault(point["threshold"], []).append(
                    (point, point["mean_frames_read"] / max(every_stage, 1e-9))
                )
        points = []
        for threshold in sorted(by_threshold):
            measured = by_threshold[threshold]
            gaps = [point["gap"] for point, _ in measured]
            of_every_stage = statistics.fmean(fraction for _, fraction in measured)
            points.append(
                {
                    "threshold": threshold,
                    "n": len(measured),
                    "gap_mean": statistics.fmean(gaps),
                    "gap_std": statistics.stdev(gaps) if len(gaps) > 1 else 0.0,
                    "frames_read_mean": statistics.fmean(
                        point["mean_frames_read"] for point, _ in measured
                    ),
                    "of_every_stage": of_every_stage,
                    "percent_of_frames": entries[0]["k"] * of_every_stage,
                    "exit_stage_shares": np.mean(
                        [point["exit_stage_shares"] for point, _ in measured], axis=0
                    ).tolist(),
                }
            )
        summary[name] = {"k": entries[0]["k"], "points": points}
    return summary


def exit_table_lines(results):
    """The exit sweep's explanation and table (one row per model and threshold), or nothing
    when no model was swept."""
    exits = summarize_exits(results)
    if not exits:
        return []
    lines = [
        "Each model that reads in exit stages, evaluated again at each `--exit_threshold` (the "
        "agreement target of its exit rule, calibrated on the grid's training videos; -1 reads "
        "every stage). Frames are those read per video; `% of frames` is k times the share of "
        "the frames read at every stage.",
        "",
        "| model | exit threshold | GAP | frames read per video | % of frames | "
        "stopped after each stage |",
        "|---|---|---|---|---|---|",
    ]
    for name, model in exits.items():
        for point in model["points"]:
            shares = ", ".join(f"{share:.0%}" for share in point["exit_stage_shares"])
            lines.append(
                f"| {name} | {point['threshold']:g} | {format_mean(point, 'gap')} "
                f"| {point['frames_read_mean']:.1f} | {point['percent_of_frames']:.1f} | {shares} |"
            )
    return lines


def format_exit_section(results):
    """The exit sweep's heading and `exit_table_lines`, or nothing when no model was swept."""
    lines = exit_table_lines(results)
    return ["## Stopping videos early", "", *lines, ""] if lines else []


def method_series(results, method, key):
    """(ks ascending, means over seeds) of one method's models."""
    rows = sorted(
        (row["k"], row[f"{key}_mean"])
        for row in summarize(results).values()
        if row["method"] == method
    )
    return [k for k, _ in rows], [value for _, value in rows]


def render_png(figure):
    """The figure as PNG bytes, drawn by the Agg backend."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def plot_methods(axes, series_by_method, teacher_value, title, ylabel):
    """One line per k % method and the teacher as a horizontal line, on `axes`."""
    for method, (ks, values) in series_by_method.items():
        if ks:
            axes.plot(ks, values, marker="o", label=grid.model_name(method, "k"))
    if teacher_value is not None:
        axes.axhline(teacher_value, color="black", linestyle="--", label="TEACHER-FULL")
    axes.set_xlabel("% of frames read (k)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)


def gap_figure(results):
    """GAP vs % of frames: this run (left) and the paper's Table 1 (right)."""
    figure = Figure(figsize=(11, 4.2))
    ours_axes, paper_axes = figure.subplots(1, 2)
    teacher = summarize(results).get("TEACHER-FULL")
    plot_methods(
        ours_axes,
        {method: method_series(results, method, "gap") for method in grid.METHODS[1:]},
        teacher["gap_mean"] if teacher else None,
        "This run",
        "GAP",
    )
    for name, model in summarize_exits(results).items():
        points = sorted(model["points"], key=lambda point: point["percent_of_frames"])
        ours_axes.plot(
            [point["percent_of_frames"] for point in points],
            [point["gap_mean"] for point in points],
            marker="^",
            linestyle=":",
            label=f"{name}, early exits",
        )
        ours_axes.legend(fontsize=7)
    paper_series = {}
    for method in grid.METHODS[1:]:
        ks = [k for k in (5, 10, 25, 50) if grid.GridModel(method, k).name in PAPER_TABLE_1]
        paper_series[method] = (ks, [PAPER_TABLE_1[grid.GridModel(method, k).name][3] for k in ks])
    plot_methods(
        paper_axes, paper_series, PAPER_TABLE_1["TEACHER-FULL"][3], "Paper (YouTube-8M)", "GAP"
    )
    figure.tight_layout()
    return figure


def time_figure(results):
    """Eval time vs % of frames: seconds (left) and fraction of TEACHER-FULL's (right)."""
    figure = Figure(figsize=(11, 4.2))
    seconds_axes, fraction_axes = figure.subplots(1, 2)
    teacher = summarize(results).get("TEACHER-FULL")
    plot_methods(
        seconds_axes,
        {method: method_series(results, method, "eval_seconds") for method in grid.METHODS[1:]},
        teacher["eval_seconds_mean"] if teacher else None,
        "Eval time, this run",
        "seconds",
    )
    if teacher:
        fractions = {}
        for method in grid.METHODS[1:]:
            ks, seconds = method_series(results, method, "inference_seconds")
            fractions[method] = (
                ks,
                [value / teacher["inference_seconds_mean"] for value in seconds],
            )
        plot_methods(
            fraction_axes,
            fractions,
            1.0,
            "Warm inference time / TEACHER-FULL's",
            "fraction of the teacher's time",
        )
        paper_ks = sorted(k for k in PAPER_EVAL_HOURS if k != 100)
        fraction_axes.plot(
            paper_ks,
            [PAPER_EVAL_HOURS[k] / PAPER_EVAL_HOURS[100] for k in paper_ks],
            marker="s",
            color="grey",
            linestyle=":",
            label="paper (K80 eval hours)",
        )
        fraction_axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def write_reports(output_dir, config, results):
    """results.md and the two plots, each replaced atomically."""
    markdown = format_markdown(config, results)
    utils.write_text_atomically(os.path.join(output_dir, RESULTS_MARKDOWN_FILE), markdown)
    utils.write_bytes_atomically(
        os.path.join(output_dir, GAP_PLOT_FILE), render_png(gap_figure(results))
    )
    utils.write_bytes_atomically(
        os.path.join(output_dir, TIME_PLOT_FILE), render_png(time_figure(results))
    )
    return markdown
