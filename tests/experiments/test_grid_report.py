"""grid_report.py: results.md's tables and the plots, from hand-made results.json entries."""

import os

import pytest

from experiments import grid, grid_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def entry(name, method, k, gap, eval_seconds, inference_seconds):
    """A results.json entry with the keys the reports read (Hit@1, PERR, mAP derived from GAP)."""
    return {
        "name": name,
        "method": method,
        "k": k,
        "gap": gap,
        "avg_hit_at_one": gap - 0.01,
        "avg_perr": gap - 0.02,
        "map": gap - 0.03,
        "eval_seconds": eval_seconds,
        "inference_seconds": inference_seconds,
    }


# Table 1's order; k = 5 has no paper time, and STUDENT-5-FINAL is missing.
RESULTS = [
    entry("TEACHER-FULL", "teacher", 100, 0.90, 8.0, 4.0),
    entry("TEACHER-UNIFORM-25", "uniform", 25, 0.80, 4.0, 2.0),
    entry("TEACHER-UNIFORM-5", "uniform", 5, 0.60, 2.0, 0.5),
    entry("STUDENT-25-FINAL", "final", 25, 0.85, 6.0, 1.0),
]


def test_table_1_puts_each_metric_beside_the_papers():
    lines = grid_report.format_table_1(RESULTS).splitlines()
    assert lines[0] == (
        "| MODEL | Hit@1 ours | Hit@1 paper | PERR ours | PERR paper | mAP ours | mAP paper "
        "| GAP ours | GAP paper |"
    )
    assert lines[1] == "|" + "---|" * 9
    assert lines[2] == (
        "| TEACHER-FULL | 0.890 | 0.862 | 0.880 | 0.736 | 0.870 | 0.402 | 0.900 | 0.809 |"
    )
    assert lines[5] == (
        "| STUDENT-25-FINAL | 0.840 | 0.857 | 0.830 | 0.727 | 0.820 | 0.385 | 0.850 | 0.802 |"
    )
    assert len(lines) == 2 + len(RESULTS)
    # A model the paper did not train has no paper figures.
    other = grid_report.format_table_1([entry("TEACHER-UNIFORM-20", "uniform", 20, 0.5, 1, 1)])
    assert other.splitlines()[2] == (
        "| TEACHER-UNIFORM-20 | 0.490 | – | 0.480 | – | 0.470 | – | 0.500 | – |"
    )


def test_table_2_gives_seconds_and_fractions_of_the_teachers_time():
    lines = grid_report.format_table_2(RESULTS).splitlines()
    assert lines[0] == "| MODEL | TEACHER-FULL | 5% | 25% |"
    assert lines[2] == "| paper, eval hours (fraction) | 13.00 (1.00) | – | 11.00 (0.85) |"
    # Rows for the methods that ran only: uniform and final, eval then warm inference.
    assert lines[3:] == [
        "| ours, TEACHER-UNIFORM-k, eval s (fraction) | 8.00 (1.00) | 2.00 (0.25) | 4.00 (0.50) |",
        "| ours, STUDENT-k-FINAL, eval s (fraction) | 8.00 (1.00) | – | 6.00 (0.75) |",
        "| ours, TEACHER-UNIFORM-k, warm inference s (fraction) | 4.00 (1.00) | 0.50 (0.12) "
        "| 2.00 (0.50) |",
        "| ours, STUDENT-k-FINAL, warm inference s (fraction) | 4.00 (1.00) | – | 1.00 (0.25) |",
    ]


def test_table_2_without_the_teacher_gives_seconds_only():
    lines = grid_report.format_table_2(RESULTS[1:]).splitlines()
    assert lines[3] == "| ours, TEACHER-UNIFORM-k, eval s (fraction) | – | 2.00 | 4.00 |"


def test_describe_data_names_the_data_and_the_scheme():
    synthetic = grid_report.describe_data(grid.resolve_config(preset="tiny"))
    assert synthetic.startswith(
        "Preset `tiny` on synthetic YouTube-8M-format data (24 train / 12 validate videos, "
        "4 classes, 12-24 frames, seed 1); LSTM 8 cells x 1 layers, batch 12, learning rate 0.01; "
        "joint distillation. Every model gets 2 passes"
    )
    real = grid.resolve_config(
        preset="tiny",
        distill_scheme="serial",
        train_data_pattern="a/train*",
        eval_data_pattern="a/validate*",
    )
    assert "on `a/train*` (train) and `a/validate*` (eval), 3862 classes;" in (
        grid_report.describe_data(real)
    )
    assert "; serial distillation." in grid_report.describe_data(real)


def test_markdown_holds_the_description_and_both_tables():
    config = grid.resolve_config(preset="tiny")
    markdown = grid_report.format_markdown(config, RESULTS)
    lines = markdown.splitlines()
    assert lines[0] == "# The paper's grid, reproduced"
    assert lines[2] == grid_report.describe_data(config)
    table_1 = lines.index("## Table 1: performance")
    table_2 = lines.index("## Table 2: evaluation time")
    assert lines[table_1 + 2] == grid_report.format_seeds(RESULTS)
    assert "\n".join(lines[table_1 + 4 : table_1 + 4 + 2 + len(RESULTS)]) == (
        grid_report.format_table_1(RESULTS)
    )
    assert "## Students against their baselines" in lines
    assert markdown.endswith(grid_report.format_table_2(RESULTS) + "\n")
    assert table_1 < table_2


def test_method_series_is_ascending_in_k():
    assert grid_report.method_series(RESULTS, "uniform", "gap") == ([5, 25], [0.60, 0.80])
    assert grid_report.method_series(RESULTS, "random", "gap") == ([], [])


def lines_by_label(axes):
    """{label: (x data, y data)} of the lines plotted on `axes`."""
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.lines
    }


def test_gap_figure_plots_ours_and_the_papers():
    ours, paper = grid_report.gap_figure(RESULTS).axes
    plotted = lines_by_label(ours)
    assert plotted["TEACHER-UNIFORM-k"] == ([5, 25], [0.60, 0.80])
    assert plotted["STUDENT-k-FINAL"] == ([25], [0.85])
    assert plotted["TEACHER-FULL"][1] == [0.90, 0.90]
    assert set(plotted) == {"TEACHER-UNIFORM-k", "STUDENT-k-FINAL", "TEACHER-FULL"}
    papers = lines_by_label(paper)
    assert papers["TEACHER-RANDOM-k"] == ([5, 10, 25, 50], [0.731, 0.765, 0.765, 0.775])
    assert papers["TEACHER-FULL"][1] == [0.809, 0.809]
    assert len(papers) == 5


def test_time_figure_plots_fractions_of_the_teachers_warm_inference():
    seconds, fractions = grid_report.time_figure(RESULTS).axes
    assert lines_by_label(seconds)["TEACHER-UNIFORM-k"] == ([5, 25], [2.0, 4.0])
    plotted = lines_by_label(fractions)
    assert plotted["TEACHER-UNIFORM-k"] == ([5, 25], [0.125, 0.5])
    assert plotted["STUDENT-k-FINAL"] == ([25], [0.25])
    assert plotted["paper (K80 eval hours)"][0] == [10, 25, 50]
    assert plotted["paper (K80 eval hours)"][1] == pytest.approx([9.11 / 13, 11 / 13, 12.5 / 13])


def test_write_reports_writes_the_markdown_and_two_pngs(tmp_path):
    config = grid.resolve_config(preset="tiny")
    markdown = grid_report.write_reports(str(tmp_path), config, RESULTS)
    assert markdown == grid_report.format_markdown(config, RESULTS)
    assert (tmp_path / grid_report.RESULTS_MARKDOWN_FILE).read_text() == markdown
    for name in (grid_report.GAP_PLOT_FILE, grid_report.TIME_PLOT_FILE):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE, name
    assert sorted(os.listdir(tmp_path)) == sorted(
        [grid_report.RESULTS_MARKDOWN_FILE, grid_report.GAP_PLOT_FILE, grid_report.TIME_PLOT_FILE]
    )


def seeded(name, method, k, gaps):
    """One entry per seed (1, 2, ...) with the given GAPs."""
    return [
        {**entry(name, method, k, gap, 1.0, 1.0), "seed": seed}
        for seed, gap in enumerate(gaps, start=1)
    ]


SEEDED = (
    seeded("TEACHER-FULL", "teacher", 100, [0.90, 0.92, 0.91])
    + seeded("TEACHER-UNIFORM-10", "uniform", 10, [0.70, 0.72, 0.71])
    + seeded("TEACHER-RANDOM-10", "random", 10, [0.80, 0.70, 0.75])
    + seeded("STUDENT-10-FINAL", "final", 10, [0.78, 0.80, 0.79])
)


def test_summary_gives_mean_std_and_count_per_model():
    summary = grid_report.summarize(SEEDED)
    assert list(summary) == [
        "TEACHER-FULL",
        "TEACHER-UNIFORM-10",
        "TEACHER-RANDOM-10",
        "STUDENT-10-FINAL",
    ]
    student = summary["STUDENT-10-FINAL"]
    assert student["n"] == 3 and student["seeds"] == [1, 2, 3]
    assert student["gap_mean"] == pytest.approx(0.79)
    assert student["gap_std"] == pytest.approx(0.01)  # the sample standard deviation
    assert grid_report.summarize(RESULTS)["TEACHER-FULL"]["gap_std"] == 0.0
    row = grid_report.format_table_1(SEEDED).splitlines()[5]
    assert row.startswith("| STUDENT-10-FINAL | 0.780 ± 0.010 | 0.852 |")


def test_a_claim_needs_a_difference_beyond_two_standard_errors():
    summary = grid_report.summarize(SEEDED)
    student = summary["STUDENT-10-FINAL"]
    uniform = grid_report.compare(student, summary["TEACHER-UNIFORM-10"])
    assert uniform["difference"] == pytest.approx(0.08)
    assert uniform["standard_error"] == pytest.approx((2 * 0.01**2 / 3) ** 0.5)
    assert uniform["verdict"] == "beats"
    # RANDOM-10's spread (std 0.05) hides a difference of 0.04.
    assert grid_report.compare(student, summary["TEACHER-RANDOM-10"])["verdict"] == (
        "no difference beyond 2 SE"
    )
    assert grid_report.compare(summary["TEACHER-UNIFORM-10"], student)["verdict"] == "loses to"
    one_seed = grid_report.summarize(RESULTS)
    assert grid_report.compare(one_seed["STUDENT-25-FINAL"], one_seed["TEACHER-UNIFORM-25"])[
        "verdict"
    ] == ("one seed: no claim")
    # (0.79 - 0.71) / (0.91 - 0.71) of the gap.
    assert grid_report.gap_closed(
        student, summary["TEACHER-UNIFORM-10"], summary["TEACHER-FULL"]
    ) == pytest.approx(0.4)
    lines = grid_report.format_comparisons(SEEDED).splitlines()
    assert lines[2] == (
        "| STUDENT-10-FINAL | TEACHER-UNIFORM-10 | +0.080 ± 0.016 (2 SE) | beats | 40% |"
    )
    assert lines[3].startswith("| STUDENT-10-FINAL | TEACHER-RANDOM-10 | +0.040 ± 0.059 (2 SE)")
    assert grid_report.format_seeds(SEEDED).startswith(
        "Mean ± standard deviation over 3 training seeds (1, 2, 3)"
    )


def swept_entry(seed, gap_every_stage, gap_early, frames_every_stage, frames_early):
    """A staged STUDENT-10-DEFAULT entry of one seed, swept at thresholds -1 and 0.9."""
    student = entry("STUDENT-10-DEFAULT", "default", 10, gap_every_stage, 1.0, 0.5)
    student["seed"] = seed
    student["exit_sweep"] = [
        {
            "threshold": -1.0,
            "gap": gap_every_stage,
            "mean_frames_read": frames_every_stage,
            "exit_stage_shares": [0.0, 0.0, 1.0],
        },
        {
            "threshold": 0.9,
            "gap": gap_early,
            "mean_frames_read": frames_early,
            "exit_stage_shares": [0.5, 0.25, 0.25],
        },
    ]
    return student


def test_exit_sweeps_are_averaged_over_seeds_in_frames_and_gap(tmp_path):
    results = [
        entry("TEACHER-FULL", "teacher", 100, 0.90, 8.0, 4.0),
        swept_entry(1, 0.86, 0.84, 20.0, 8.0),
        swept_entry(2, 0.88, 0.82, 20.0, 12.0),
    ]
    exits = grid_report.summarize_exits(results)
    assert list(exits) == ["STUDENT-10-DEFAULT"]
    every_stage, early = exits["STUDENT-10-DEFAULT"]["points"]
    assert every_stage["percent_of_frames"] == pytest.approx(10.0)
    assert early["gap_mean"] == pytest.approx(0.83) and early["n"] == 2
    assert early["of_every_stage"] == pytest.approx(0.5)  # 8/20 and 12/20
    assert early["percent_of_frames"] == pytest.approx(5.0)
    assert early["exit_stage_shares"] == pytest.approx([0.5, 0.25, 0.25])
    table = "\n".join(grid_report.format_exit_section(results))
    assert "| STUDENT-10-DEFAULT | 0.9 | 0.830 ± 0.014 | 10.0 | 5.0 | 50%, 25%, 25% |" in table
    assert grid_report.format_exit_section(results[:1]) == []
    figure = grid_report.render_png(grid_report.gap_figure(results))
    assert figure.startswith(PNG_SIGNATURE)
