"""Tests of benchmark_input.py: the timer, the readers' rates per core through a tiny run, and
the GPU projection."""

import json

import numpy as np
import pytest

from experiments import benchmark_input, benchmark_report, benchmark_suite


def test_timed_rate_repeats_passes_until_min_seconds():
    now = [0.0]
    passes = []

    def make_batches():
        passes.append(1)
        for _ in range(3):
            now[0] += 0.25  # each batch takes 0.25 s of the injected clock
            yield [0, 0]  # a batch of two videos

    rate = benchmark_input.timed_rate(make_batches, len, min_seconds=2.0, clock=lambda: now[0])
    # The first batch of a pass is not timed: 2 batches of 2 videos in 0.5 s a pass, so 4
    # passes reach 2 s, at 8 videos/s.
    assert len(passes) == 4
    assert rate == 8.0
    assert np.isnan(benchmark_input.timed_rate(lambda: iter([[0]]), len, min_seconds=1.0))


def test_gpu_projection_takes_the_lower_of_host_and_gpu_and_the_best_student_source():
    input_rates = {
        "cores": 2,
        "teacher": {"videos_per_s": 2000.0, "per_core": 1000.0, "bytes_per_video": 250e3},
        "student_10_full_records": {"videos_per_s": 4000.0, "per_core": 2000.0},
        "student_10_cache": {"videos_per_s": 10000.0, "per_core": 5000.0},
    }
    gpu_rates = {
        "fp32": {"teacher": 20000.0, "student-10": 160000.0},
        "fp16": {"teacher": 10000.0, "student-10": 50000.0},
    }
    projection = benchmark_input.project_to_gpu(input_rates, gpu_rates, host_cores=16)
    assert projection["host_videos_per_s"] == {
        "teacher": 16000.0,
        "student_10_full_records": 32000.0,
        "student_10_cache": 80000.0,
    }
    fp32 = projection["fp32"]
    # The host is the bottleneck of both: 16 cores x the rate per core.
    assert fp32["teacher_videos_per_s"] == 16000.0
    assert fp32["student_10_full_records_videos_per_s"] == 32000.0
    assert fp32["student_10_cache_videos_per_s"] == 80000.0
    assert fp32["student_10_videos_per_s"] == 80000.0
    assert fp32["student_10_over_teacher"] == 5.0
    fp16 = projection["fp16"]
    # The GPU is: its rates of the models alone.
    assert fp16["teacher_videos_per_s"] == 10000.0
    assert fp16["student_10_cache_videos_per_s"] == 50000.0
    assert fp16["student_10_full_records_videos_per_s"] == 32000.0
    assert fp16["student_10_over_teacher"] == 5.0
    # Without a cache the student's projection is its reader on the full records.
    del input_rates["student_10_cache"]
    without_cache = benchmark_input.project_to_gpu(input_rates, gpu_rates, host_cores=16)["fp32"]
    assert without_cache["student_10_videos_per_s"] == 32000.0
    assert "student_10_cache_videos_per_s" not in without_cache


def test_gpu_rates_are_the_batch_1024_entries_and_a_missing_file_gives_none(tmp_path):
    measurements = {
        "inference": [
            {"precision": "fp32", "batch": 256, "teacher": 1.0, "student-10": 2.0},
            {"precision": "fp32", "batch": 1024, "teacher": 3.0, "student-10": 4.0},
            {"precision": "fp16", "batch": 1024, "teacher": 5.0, "student-10": 6.0},
        ]
    }
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(measurements))
    assert benchmark_input.load_gpu_rates(str(path)) == {
        "fp32": {"teacher": 3.0, "student-10": 4.0},
        "fp16": {"teacher": 5.0, "student-10": 6.0},
    }
    assert benchmark_input.load_gpu_rates(str(tmp_path / "missing.json")) is None


def test_input_part_reports_every_reader_per_core_and_the_projection(tmp_path):
    output_dir = str(tmp_path / "bench")
    report = benchmark_suite.run_benchmark(
        output_dir,
        presets=[],
        ks=["10"],
        num_videos=16,
        batch_size=8,
        repeats=1,
        num_readers=2,
        measure_memory_too=False,
        min_seconds=0.0,
        reader_pass_videos=0,
        host_cores=16,
    )
    with open(f"{output_dir}/benchmark.json") as handle:
        assert json.load(handle) == json.loads(json.dumps(report))
    assert set(report["commit"]) == {"sha", "dirty"}
    assert set(report["machine"]) == {"cpu_model", "cores", "cpu_count", "tensorflow"}
    reads = report["input"]
    cores = reads["cores"]
    assert cores == report["machine"]["cores"] >= 1
    for name in benchmark_input.INPUT_READS:
        row = reads[name]
        assert row["per_core"] == pytest.approx(row["videos_per_s"] / cores)
        assert [row["videos_per_s"]] == row["samples"]
    # The cache holds 1 frame in 10: about a tenth of the bytes of the full records.
    full_bytes = reads["teacher"]["bytes_per_video"]
    assert reads["plain_read"]["bytes_per_video"] == full_bytes
    assert 0.05 < reads["student_10_cache"]["bytes_per_video"] / full_bytes < 0.2
    assert reads["student_10_cache_over_teacher_per_core"] == pytest.approx(
        reads["student_10_cache"]["per_core"] / reads["teacher"]["per_core"]
    )
    assert reads["training_ordered_over_unordered"] == pytest.approx(
        reads["training_ordered"]["videos_per_s"] / reads["training_unordered"]["videos_per_s"]
    )
    projection = report["gpu_projection"]
    assert projection["host_cores"] == 16
    for precision in ("fp32", "fp16"):
        assert projection[precision]["student_10_over_teacher"] > 0
    assert "**Projected** (not measured)" in benchmark_report.benchmark_markdown(report)
