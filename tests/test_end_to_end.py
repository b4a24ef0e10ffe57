"""End to end through the CLIs: train a tiny teacher, resume it, eval --run_once, inference CSV,
export; a uniform baseline and a distilled student trained from the command line.

Also the user errors of the CLIs: each gives one clear line on stderr and a non-zero exit.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, REPO_ROOT, train_tiny_teacher

import model_zoo
import readers
from datasets import synthetic
from runs import checkpoints
from runs.config import RunConfig
from serving import evaluator, predictor

NUM_CLASSES = 6
TINY_MODEL = ["--lstm_cells=8", "--lstm_layers=1", "--block_size=5", f"--num_classes={NUM_CLASSES}"]
# Lines of TensorFlow's that a command line must not show by default: the C++ runtime's
# oneDNN note, the saver's line per checkpoint, and the warning of a prediction traced again.
TENSORFLOW_NOISE = (
    "oneDNN supports DT_BOOL",
    "Sharding callback duration",
    "triggered tf.function retracing",
)


def run_cli(script, *args, expect_success=True, environment=None):
    """Runs one of the CLIs in a fresh process (TensorFlow's C++ logging quiet unless
    `environment` says otherwise); returns the completed process, whose stderr holds none of
    TENSORFLOW_NOISE."""
    environment = environment or dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
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
    lines = completed.stderr.splitlines()
    noise = [line for line in lines if any(mark in line for mark in TENSORFLOW_NOISE)]
    assert not noise, noise
    return completed


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory):
    """A tiny train set and validate set sharing class patterns."""
    root = tmp_path_factory.mktemp("synthetic")
    spec = synthetic.SyntheticDatasetSpec(min_frames=12, max_frames=30, max_labels=2)
    train_files = synthetic.write_dataset(
        str(root / "train"), 48, 2, NUM_CLASSES, seed=3, split="train", spec=spec
    )
    validate_files = synthetic.write_dataset(
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
    assert metrics["num_examples"] == 20 and metrics["global_step"] == 7
    assert evaluation.stdout == evaluator.format_metrics(metrics) + "\n"  # once, nothing else

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
    predictor.run_inference(
        synthetic_sets["validate"],
        from_saved_model,
        saved_model_dir=export_dir,
        top_k=4,
        batch_size=6,
    )
    with open(output_file) as expected, open(from_saved_model) as got:
        assert got.read() == expected.read()


def check_csv_against_model(output_file, train_dir, data_pattern, top_k):
    """Every line of the CSV equals the top-k of the restored model, computed here."""
    model, run_config, _ = checkpoints.restore_model(train_dir)
    reader = readers.reader_for(run_config)
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


def test_inference_predicts_an_empty_video(tmp_path, caplog):
    """A video with 0 frames gets a line with finite scores and a warning naming it."""
    train_dir = train_tiny_teacher(tmp_path / "teacher", max_steps=1)
    example = tf.train.SequenceExample()
    example.context.feature["id"].bytes_list.value.append(b"empty-video")
    example.context.feature["labels"].int64_list.value.append(1)
    for name in ("rgb", "audio"):
        example.feature_lists.feature_list[name].SetInParent()
    path = tmp_path / "empty.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example.SerializeToString())
    output_file = tmp_path / "predictions.csv"
    predictor.run_inference(str(path), str(output_file), train_dir=train_dir, top_k=3)
    assert any(
        "empty-video" in record.getMessage() and "0 frames" in record.getMessage()
        for record in caplog.records
    )
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
    run_config = RunConfig.load(train_dir)
    assert run_config.frame_stride == 4 and run_config.frame_sampling == "random"
    reader = readers.reader_for(run_config)
    assert reader.frame_stride == 4 and reader.sampling_seed == 0
    metrics = evaluator.evaluate_checkpoint(train_dir, synthetic_sets["validate"])
    assert metrics["num_examples"] == 20
    outputs = [str(tmp_path / f"run{index}.csv") for index in range(2)]
    for output_file in outputs:
        predictor.run_inference(synthetic_sets["validate"], output_file, train_dir=train_dir)
    # Random frames at inference are a fixed function of the video: identical reruns.
    with open(outputs[0]) as first, open(outputs[1]) as second:
        assert first.read() == second.read()


def test_distilled_student_trains_from_the_cli_and_serves_like_any_model(synthetic_sets, tmp_path):
    """`train.py --model=DistilledStudentModel --frame_stride=4`, the default recipe: its own
    teacher first, then both phases of the student; eval, inference and export read 1 frame in 4
    and hold no teacher variable."""
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
    # 48 videos in batches of 8: the teacher's 2 passes, 12 steps; the student's 6 distilling
    # steps, then 6 fine-tuning steps.
    assert "Teacher: Trained to step 12" in trained.stdout
    assert "Student: Trained to step 12" in trained.stdout
    assert f"Evaluate it: python eval.py --train_dir={train_dir} " in trained.stdout
    assert "Stage 2 of 2: the student" in trained.stderr
    assert "distill_intermediate" in trained.stderr and "Phase distill done" in trained.stderr
    assert RunConfig.load(os.path.join(train_dir, "teacher")).model == "HierarchicalTeacherModel"
    with open(os.path.join(train_dir, "model_flags.json")) as handle:
        model_flags = json.load(handle)
    assert model_flags["model"] == "DistilledStudentModel"
    assert model_flags["frame_stride"] == 4 and model_flags["block_size"] == 5  # student's m

    metrics = evaluator.evaluate_checkpoint(train_dir, synthetic_sets["validate"])
    assert metrics["global_step"] == 12 and metrics["num_examples"] == 20

    output_file = str(tmp_path / "student.csv")
    predictor.run_inference(synthetic_sets["validate"], output_file, train_dir=train_dir, top_k=3)
    check_csv_against_model(output_file, train_dir, synthetic_sets["validate"], top_k=3)

    export_dir = str(tmp_path / "student_export")
    run_cli("export_model.py", f"--train_dir={train_dir}", f"--export_dir={export_dir}")
    loaded = tf.saved_model.load(export_dir)
    student, _, _ = checkpoints.restore_model(train_dir)
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
    teacher_dir = train_tiny_teacher(
        tmp_path / "teacher", synthetic_sets["train"], batch_size=8, max_steps=2
    )
    common = [f"--train_data_pattern={synthetic_sets['train']}", "--batch_size=8"]
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
    teacher_config = RunConfig.load(teacher_dir)
    assert model_flags["lstm_cells"] == teacher_config.lstm_cells
    assert model_flags["num_classes"] == teacher_config.num_classes == 3862
    assert model_flags["frame_stride"] == 10
    assert tf.train.latest_checkpoint(student_dir).endswith("ckpt-6")


def test_each_command_line_defines_its_flags_only_when_asked():
    """Importing every command line into one process defines no flag (demo.py and benchmark.py
    both have --output_dir and --batch_size); each defines its own into the FlagValues given."""
    import importlib

    from absl import flags

    names = ["train", "eval", "inference", "export_model", "demo", "benchmark", "reproduce"]
    modules = [importlib.import_module(name) for name in names]
    defined = {}
    for name, module in zip(names, modules, strict=True):
        flag_values = flags.FlagValues()
        module.define_flags(flag_values)
        defined[name] = set(flag_values)
    assert {"output_dir", "batch_size"} <= defined["demo"] & defined["benchmark"]
    assert "train_data_pattern" in defined["train"] and "saved_model_dir" in defined["inference"]
    every_flag = set().union(*defined.values())
    assert not every_flag & set(flags.FLAGS)


def test_help_exits_0_and_an_error_is_not_buried_in_tensorflow_logs(tmp_path):
    # The command lines' own default, not the tests' TF_CPP_MIN_LOG_LEVEL.
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    shown = run_cli("eval.py", "--help", environment=environment)
    assert "--eval_data_pattern" in shown.stdout
    run_config = RunConfig(num_classes=4, lstm_cells=4, lstm_layers=1, block_size=5)
    train_dir = tmp_path / "model"
    model = model_zoo.build_model(run_config)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(train_dir), 1).save(1)
    run_config.save(str(train_dir))
    shard = sorted(FRAME_SAMPLE.glob("*.tfrecord"))[0]
    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(shard.read_bytes()[:3000])
    failed = run_cli(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={truncated}",
        f"--output_file={tmp_path / 'predictions.csv'}",
        expect_success=False,
        environment=environment,
    )
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    [error] = [index for index, line in enumerate(lines) if line.startswith("ERROR:")]
    assert "truncated.tfrecord" in lines[error]
    # TensorFlow's start-up banner and its runtime warnings about the failure (aborted
    # rendezvous, graph nodes) are not shown by default: only progress lines (a restored
    # checkpoint) may come before the error.
    noise = [
        line
        for line in lines[:error]
        if "rendezvous" in line or "{{node" in line or "oneDNN custom operations" in line
    ]
    assert not noise and len(lines[:error]) <= 2, lines[:error]
