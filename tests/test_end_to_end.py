"""End to end through the CLIs: train a tiny teacher, resume it, eval --run_once, inference CSV.

Also the user errors of the CLIs: each gives one clear line on stderr and a non-zero exit.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, REPO_ROOT, VOCABULARY

import export_model
import readers
import synthetic_data

NUM_CLASSES = 6
TINY_MODEL = ["--lstm_cells=8", "--lstm_layers=1", "--block_size=5", f"--num_classes={NUM_CLASSES}"]


def run_cli(script, *args, expect_success=True):
    """Runs one of the CLIs in a fresh process; returns the completed process."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    if expect_success:
        assert completed.returncode == 0, completed.stderr[-3000:]
    else:
        assert completed.returncode != 0, completed.stdout[-2000:]
    return completed


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory):
    """A tiny train set and validate set sharing class patterns."""
    root = tmp_path_factory.mktemp("synthetic")
    spec = synthetic_data.SyntheticDatasetSpec(min_frames=12, max_frames=30, max_labels=2)
    train_files = synthetic_data.write_dataset(
        str(root / "train"), 48, 2, NUM_CLASSES, seed=3, split="train", spec=spec
    )
    validate_files = synthetic_data.write_dataset(
        str(root / "validate"), 20, 2, NUM_CLASSES, seed=3, split="validate", spec=spec
    )
    return {
        "train": os.path.join(os.path.dirname(train_files[0]), "*.tfrecord"),
        "validate": os.path.join(os.path.dirname(validate_files[0]), "*.tfrecord"),
    }


def ckpt_steps(train_dir):
    return sorted(
        int(path.rsplit("-", 1)[1])
        for path in tf.train.get_checkpoint_state(train_dir).all_model_checkpoint_paths
    )


def test_train_resume_eval_inference(synthetic_sets, tmp_path):
    train_dir = str(tmp_path / "teacher")
    common = [
        f"--train_data_pattern={synthetic_sets['train']}",
        f"--train_dir={train_dir}",
        "--batch_size=8",
        "--checkpoint_steps=2",
        "--log_every_n_steps=1",
        "--num_epochs=10",
    ]
    first = run_cli("train.py", *common, *TINY_MODEL, "--max_steps=4")
    assert "step       4" in first.stderr and "batch GAP" in first.stderr
    assert ckpt_steps(train_dir)[-1] == 4
    with open(os.path.join(train_dir, "model_flags.json")) as handle:
        model_flags = json.load(handle)
    assert model_flags["model"] == "HierarchicalTeacherModel"
    assert model_flags["lstm_cells"] == 8 and model_flags["num_classes"] == NUM_CLASSES

    # Resume without repeating the model flags: the step continues from 4.
    second = run_cli("train.py", *common, "--max_steps=7")
    assert "Resumed from" in second.stderr and "at step 4" in second.stderr
    assert "step       5" in second.stderr and "step       1 " not in second.stderr
    assert ckpt_steps(train_dir)[-1] == 7
    # A model flag that contradicts the checkpoint is refused.
    conflict = run_cli(
        "train.py", *common, "--max_steps=8", "--lstm_cells=16", expect_success=False
    )
    assert "--lstm_cells=16" in conflict.stderr and "checkpoint has 8" in conflict.stderr

    evaluation = run_cli(
        "eval.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={synthetic_sets['validate']}",
        "--run_once",
        "--batch_size=7",
    )
    with open(os.path.join(train_dir, "eval_metrics.json")) as handle:
        metrics = json.load(handle)
    for key in ("gap", "avg_hit_at_one", "avg_perr", "map", "avg_loss"):
        assert np.isfinite(metrics[key])
    assert metrics["num_examples"] == 20 and metrics["global_step"] == 7
    assert 0.0 <= metrics["gap"] <= 1.0 and metrics["avg_loss"] > 0
    assert f"GAP {metrics['gap']:.4f}" in evaluation.stdout

    output_file = str(tmp_path / "out" / "predictions.csv")
    run_cli(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={synthetic_sets['validate']}",
        f"--output_file={output_file}",
        "--top_k=4",
        "--batch_size=6",
    )
    check_csv_against_model(output_file, train_dir, synthetic_sets["validate"], top_k=4)

    # The exported SavedModel writes the identical file.
    export_dir = str(tmp_path / "export")
    run_cli("export_model.py", f"--train_dir={train_dir}", f"--export_dir={export_dir}")
    from_saved_model = str(tmp_path / "from_saved_model.csv")
    run_cli(
        "inference.py",
        f"--saved_model_dir={export_dir}",
        f"--input_data_pattern={synthetic_sets['validate']}",
        f"--output_file={from_saved_model}",
        "--top_k=4",
        "--batch_size=6",
    )
    with open(output_file) as expected, open(from_saved_model) as got:
        assert got.read() == expected.read()
    # Asking a SavedModel exported with top 3 for 4 pairs is an error, not a shorter CSV.
    small_export = str(tmp_path / "export_top3")
    run_cli(
        "export_model.py", f"--train_dir={train_dir}", f"--export_dir={small_export}", "--top_k=3"
    )
    refused = run_cli(
        "inference.py",
        f"--saved_model_dir={small_export}",
        f"--input_data_pattern={synthetic_sets['validate']}",
        f"--output_file={tmp_path / 'refused.csv'}",
        "--top_k=4",
        expect_success=False,
    )
    assert "--top_k=4" in refused.stderr and "export it again" in refused.stderr
    assert not os.path.exists(tmp_path / "refused.csv")


def check_csv_against_model(output_file, train_dir, data_pattern, top_k):
    """Every line of the CSV equals the top-k of the restored model, computed here."""
    model, model_flags, _ = export_model.restore_model(train_dir)
    reader = readers.reader_from_model_flags(model_flags)
    dataset, _ = reader.make_dataset(data_pattern, 5)
    expected = {}
    for batch in dataset:
        predictions = model(batch["video_matrix"], num_frames=batch["num_frames"])["predictions"]
        for video_id, scores in zip(batch["video_ids"].numpy(), predictions.numpy(), strict=True):
            expected[video_id.decode()] = scores

    with open(output_file) as handle:
        lines = handle.read().split("\n")
    assert lines[0] == "VideoId,LabelConfidencePairs"
    assert lines[-1] == ""
    body = lines[1:-1]
    assert len(body) == len(expected) == 20
    seen = set()
    for line in body:
        video_id, pairs = line.split(",")
        seen.add(video_id)
        tokens = pairs.split(" ")
        labels = [int(token) for token in tokens[0::2]]
        scores = [float(token) for token in tokens[1::2]]
        assert len(labels) == top_k and len(set(labels)) == top_k
        assert scores == sorted(scores, reverse=True)
        reference = expected[video_id]
        np.testing.assert_array_equal(labels, np.argsort(-reference, kind="stable")[:top_k])
        np.testing.assert_allclose(scores, reference[labels], rtol=1e-5)
    assert seen == set(expected)


def test_inference_writes_label_names(tmp_path):
    """On the real sample with the real vocabulary: names beside the labels."""
    train_dir = str(tmp_path / "teacher")
    run_cli(
        "train.py",
        f"--train_data_pattern={FRAME_SAMPLE / '*.tfrecord'}",
        f"--train_dir={train_dir}",
        "--lstm_cells=8",
        "--lstm_layers=1",
        "--batch_size=30",
        "--max_steps=1",
    )
    output_file = str(tmp_path / "predictions.csv")
    run_cli(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={FRAME_SAMPLE / '*.tfrecord'}",
        f"--output_file={output_file}",
        f"--vocabulary_file={VOCABULARY}",
        "--top_k=3",
    )
    with open(output_file) as handle:
        assert len(handle.read().splitlines()) == 1 + 59
    names_file = str(tmp_path / "predictions_names.csv")
    import csv

    with open(names_file) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 59 * 3
    vocabulary = {}
    with open(VOCABULARY) as handle:
        for row in csv.DictReader(handle):
            vocabulary[row["Index"]] = row["Name"]
    for row in rows:
        assert row["Name"] == vocabulary.get(row["Label"], "")
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("train.py", ["--train_data_pattern=/nonexistent/x*.tfrecord"], "--train_data_pattern"),
        ("train.py", ["--model=NoSuchModel", "--train_data_pattern=x"], "--model=NoSuchModel"),
        ("train.py", ["--block_size=0", "--train_data_pattern=x"], "--block_size"),
        (
            "train.py",
            ["--feature_names=rgb", "--feature_sizes=1024,128", "--train_data_pattern=x"],
            "--feature_names",
        ),
        (
            "eval.py",
            ["--train_dir=/nonexistent", "--eval_data_pattern=x", "--run_once"],
            "model_flags",
        ),
        ("inference.py", ["--input_data_pattern=x"], "--output_file"),
        (
            "eval.py",
            ["--train_dir=/nonexistent", "--eval_data_pattern=x", "--timeout_secs=1"],
            "No checkpoint appeared",
        ),
    ],
)
def test_cli_user_errors(script, args, message, tmp_path):
    if script == "train.py":
        args.append(f"--train_dir={tmp_path / 'model'}")
    completed = run_cli(script, *args, expect_success=False)
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and message in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr


def test_cli_corrupt_shard_names_the_file(synthetic_sets, tmp_path):
    shard = sorted(tf.io.gfile.glob(synthetic_sets["train"]))[0]
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2] ^= 0x01
    broken = tmp_path / "broken-00000.tfrecord"
    broken.write_bytes(bytes(data))
    completed = run_cli(
        "train.py",
        f"--train_data_pattern={broken}",
        f"--train_dir={tmp_path / 'model'}",
        *TINY_MODEL,
        "--batch_size=4",
        expect_success=False,
    )
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and "broken-00000.tfrecord" in error_lines[0]


def test_inference_predicts_an_empty_video(synthetic_sets, tmp_path):
    """A video with 0 frames gets a line with finite scores and a warning naming it."""
    train_dir = str(tmp_path / "teacher")
    run_cli(
        "train.py",
        f"--train_data_pattern={synthetic_sets['train']}",
        f"--train_dir={train_dir}",
        *TINY_MODEL,
        "--batch_size=8",
        "--max_steps=1",
    )
    example = tf.train.SequenceExample()
    example.context.feature["id"].bytes_list.value.append(b"empty-video")
    example.context.feature["labels"].int64_list.value.append(1)
    for name in ("rgb", "audio"):
        example.feature_lists.feature_list[name].SetInParent()
    path = tmp_path / "empty.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example.SerializeToString())
    output_file = tmp_path / "predictions.csv"
    completed = run_cli(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={path}",
        f"--output_file={output_file}",
        "--top_k=3",
    )
    assert "empty-video" in completed.stderr and "0 frames" in completed.stderr
    lines = output_file.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("empty-video,")
    scores = [float(token) for token in lines[1].split(",")[1].split(" ")[1::2]]
    assert len(scores) == 3 and all(np.isfinite(scores))


def test_uniform_baseline_reads_every_jth_frame_in_train_eval_and_inference(
    synthetic_sets, tmp_path
):
    """TEACHER-UNIFORM-k: the teacher architecture on 1 frame in j, the same in all three CLIs."""
    train_dir = str(tmp_path / "uniform")
    run_cli(
        "train.py",
        f"--train_data_pattern={synthetic_sets['train']}",
        f"--train_dir={train_dir}",
        *TINY_MODEL,
        "--frame_stride=4",
        "--frame_sampling=random",
        "--batch_size=8",
        "--max_steps=2",
    )
    with open(os.path.join(train_dir, "model_flags.json")) as handle:
        model_flags = json.load(handle)
    assert model_flags["frame_stride"] == 4 and model_flags["frame_sampling"] == "random"
    reader = readers.reader_from_model_flags(model_flags)
    assert reader.frame_stride == 4 and reader.sampling_seed == 0
    run_cli(
        "eval.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={synthetic_sets['validate']}",
        "--run_once",
    )
    outputs = [str(tmp_path / f"run{index}.csv") for index in range(2)]
    for output_file in outputs:
        run_cli(
            "inference.py",
            f"--train_dir={train_dir}",
            f"--input_data_pattern={synthetic_sets['validate']}",
            f"--output_file={output_file}",
        )
    # Random frames at inference are a fixed function of the video: identical reruns.
    with open(outputs[0]) as first, open(outputs[1]) as second:
        assert first.read() == second.read()


def test_distilled_student_trains_from_the_cli_and_serves_like_any_model(synthetic_sets, tmp_path):
    """`train.py --model=DistilledStudentModel --frame_stride=4`: both phases, then eval,
    inference and export read 1 frame in 4 and hold no teacher variable."""
    train_dir = str(tmp_path / "student")
    trained = run_cli(
        "train.py",
        f"--train_data_pattern={synthetic_sets['train']}",
        f"--train_dir={train_dir}",
        "--model=DistilledStudentModel",
        "--frame_stride=4",
        "--distill_mode=intermediate",
        "--teacher_block_size=6",
        "--lstm_cells=8",
        "--lstm_layers=1",
        f"--num_classes={NUM_CLASSES}",
        "--joint_epochs=1",
        "--finetune_epochs=1",
        "--batch_size=8",
        "--log_every_n_steps=1",
    )
    # 48 videos in batches of 8: 6 joint steps, then 6 fine-tuning steps.
    assert "Trained to step 12" in trained.stdout
    assert "distill_intermediate" in trained.stderr and "the teacher is dropped" in trained.stderr
    with open(os.path.join(train_dir, "model_flags.json")) as handle:
        model_flags = json.load(handle)
    assert model_flags["model"] == "DistilledStudentModel"
    assert model_flags["frame_stride"] == 4 and model_flags["block_size"] == 5  # student's m

    run_cli(
        "eval.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={synthetic_sets['validate']}",
        "--run_once",
    )
    with open(os.path.join(train_dir, "eval_metrics.json")) as handle:
        metrics = json.load(handle)
    assert metrics["global_step"] == 12 and metrics["num_examples"] == 20

    output_file = str(tmp_path / "student.csv")
    run_cli(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={synthetic_sets['validate']}",
        f"--output_file={output_file}",
        "--top_k=3",
    )
    check_csv_against_model(output_file, train_dir, synthetic_sets["validate"], top_k=3)

    export_dir = str(tmp_path / "student_export")
    run_cli("export_model.py", f"--train_dir={train_dir}", f"--export_dir={export_dir}")
    loaded = tf.saved_model.load(export_dir)
    student, _, _ = export_model.restore_model(train_dir)
    assert len(loaded.model_variables) == len(student.variables)
    assert not [v.name for v in loaded.model_variables if "teacher" in v.name]
    # The served student reads 1 frame in 4: num_frames is ceil(frames / 4).
    first_shard = sorted(tf.io.gfile.glob(synthetic_sets["validate"]))[0]
    serialized = next(iter(tf.data.TFRecordDataset(first_shard))).numpy()
    served = loaded.signatures["serving_default"](serialized_examples=tf.constant([serialized]))
    full = readers.YT8MFrameFeatureReader(num_classes=NUM_CLASSES).parse_serialized([serialized])
    assert int(served["num_frames"][0]) == -(-int(full["num_frames"][0]) // 4)
    assert int(full["num_frames"][0]) > 4


def test_serial_student_inherits_the_teachers_sizes(synthetic_sets, tmp_path):
    teacher_dir = str(tmp_path / "teacher")
    common = [f"--train_data_pattern={synthetic_sets['train']}", "--batch_size=8"]
    run_cli("train.py", *common, f"--train_dir={teacher_dir}", *TINY_MODEL, "--max_steps=2")
    student_dir = str(tmp_path / "student")
    run_cli(
        "train.py",
        *common,
        f"--train_dir={student_dir}",
        "--model=DistilledStudentModel",
        "--frame_stride=10",
        f"--teacher_train_dir={teacher_dir}",
        "--joint_epochs=1",
        "--finetune_epochs=0",
    )
    with open(os.path.join(student_dir, "model_flags.json")) as handle:
        model_flags = json.load(handle)
    assert model_flags["lstm_cells"] == 8 and model_flags["num_classes"] == NUM_CLASSES
    assert model_flags["frame_stride"] == 10
    assert tf.train.latest_checkpoint(student_dir).endswith("ckpt-6")
