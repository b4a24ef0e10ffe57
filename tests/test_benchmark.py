"""Tests of benchmark.py: a tiny run gives a complete, consistent report."""

import json

import numpy as np
import pytest

import benchmark
import benchmark_report
import utils


def test_tiny_benchmark_reports_every_model_and_memory(tmp_path):
    output_dir = str(tmp_path / "bench")
    report = benchmark.run_benchmark(
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
    table = benchmark_report.benchmark_markdown(report)
    assert "student-10" in table and "Peak RSS" in table


def test_timed_rate_repeats_passes_until_min_seconds():
    now = [0.0]
    passes = []

    def make_batches():
        passes.append(1)
        for _ in range(3):
            now[0] += 0.25  # each batch takes 0.25 s of the injected clock
            yield [0, 0]  # a batch of two videos

    rate = benchmark.timed_rate(make_batches, len, min_seconds=2.0, clock=lambda: now[0])
    # The first batch of a pass is not timed: 2 batches of 2 videos in 0.5 s a pass, so 4
    # passes reach 2 s, at 8 videos/s.
    assert len(passes) == 4
    assert rate == 8.0
    assert np.isnan(benchmark.timed_rate(lambda: iter([[0]]), len, min_seconds=1.0))


@pytest.mark.parametrize("bad", ["7", "0", "100", "ten"])
def test_bad_ks_are_refused(bad):
    with pytest.raises(utils.UserInputError, match="--ks"):
        benchmark.parse_ks([bad])


def test_too_few_videos_for_the_batch_is_refused(tmp_path):
    with pytest.raises(utils.UserInputError, match="--num_videos"):
        benchmark.run_benchmark(str(tmp_path), ["small"], ["10"], 10, 8, 1, 2, False)


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
    projection = benchmark.project_to_gpu(input_rates, gpu_rates, host_cores=16)
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
    without_cache = benchmark.project_to_gpu(input_rates, gpu_rates, host_cores=16)["fp32"]
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
    assert benchmark.load_gpu_rates(str(path)) == {
        "fp32": {"teacher": 3.0, "student-10": 4.0},
        "fp16": {"teacher": 5.0, "student-10": 6.0},
    }
    assert benchmark.load_gpu_rates(str(tmp_path / "missing.json")) is None


def test_input_part_reports_every_reader_per_core_and_the_projection(tmp_path):
    output_dir = str(tmp_path / "bench")
    report = benchmark.run_benchmark(
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
    for name in benchmark.INPUT_READS:
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
    projection = report["gpu_projection"]
    assert projection["host_cores"] == 16
    for precision in ("fp32", "fp16"):
        assert projection[precision]["student_10_over_teacher"] > 0
    assert "**Projected** (not measured)" in benchmark_report.benchmark_markdown(report)


def test_epoch_pauses_are_the_gaps_between_epochs_beyond_a_normal_step():
    def step(phase, epoch, start, seconds=0.5):
        return {"phase": phase, "epoch": epoch, "start": start, "end": start + seconds, "videos": 4}

    steps = [
        step("train", 0, 0.0, seconds=5.0),  # the first step traces
        step("train", 0, 6.0),
        step("train", 0, 7.0),
        step("train", 1, 10.0),  # 3 s after the last step of epoch 0: 2 s of pause
        step("train", 1, 11.0),
        step("finetune", 0, 20.0),
        step("finetune", 0, 20.2, seconds=0.1),
        step("finetune", 0, 20.4, seconds=0.1),
        step("finetune", 1, 20.6, seconds=0.1),  # no pause
    ]
    assert benchmark.epoch_pauses_s(steps) == [
        {"phase": "train", "epoch": 0, "pause_s": 2.0},
        {"phase": "finetune", "epoch": 0, "pause_s": pytest.approx(0.0)},
    ]
    assert benchmark.median_step_s(steps, "train") == 0.5
    assert benchmark.median_step_s(steps, "finetune") == pytest.approx(0.1)


def test_training_part_times_teacher_joint_and_finetune_steps(tmp_path):
    pattern = benchmark.write_benchmark_data(str(tmp_path / "data"), 12, num_classes=10)
    sizes = {"lstm_cells": 4, "lstm_layers": 1, "num_classes": 10, "max_frames": 40}
    training = benchmark.measure_training(
        pattern, str(tmp_path / "training"), sizes, batch_size=5, epochs=2, num_readers=2
    )
    # 12 videos in batches of 5: 3 steps an epoch, the last one partial.
    assert training["steps"] == {"teacher": 6, "joint": 6, "finetune": 6}
    for name in ("teacher", "joint", "finetune"):
        assert training[f"{name}_step_s"] > 0
    assert training["joint_over_teacher"] == training["joint_step_s"] / training["teacher_step_s"]
    assert training["finetune_over_teacher"] == (
        training["finetune_step_s"] / training["teacher_step_s"]
    )
    assert [(pause["phase"], pause["epoch"]) for pause in training["epoch_pauses"]] == [
        ("train", 0),
        ("distill", 0),
        ("finetune", 0),
    ]
    assert training["epoch_pause_s"] == max(
        [0.0] + [pause["pause_s"] for pause in training["epoch_pauses"]]
    )
