"""Tests of benchmark_litert.py and its table: the speed-ups are of the same run's latencies, a
quantization that did not convert says why, and a benchmark.json without LiteRT still renders."""

import pytest
from test_results_report import hand_made_benchmark

import utils
from experiments import benchmark_litert, benchmark_report


def row(model, quantization, median_ms, **values):
    return {
        "preset": "paper",
        "model": model,
        "trained": False,
        "quantization": quantization,
        "frames": 300 if model == "teacher" else 30,
        "bytes": 185e6,
        "max_score_difference": 2e-7,
        "peak_rss_mib": 250.0,
        "latency_ms": {"median": median_ms, "p95": median_ms * 1.1},
        **values,
    }


def hand_made_litert():
    return {
        "rows": [
            row("teacher", "float32", 90.0),
            row("student-10", "int8_weights", 6.0, gap=0.81, saved_model_gap=0.8123),
            {
                "preset": "paper",
                "model": "student-10",
                "quantization": "int8",
                "frames": None,
                "error": "X cannot be converted to LiteRT (int8): tf.Op has no kernel.",
            },
        ],
        "baseline_rss_mib": 35.0,
        "threads": 1,
        "latency_calls": 30,
    }


def test_the_speed_ups_are_the_teachers_float32_latency_over_each_students():
    rows = hand_made_litert()["rows"]
    assert benchmark_litert.speedups(rows) == {"paper": {"int8_weights": pytest.approx(15.0)}}


def test_the_table_shows_every_variant_and_an_old_report_renders_without_it():
    report = hand_made_benchmark()
    litert = hand_made_litert()
    litert["student_over_teacher_float32"] = benchmark_litert.speedups(litert["rows"])
    text = benchmark_report.litert_markdown(dict(report, litert=litert))
    assert text.startswith("`make bench`, commit ")
    assert (
        "| paper | teacher | float32 | 300 | 185.0 | untrained | 2.0e-07 | 90.00 / 99.00 | 250 |"
        in text
    )
    assert "| paper | student-10 | int8_weights | 30 | 185.0 | 0.8100 (0.8123) |" in text
    assert "| paper | student-10 | int8 | does not convert: X cannot be converted" in text
    assert (
        "paper: student-10 per video against the teacher's float32 model: int8_weights 15.0x."
        in text
    )
    assert "LiteRT" not in benchmark_report.benchmark_markdown(dict(report, litert=litert))
    assert benchmark_report.litert_markdown(report) == ""


def test_the_evaluation_shards_are_held_out(tmp_path):
    for index in range(4):
        (tmp_path / f"bench-{index}.tfrecord").write_bytes(b"")
    train, held_out = benchmark_litert.split_shards(str(tmp_path / "bench-*.tfrecord"))
    assert [path[-16:] for path in train.split(",")] == ["bench-0.tfrecord", "bench-1.tfrecord"]
    assert [path[-16:] for path in held_out.split(",")] == ["bench-2.tfrecord", "bench-3.tfrecord"]
    with pytest.raises(utils.UserInputError, match="needs more than 2 shards"):
        benchmark_litert.split_shards(str(tmp_path / "bench-[01].tfrecord"))
