"""The benchmark's adaptive student: end-to-end videos/s of a NeXtVLAD student-10 that stops
videos early (early_exit.py), beside the same student reading every frame, in one run.

    adaptive = benchmark_adaptive.measure_adaptive(
        pattern, work_dir, ["paper"], [64, 256], 4, 2.0, 3
    )

Per preset, the NeXtVLAD student-10 of benchmark_models (the published sizes at `paper`) is
built with 3 exit stages. Its weights are random, so its confidences say nothing about the
videos: the exit thresholds are set on the benchmark's own videos so that the shares of videos
stopping after each stage are `EXIT_SHARES`, the shares the trained student showed on the
real-label proxy at `--exit_threshold=0.9` (docs/adaptive.md). Speed depends on those shares,
not on the weights. Both models run inference.py's loop (benchmark_input.end_to_end_rate), in
turn within each repeat, on the full records and on the student's frame cache (its frames
only, as prepare_frames.py writes it), at each batch size asked (benchmark.py: its
--batch_size, 64, and inference.py's default, 256); the report gives the median rates, their
ratios, the frames each read per video and the operations each ran (`operation_counts`), with
the bound an exit decision that cost nothing would give.
"""

import os
import statistics

import numpy as np
from absl import logging

import readers
from experiments import benchmark_input, benchmark_models
from runs import checkpoints
from serving import early_exit, predictor

EXIT_STAGES = 3
# Of the videos, the shares that stop after each stage: the proxy's at --exit_threshold=0.9.
EXIT_SHARES = (0.40, 0.48, 0.12)
FAMILY = "nextvlad"


def share_thresholds(stage_confidence, shares):
    """Thresholds per stage but the last under which `shares` of the videos stop after each
    stage: `stage_confidence [stages, videos]` -> `[stages - 1]` floats."""
    reading = np.ones(stage_confidence.shape[1], bool)
    thresholds = []
    for stage, share in enumerate(shares[:-1]):
        stopping = int(round(share * stage_confidence.shape[1]))
        confidence = np.sort(stage_confidence[stage][reading])[::-1]
        threshold = float(confidence[stopping - 1]) if stopping else np.inf
        thresholds.append(threshold)
        reading &= stage_confidence[stage] < threshold
    return thresholds


def stage_shares(stage_confidence, thresholds):
    """The shares of the videos that stop after each stage under `thresholds` (one per stage but
    the last): `stage_confidence [stages, videos]` -> `[stages]` floats."""
    reading = np.ones(stage_confidence.shape[1], bool)
    stops = []
    for stage, threshold in enumerate(thresholds):
        stopping = reading & (stage_confidence[stage] >= threshold)
        stops.append(int(stopping.sum()))
        reading &= ~stopping
    stops.append(int(reading.sum()))
    return [count / stage_confidence.shape[1] for count in stops]


def operation_counts(model, frames_read_one_pass, frames_read_adaptive, shares):
    """GFLOPs per video (models.EncoderModel.flops: the frames' part, linear in the frames
    read, and the fixed part: hidden layer, gating, classifier) of the student in one pass, of
    the adaptive student as it runs (the fixed part once per stage read, to decide whether to
    stop), and of a bound: the adaptive student if deciding cost nothing (the fixed part once
    per video)."""
    per_frame, fixed = (flops / 1e9 for flops in model.flops(1))
    stages_read = sum((stage + 1) * share for stage, share in enumerate(shares))
    frames_adaptive = per_frame * frames_read_adaptive
    return {
        "gflops_frame": per_frame,
        "gflops_fixed": fixed,
        "stages_read": stages_read,
        "gflops_one_pass": per_frame * frames_read_one_pass + fixed,
        "gflops_adaptive": frames_adaptive + fixed * stages_read,
        "gflops_free_exit_decision": frames_adaptive + fixed,
    }


def counted_predict(predict, frames_read):
    """`predict`, the frames each video of a batch read (all it was given) appended to
    `frames_read`."""

    def predict_counted(video_matrix, num_frames):
        frames_read.append(np.asarray(num_frames))
        return predict(video_matrix, num_frames)

    return predict_counted


def measure_adaptive(
    pattern,
    work_dir,
    presets,
    batch_sizes,
    num_readers,
    min_seconds,
    repeats,
    shares=EXIT_SHARES,
):
    """{preset: {frames_read_one_pass, frames_read_adaptive, exit_shares, measured_exit_shares
    (those the thresholds gave on these videos), the `operation_counts`, thresholds,
    `batch_sizes`: {str(batch size): {one_pass_videos_per_second, adaptive_videos_per_second,
    speedup, the same three read from the student's frame cache (`..._cache`,
    `speedup_cache`), samples}}}}: the rates at each of `batch_sizes` (the stages' own steps
    cost per batch, so larger batches gain more)."""
    report = {}
    for preset in presets:
        _, student = benchmark_models.benchmark_models(preset, [10], FAMILY)[-1]
        staged = student.replace(exit_stages=EXIT_STAGES)
        one_pass_dir = benchmark_models.save_untrained(
            student, os.path.join(work_dir, preset, "one-pass")
        )
        staged_dir = benchmark_models.save_untrained(
            staged, os.path.join(work_dir, preset, "adaptive")
        )
        reader = readers.reader_for(staged, "id")
        model, _, _ = checkpoints.restore_model(staged_dir)
        dataset, _ = reader.make_dataset(pattern, batch_sizes[0], num_readers=num_readers)
        confidences = [
            early_exit.stage_confidences(
                model(batch["video_matrix"], batch["num_frames"], in_stages=True)["stage_logits"]
            )[0]
            for batch in dataset
        ]
        stage_confidence = np.concatenate(confidences, axis=1)
        thresholds = share_thresholds(stage_confidence, shares)
        adaptive_frames, one_pass_frames = [], []
        _, one_pass = predictor.checkpoint_predictor(one_pass_dir, 20, "id")
        runs = {
            "one_pass": counted_predict(one_pass, one_pass_frames),
            "adaptive": predictor.exit_top_classes(
                early_exit.ExitPredictor(model, thresholds), 20, adaptive_frames
            ),
        }
        # Each reads the full records, then the student's frame cache (its frames only).
        cache_pattern = benchmark_input.write_student_cache(
            pattern, os.path.join(work_dir, "frame-cache"), student
        )
        sources = {"": pattern, **({"_cache": cache_pattern} if cache_pattern else {})}
        by_batch_size = {}
        for batch_size in batch_sizes:
            by_batch_size[str(batch_size)] = batch_rates(
                reader, runs, sources, batch_size, num_readers, min_seconds, repeats
            )
            logging.info("%s adaptive, batch %d: %s", preset, batch_size, by_batch_size)
        frames_read = {
            "frames_read_one_pass": float(np.mean(np.concatenate(one_pass_frames))),
            "frames_read_adaptive": float(np.mean(np.concatenate(adaptive_frames))),
        }
        measured_shares = stage_shares(stage_confidence, thresholds)
        report[preset] = {
            **frames_read,
            "exit_shares": list(shares),
            "measured_exit_shares": measured_shares,
            **operation_counts(
                model,
                frames_read["frames_read_one_pass"],
                frames_read["frames_read_adaptive"],
                measured_shares,
            ),
            "thresholds": thresholds,
            "batch_sizes": by_batch_size,
        }
    return report


def batch_rates(reader, runs, sources, batch_size, num_readers, min_seconds, repeats):
    """The end-to-end rates of `runs` (name: predict) at `batch_size`, each of `sources`
    (suffix: pattern) in turn within each repeat: {one_pass_videos_per_second,
    adaptive_videos_per_second, speedup, the same from the frame cache, samples}."""
    dataset, _ = reader.make_dataset(sources[""], batch_size, num_readers=num_readers)
    for predict in runs.values():  # traces every batch shape before timing
        for batch in dataset:
            predict(batch["video_matrix"], batch["num_frames"])
    samples = {name + source: [] for source in sources for name in runs}
    for _ in range(repeats):
        for source, source_pattern in sources.items():
            for name, predict in runs.items():
                samples[name + source].append(
                    benchmark_input.end_to_end_rate(
                        reader, predict, source_pattern, batch_size, num_readers, min_seconds
                    )
                )
    rates = {name: statistics.median(values) for name, values in samples.items()}
    cache_rates = {}
    if "_cache" in sources:
        cache_rates = {
            "one_pass_videos_per_second_cache": rates["one_pass_cache"],
            "adaptive_videos_per_second_cache": rates["adaptive_cache"],
            "speedup_cache": rates["adaptive_cache"] / rates["one_pass_cache"],
        }
    return {
        "one_pass_videos_per_second": rates["one_pass"],
        "adaptive_videos_per_second": rates["adaptive"],
        "speedup": rates["adaptive"] / rates["one_pass"],
        **cache_rates,
        "samples": samples,
    }
