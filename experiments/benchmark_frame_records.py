"""Does leaving the frames in the records pay? The adaptive NeXtVLAD student-10 read two ways,
beside the same student in one pass, end to end (inference.py's loop), in turn within each
repeat, from the full records and from the student's frame cache:

- `adaptive_parsed`: the reader cuts every selected frame in the input pipeline; each stage
  dequantizes its frames for the videos still reading (what eval and inference do);
- `adaptive_in_records`: the reader only locates the frames (`leave_frames_in_records`); each
  stage cuts and decodes its frames for the videos still reading, in the model's graph.

    .venv/bin/python -m experiments.benchmark_frame_records --preset=small --batch_size=256

Reads the 640 videos `make bench` writes (benchmark_out/data-640videos); exit thresholds as
benchmark_adaptive sets them (40 / 48 / 12 % of the videos stop after each stage).
"""

import os
import statistics

import numpy as np
from absl import app, flags

import readers
from experiments import benchmark_adaptive, benchmark_input, benchmark_models
from runs import checkpoints
from serving import early_exit, predictor

flags.DEFINE_string("pattern", "benchmark_out/data-640videos/*.tfrecord", "Records read.")
flags.DEFINE_string("work_dir", "/tmp/benchmark_frame_records", "Models and cache written here.")
flags.DEFINE_string("preset", "small", "benchmark_models preset.")
flags.DEFINE_integer("batch_size", 256, "Videos per batch.")
flags.DEFINE_integer("repeats", 5, "Timed passes of each run per source (the median is given).")


def main(unused_argv):
    values = flags.FLAGS
    _, student = benchmark_models.benchmark_models(values.preset, [10], "nextvlad")[-1]
    staged = student.replace(exit_stages=3)
    one_pass_dir = benchmark_models.save_untrained(
        student, os.path.join(values.work_dir, "one-pass")
    )
    staged_dir = benchmark_models.save_untrained(staged, os.path.join(values.work_dir, "staged"))
    model, _, _ = checkpoints.restore_model(staged_dir)
    parsing = readers.reader_for(staged, "id")
    dataset, _ = parsing.make_dataset(values.pattern, 64, num_readers=4)
    confidence = np.concatenate(
        [
            early_exit.stage_confidences(
                model(batch["video_matrix"], batch["num_frames"], in_stages=True)["stage_logits"]
            )[0]
            for batch in dataset
        ],
        axis=1,
    )
    exits = early_exit.ExitPredictor(
        model, benchmark_adaptive.share_thresholds(confidence, benchmark_adaptive.EXIT_SHARES)
    )
    one_pass_reader, one_pass = predictor.checkpoint_predictor(one_pass_dir, 20, "id")
    runs = {
        "one_pass": (one_pass_reader, one_pass),
        "adaptive_parsed": (parsing, predictor.exit_top_classes(exits, 20)),
        "adaptive_in_records": (
            readers.reader_for(staged, "id", leave_frames_in_records=True),
            predictor.exit_top_classes(exits, 20),
        ),
    }
    cache = benchmark_input.write_student_cache(
        values.pattern, os.path.join(values.work_dir, "cache"), student
    )
    for reader, predict in runs.values():  # traces every batch shape before timing
        dataset, _ = reader.make_dataset(values.pattern, values.batch_size, num_readers=4)
        for batch in dataset:
            predict(*early_exit.predict_inputs(batch))
    for source, pattern in (("full records", values.pattern), ("frame cache", cache)):
        samples = {name: [] for name in runs}
        for _ in range(values.repeats):
            for name, (reader, predict) in runs.items():
                samples[name].append(
                    benchmark_input.end_to_end_rate(
                        reader, predict, pattern, values.batch_size, 4, 2.0
                    )
                )
        rates = {name: statistics.median(rate) for name, rate in samples.items()}
        print(
            f"{values.preset}, batch {values.batch_size}, {source}: "
            + ", ".join(f"{name} {rate:,.0f} videos/s" for name, rate in rates.items())
            + f"; in records / parsed {rates['adaptive_in_records'] / rates['adaptive_parsed']:.3f}"
            + f", parsed / one pass {rates['adaptive_parsed'] / rates['one_pass']:.3f}"
        )


if __name__ == "__main__":
    app.run(main)
