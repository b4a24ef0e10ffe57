"""Tests of benchmark.py: a tiny run gives a complete, consistent report."""

import json

import numpy as np
import pytest

import utils
from experiments import benchmark_adaptive, benchmark_report, benchmark_suite


def test_tiny_benchmark_reports_every_model_and_memory(tmp_path):
    output_dir = str(tmp_path / "bench")
    report = benchmark_suite.run_benchmark(
        output_dir,
        presets=["small"],
        ks=["10"],
        num_videos=32,
        batch_size=8,
        repeats=1,
        num_readers=2,
        measure_memory_too=True,
        min_seconds=0.0,
        reader_pass_videos=0,
        measure_input_too=False,
        quick=True,
        families=["nextvlad", "hierarchical"],
        adaptive_presets=["small"],
        adaptive_batch_sizes=["8", "16"],
    )
    with open(f"{output_dir}/benchmark.json") as handle:
        assert json.load(handle) == json.loads(json.dumps(report))
    results = report["presets"]["small"]
    assert [entry["name"] for entry in results] == ["teacher", "student-10"]
    assert [entry["frame_stride"] for entry in results] == [1, 10]
    teacher_frames = results[0]["frames_per_video"]
    assert 120 <= teacher_frames <= 300
    # Each student reads ceil(frames / stride) frames: about 1/stride of the teacher's.
    for entry in results[1:]:
        assert entry["frames_per_video"] == pytest.approx(
            teacher_frames / entry["frame_stride"], abs=1.0
        )
    # Each figure is the median of its samples (one repeat here), each speed-up the ratio to the
    # teacher's figure measured in the same repeat.
    teacher = results[0]
    for entry in results:
        for measure in ("pipeline", "model", "end_to_end"):
            rate = entry[f"{measure}_videos_per_second"]
            assert [rate] == entry[f"{measure}_samples"]
            speedup = rate / teacher[f"{measure}_videos_per_second"]
            assert entry[f"{measure}_speedup"] == pytest.approx(speedup)
    assert teacher["end_to_end_speedup"] == 1.0
    assert [report["plain_read_videos_per_second"]] == report["plain_read_samples"]["small"]
    for entry in results:
        assert entry["pipeline_of_plain_read"] == pytest.approx(
            entry["pipeline_videos_per_second"] / report["plain_read_samples"]["small"][0]
        )
    memory = report["memory"]
    assert set(memory) == {"small teacher", "small student-10"}
    for row in memory.values():
        assert row["videos_1x"] == 32 and row["videos_4x"] == 128
        assert row["growth"] == row["peak_rss_mib_4x"] / row["peak_rss_mib_1x"]
    # The NeXtVLAD family beside it: its teacher and student-10, with their costs.
    family = report["families"]["nextvlad"]["small"]
    assert [entry["name"] for entry in family] == ["teacher", "student-10"]
    assert family[0]["parameters"] == family[1]["parameters"]
    for entries in (results, family):
        frames_read = entries[1]["frames_per_video"] / entries[0]["frames_per_video"]
        assert entries[1]["gflops_frames"] == pytest.approx(
            entries[0]["gflops_frames"] * frames_read, rel=0.15
        )
        assert entries[1]["gflops_fixed"] == entries[0]["gflops_fixed"]
    # The adaptive student stops 40 % of the videos after a quarter of its frames, 48 % after
    # half: it reads under two thirds of what the same student reads to the end.
    adaptive = report["adaptive"]["small"]
    assert adaptive["frames_read_adaptive"] < 0.67 * adaptive["frames_read_one_pass"]
    assert adaptive["frames_read_one_pass"] == pytest.approx(results[1]["frames_per_video"])
    assert list(adaptive["batch_sizes"]) == ["8", "16"]  # each batch size asked, in turn
    for rates in adaptive["batch_sizes"].values():
        assert rates["speedup"] == pytest.approx(
            rates["adaptive_videos_per_second"] / rates["one_pass_videos_per_second"]
        )
        assert rates["speedup_cache"] == pytest.approx(
            rates["adaptive_videos_per_second_cache"] / rates["one_pass_videos_per_second_cache"]
        )
    # Its operations: the same student's in one pass (the suite's count), then the fixed part
    # once per stage read, and the bound with the fixed part once per video.
    nextvlad_student = family[1]
    assert adaptive["gflops_one_pass"] == pytest.approx(nextvlad_student["gflops_per_video"])
    assert sum(adaptive["measured_exit_shares"]) == pytest.approx(1.0)
    assert adaptive["stages_read"] == pytest.approx(
        sum((stage + 1) * share for stage, share in enumerate(adaptive["measured_exit_shares"]))
    )
    fixed_once_more = adaptive["gflops_fixed"] * (adaptive["stages_read"] - 1)
    assert adaptive["gflops_adaptive"] == pytest.approx(
        adaptive["gflops_free_exit_decision"] + fixed_once_more
    )
    assert adaptive["gflops_free_exit_decision"] < adaptive["gflops_one_pass"]
    table = benchmark_report.benchmark_markdown(report)
    adaptive_table = benchmark_report.adaptive_markdown(report)
    assert "| small | 16 | 2" in adaptive_table and "The adaptive NeXtVLAD" in adaptive_table
    assert "The adaptive NeXtVLAD" not in table  # its own block, on docs/adaptive.md
    assert "student-10" in table and "Peak RSS" in table
    assert "| small | nextvlad | student-10 |" in table and "| small | hierarchical |" in table
    # benchmark.py --quick's table says what it is.
    heading = table.splitlines()[0]
    assert heading.startswith("`make bench-quick`, a quick run") and "one timed repeat" in heading
    full = benchmark_report.benchmark_markdown(dict(report, quick=False, repeats=3))
    assert full.startswith("`make bench`, ") and "median of 3 repeats" in full.splitlines()[0]


@pytest.mark.parametrize("bad", ["7", "0", "100", "ten"])
def test_bad_ks_are_refused(bad):
    with pytest.raises(utils.UserInputError, match="--ks"):
        benchmark_suite.parse_ks([bad])


def test_too_few_videos_for_the_batch_is_refused(tmp_path):
    with pytest.raises(utils.UserInputError, match="--num_videos"):
        benchmark_suite.run_benchmark(str(tmp_path), ["small"], ["10"], 10, 8, 1, 2, False)
    assert benchmark_suite.parse_batch_sizes(["64", "256"], 640) == [64, 256]
    for bad in ("0", "321", "many"):
        with pytest.raises(utils.UserInputError, match=f"--adaptive_batch_sizes: '{bad}'"):
            benchmark_suite.parse_batch_sizes([bad], 640)


def test_exit_thresholds_for_given_shares_of_videos():
    confidence = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.9, 0.8, 0.3]])
    # 40 % stop after stage 0 (the two most confident), then 40 % of all after stage 1: of the
    # three still reading (0.9, 0.8, 0.3 at stage 1), the two most confident.
    thresholds = benchmark_adaptive.share_thresholds(confidence, (0.4, 0.4, 0.2))
    assert thresholds == [0.8, 0.8]
    assert benchmark_adaptive.share_thresholds(confidence, (0.0, 0.0, 1.0)) == [np.inf, np.inf]
    assert benchmark_adaptive.stage_shares(confidence, thresholds) == [0.4, 0.4, 0.2]
    assert benchmark_adaptive.stage_shares(confidence, [np.inf, np.inf]) == [0.0, 0.0, 1.0]
