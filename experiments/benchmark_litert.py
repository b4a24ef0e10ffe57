"""The benchmark's device models: the teacher and student-10 exported to LiteRT with each
quantization, measured side by side on one CPU thread.

    litert = benchmark_litert.measure_litert(pattern, work_dir, ["small", "paper"])

Per preset (benchmark_models.PRESETS) and per model (the teacher on every frame, block 20, and
student-10, block 5), each quantization of litert_export.QUANTIZATIONS that converts gives:

- `bytes`: the .tflite file's size;
- `max_score_difference`: the largest difference of a class score from the TensorFlow model's,
  over the evaluation videos (`fidelity_videos` of them at most);
- `gap`: GAP (top 20) on the evaluation videos, beside the SavedModel's (`saved_model_gap`), for
  a trained preset only: the small preset's models are trained for `train_epochs` on the
  benchmark's synthetic shards but the last two (the teacher, then the student distilled from it
  by the serial recipe) and evaluated on those two; the paper-size models keep random weights,
  whose GAP says nothing, so they get the score difference only;
- `latency_ms` (`median`, `p95`): one video per call, one thread (XNNPACK), `latency_calls`
  calls, the variants of a preset called in turn within each round so that the machine's load
  falls on all of them alike;
- `peak_rss_mib`: the peak RSS of a child process that imports only litert_runtime (numpy and
  LiteRT), loads the model and runs it (`baseline_rss_mib`: the same child without a model).

A full int8 model is calibrated on `representative_videos` training videos. A quantization that
does not convert is recorded with its error (`error`) instead of figures.
"""

import os
import statistics
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

import eval_util
import readers
import utils
from experiments import benchmark_models
from pipeline import record_batches
from runs import checkpoints, config, recipes
from serving import evaluator, litert_export, litert_runtime, saved_model
from training import tasks, trainer

STUDENT_K = 10
EVAL_SHARDS = 2  # the benchmark's last shards, held out for GAP
TRAIN_BATCH_SIZE = 32
# Runs in a child process: imports only litert_runtime (numpy and LiteRT, no TensorFlow), loads
# a .tflite (or nothing), runs it `calls` times on zeros, prints the peak RSS (VmHWM) in kB.
PEAK_RSS_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[3])
from serving import litert_runtime

path, calls, weight_cache = sys.argv[1], int(sys.argv[2]), sys.argv[4] == "cache"
if path:
    model = litert_runtime.LiteRTModel(path, num_threads=1, weight_cache=weight_cache)
    matrix = np.zeros(model.matrix_shape, model.matrix_type)
    for _ in range(calls):
        model.predict_video(matrix, np.int32([1]))
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def split_shards(pattern):
    """(training pattern, evaluation pattern): the benchmark's shards but the last
    EVAL_SHARDS, and those."""
    files = sorted(tf.io.gfile.glob(pattern))
    if len(files) <= EVAL_SHARDS:
        raise utils.UserInputError(f"{pattern} needs more than {EVAL_SHARDS} shards.")
    return ",".join(files[:-EVAL_SHARDS]), ",".join(files[-EVAL_SHARDS:])


def serial_student(student_config):
    """`student_config` distilled by the serial recipe (the default of train.py)."""
    values = recipes.recipe_flag_values(
        "serial",
        student_config.frame_stride,
        student_config.frame_sampling,
        student_config.frames_per_video,
        student_config.max_frames,
    )
    return student_config.replace(distill_recipe="serial", **values)


def train_models(entries, train_pattern, work_dir, epochs, num_readers):
    """{name: train_dir}: the teacher trained on `train_pattern`, then each student distilled
    from it (serial recipe) and fine-tuned; runs already complete are reused."""
    train_dirs = {}
    options = config.TrainOptions(
        train_data_pattern=train_pattern,
        batch_size=TRAIN_BATCH_SIZE,
        num_epochs=epochs,
        num_readers=num_readers,
        log_every_n_steps=1000,
        seed=1,
    )
    teacher_dir = None
    for name, run_config in entries:
        train_dir = os.path.join(work_dir, name)
        train_dirs[name] = train_dir
        if tf.train.latest_checkpoint(train_dir):
            teacher_dir = teacher_dir or train_dir
            continue
        if run_config.is_student:
            distill = config.DistillOptions(
                joint_epochs=epochs, finetune_epochs=1, teacher_train_dir=teacher_dir
            )
            task = tasks.make_task(serial_student(run_config), distill)
        else:
            task = tasks.make_task(run_config)
            teacher_dir = train_dir
        trainer.train(task, options.replace(train_dir=train_dir))
    return train_dirs


def saved_model_gap(export_dir, pattern, num_classes, batch_size=64):
    """GAP (top 20) of a SavedModel (saved_model.py) through its `predict` signature, which
    parses the records itself and returns the labels beside the predictions."""
    predict = tf.saved_model.load(export_dir).signatures["predict"]
    records, _ = record_batches.make_record_batches(pattern, batch_size, num_readers=1)
    metrics = eval_util.EvaluationMetrics(num_classes, 20, None)
    for serialized in records:
        outputs = predict(serialized_examples=serialized)
        metrics.accumulate(outputs["predictions"].numpy(), outputs["labels"].numpy(), 0.0)
    return float(metrics.get()["gap"])


def max_score_difference(model, device_model, run_config, pattern, max_videos):
    """The largest |score of the LiteRT model - score of the TensorFlow model| over the first
    `max_videos` videos of `pattern`."""
    reader = readers.reader_for(run_config, check_labels=False)
    dataset, _ = reader.make_dataset(pattern, 16, num_readers=1)
    largest, seen = 0.0, 0
    for batch in dataset:
        matrix = batch["video_matrix"][: max_videos - seen]
        num_frames = batch["num_frames"][: max_videos - seen]
        expected = model(matrix, num_frames=num_frames, training=False)["predictions"].numpy()
        scores = device_model.predict(matrix, num_frames)["predictions"]
        largest = max(largest, float(np.abs(scores - expected).max()))
        seen += len(expected)
        if seen >= max_videos:
            break
    return largest


def child_peak_rss_mib(litert_model, calls=3, weight_cache=True):
    """Peak RSS (MiB) of a child that loads `litert_model` ("" for none) and runs it, with the
    XNNPACK weight cache or without (litert_runtime.py)."""
    cache = "cache" if weight_cache else "none"
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, litert_model, str(calls), utils.REPO_DIR, cache],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the LiteRT child failed:\n{completed.stderr[-2000:]}")
    return round(int(completed.stdout.split()[-1]) / 1024.0, 1)


def one_video(device_model, run_config, pattern):
    """The first video of `pattern` as the device model takes it: (`video_matrix [1, frames,
    features]`, `num_frames [1]`)."""
    reader = readers.reader_for(run_config, check_labels=False)
    dataset, _ = reader.make_dataset(pattern, 1, num_readers=1)
    batch = next(iter(dataset))
    matrix = litert_runtime.pad_frames(batch["video_matrix"].numpy(), device_model.frame_count)
    return matrix.astype(device_model.matrix_type), batch["num_frames"].numpy().astype(np.int32)


def measure_latencies(device_models, pattern, calls):
    """{variant: [seconds per call]}: each variant (`(LiteRTModel, RunConfig)`) called once per
    round, in turn, `calls` rounds after two untimed calls each."""
    inputs = {
        name: one_video(model, run_config, pattern)
        for name, (model, run_config) in device_models.items()
    }
    device_models = {name: model for name, (model, _) in device_models.items()}
    for name, model in device_models.items():
        for _ in range(2):
            model.predict_video(*inputs[name])
    samples = {name: [] for name in device_models}
    for _ in range(calls):
        for name, model in device_models.items():
            start = time.perf_counter()
            model.predict_video(*inputs[name])
            samples[name].append(time.perf_counter() - start)
    return samples


def measure_preset(
    preset,
    pattern,
    work_dir,
    train_epochs,
    latency_calls,
    representative_videos,
    fidelity_videos,
    num_readers,
):
    """The rows of one preset: per model and quantization (see the module docstring)."""
    train_pattern, eval_pattern = split_shards(pattern)
    entries = benchmark_models.benchmark_models(preset, [STUDENT_K])
    trained = preset == "small" and train_epochs > 0
    if trained:
        train_dirs = train_models(entries, train_pattern, work_dir, train_epochs, num_readers)
    else:
        train_dirs = {
            name: benchmark_models.save_untrained(run_config, os.path.join(work_dir, name))
            for name, run_config in entries
        }
    rows = []
    device_models = {}
    for name, _ in entries:
        model, run_config, checkpoint_path = checkpoints.restore_model(train_dirs[name])
        base = {"preset": preset, "model": name, "trained": trained}
        saved_gap = None
        if trained:
            export_dir = saved_model.export_saved_model(
                model,
                readers.reader_for(run_config, check_labels=False),
                os.path.join(work_dir, f"{name}-saved_model"),
            )
            saved_gap = saved_model_gap(export_dir, eval_pattern, run_config.num_classes)
        for quantization in litert_export.QUANTIZATIONS:
            row = dict(base, quantization=quantization, frames=None)
            started = time.perf_counter()
            try:
                path = litert_export.export_litert(
                    model,
                    run_config,
                    os.path.join(work_dir, f"{name}-{quantization}"),
                    quantization,
                    representative_data_pattern=train_pattern,
                    representative_count=representative_videos,
                    checkpoint_path=checkpoint_path,
                )
            except utils.UserInputError as error:
                rows.append(dict(row, error=str(error)))
                continue
            row["export_s"] = time.perf_counter() - started
            device_model, _, _ = litert_export.load_litert(path, num_threads=1)
            row.update(
                frames=device_model.frame_count,
                bytes=os.path.getsize(path),
                max_score_difference=max_score_difference(
                    model, device_model, run_config, eval_pattern, fidelity_videos
                ),
            )
            if trained:
                metrics = evaluator.evaluate_litert(path, eval_pattern, batch_size=64)
                row.update(gap=metrics["gap"], saved_model_gap=saved_gap)
            row["peak_rss_mib"] = child_peak_rss_mib(path, weight_cache=quantization != "int8")
            device_models[f"{name} {quantization}"] = (device_model, run_config)
            rows.append(row)
    latencies = measure_latencies(device_models, eval_pattern, latency_calls)
    for row in rows:
        samples = latencies.get(f"{row['model']} {row['quantization']}")
        if samples:
            row["latency_ms"] = {
                "median": 1000 * statistics.median(samples),
                "p95": 1000 * float(np.percentile(samples, 95)),
            }
    return rows


def speedups(rows):
    """{preset: student-10 int8 weights (and int8) latency against the teacher float32's}."""
    result = {}
    for preset in dict.fromkeys(row["preset"] for row in rows):
        by_variant = {
            (row["model"], row["quantization"]): row
            for row in rows
            if row["preset"] == preset and "latency_ms" in row
        }
        teacher = by_variant.get(("teacher", "float32"))
        if not teacher:
            continue
        result[preset] = {
            quantization: teacher["latency_ms"]["median"] / row["latency_ms"]["median"]
            for (model, quantization), row in by_variant.items()
            if model == f"student-{STUDENT_K}"
        }
    return result


def measure_litert(
    pattern,
    work_dir,
    presets,
    train_epochs=4,
    latency_calls=30,
    representative_videos=20,
    fidelity_videos=32,
    num_readers=2,
):
    """Every preset's rows (`rows`), the student-10's latency speed-ups over the teacher's
    float32 model per quantization (`student_over_teacher_float32`), the baseline RSS of the
    child, the thread count and the settings."""
    rows = []
    for preset in presets:
        rows += measure_preset(
            preset,
            pattern,
            os.path.join(work_dir, preset),
            train_epochs,
            latency_calls,
            representative_videos,
            fidelity_videos,
            num_readers,
        )
    return {
        "rows": rows,
        "student_over_teacher_float32": speedups(rows),
        "baseline_rss_mib": child_peak_rss_mib(""),
        "threads": 1,
        "latency_calls": latency_calls,
        "train_epochs": train_epochs,
        "representative_videos": representative_videos,
        "fidelity_videos": fidelity_videos,
        "eval_shards": EVAL_SHARDS,
    }
