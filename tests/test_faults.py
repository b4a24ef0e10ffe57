"""Fault injection: training killed or interrupted mid-run, a loss that turns NaN, damaged
shards and malformed videos under both --corrupt_record_policy values, and bad flags.

Each case checks what a user would check after the fault: the exit status and message, which
checkpoint is the latest, that rerunning the same command continues from it, and what the
outputs count.
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FRAME_SAMPLE,
    REPO_ROOT,
    random_frames,
    sequence_example,
    short_video_train_set,
    tiny_config,
    tiny_options,
    write_records,
)

import utils
from pipeline import corrupt_records
from serving import evaluator, predictor
from training import tasks, trainer

NUM_CLASSES = 5
TINY_MODEL = [
    "--lstm_cells=8",
    "--lstm_layers=1",
    "--block_size=5",
    "--dropout=0.0",
    f"--num_classes={NUM_CLASSES}",
]
FAULT_MODEL = tiny_config(num_classes=NUM_CLASSES, block_size=5, max_frames=300)


@pytest.fixture(scope="module")
def train_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault_data")
    return short_video_train_set(root, 64, NUM_CLASSES, seed=4, min_frames=10, max_frames=30)


def train_command(train_pattern, train_dir, *extra):
    return [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        f"--train_data_pattern={train_pattern}",
        f"--train_dir={train_dir}",
        "--batch_size=8",
        "--log_every_n_steps=1",
        "--checkpoint_steps=5",
        *TINY_MODEL,
        *extra,
    ]


def start_and_wait_for_step(command, step, stage=1):
    """Starts training and returns (process, lines read) once progress line `step` is logged in
    stage `stage` (1: the run's first training; 2: a student's, after its own teacher)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    lines = []
    current_stage = 1
    for line in process.stderr:
        lines.append(line)
        if "Stage 2 of 2" in line:
            current_stage = 2
        match = re.search(r"step +(\d+) \|", line)
        if match and current_stage == stage and int(match.group(1)) >= step:
            return process, lines
    process.wait()
    tail = "".join(lines[-30:])
    raise AssertionError(f"training ended before stage {stage} step {step}:\n{tail}")


def checkpoint_step(train_dir):
    latest = tf.train.latest_checkpoint(str(train_dir))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


# The paper's joint recipe: its phase 1 starts at once (the default first trains a teacher).
STUDENT = [
    "--model=DistilledStudentModel",
    "--frame_stride=4",
    "--joint_epochs=1000",
    "--distill_recipe=paper",
]


@pytest.mark.parametrize(
    "model_flags, signal_number, resume",
    [
        ([], signal.SIGTERM, True),
        (STUDENT, signal.SIGTERM, True),
        (STUDENT, signal.SIGINT, False),
    ],
    ids=["teacher-SIGTERM", "student-SIGTERM", "student-SIGINT"],
)
def test_sigterm_and_sigint_save_a_checkpoint_and_resume(
    train_pattern, tmp_path, model_flags, signal_number, resume
):
    """A preemption (SIGTERM) or Ctrl-C (SIGINT) ends training with the signal's status (143,
    130) after a checkpoint, the student in its distillation phase included; the same command
    resumes from there (the loop is the same for every model: resuming is run twice)."""
    train_dir = tmp_path / "model"
    command = train_command(
        train_pattern, train_dir, "--num_epochs=1000", "--max_steps=100000", *model_flags
    )
    process, _ = start_and_wait_for_step(command, 7)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal_number, stderr[-2000:]
    name = signal.Signals(signal_number).name
    assert f"INTERRUPTED: {name} received: stopped at step" in stderr
    assert "Traceback" not in stderr
    stopped_at = int(re.search(r"stopped at step (\d+)", stderr).group(1))
    # The student's phase 1 checkpoints under train_dir/distill.
    saved_dir = train_dir / "distill" if model_flags else train_dir
    assert stopped_at >= 7 and checkpoint_step(saved_dir) == stopped_at
    if not resume:
        return
    # The same command with a step limit resumes at the saved step.
    resumed = subprocess.run(
        train_command(
            train_pattern,
            train_dir,
            "--num_epochs=1000",
            f"--max_steps={stopped_at + 2}",
            *model_flags,
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {stopped_at}" in resumed.stderr
    assert checkpoint_step(saved_dir) == stopped_at + 2


def checkpoint_tensors(train_dir):
    """Every tensor of the latest checkpoint in `train_dir` but the count of saves."""
    path = tf.train.latest_checkpoint(str(train_dir))
    reader = tf.train.load_checkpoint(path)
    left_out = ("save_counter/.ATTRIBUTES/VARIABLE_VALUE", "_CHECKPOINTABLE_OBJECT_GRAPH")
    return {
        name: reader.get_tensor(name)
        for name, _ in tf.train.list_variables(path)
        if name not in left_out
    }


def kill_while_writing_or_soon_after(process, directories, rng):
    """SIGKILL: as soon as a checkpoint is being written in `directories` (its `_temp` files
    seen), or after a random pause of up to 50 ms when none starts within a second."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        names = [
            name
            for directory in directories
            if directory.exists()
            for name in os.listdir(directory)
        ]
        if any("_temp" in name for name in names):
            break
    else:
        time.sleep(rng.uniform(0, 0.05))
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_a_student_killed_at_random_moments_ends_bit_identical_to_an_uninterrupted_one(
    train_pattern, tmp_path
):
    """--deterministic, the default recipe (its own teacher first, then the student's two
    phases), dropout and random frame offsets on: SIGKILL three times (in the teacher's stage
    and in each of the student's phases, with a checkpoint every step so that kills land inside
    writes or just after them), the same command rerun each time. Every latest checkpoint
    restores, and the run ends at the same steps with the same weights, optimizer state and
    random generators, bit for bit, as one that was never stopped."""
    rng = np.random.default_rng(11)
    # 64 videos in batches of 8: the teacher 8 steps, then the student 8 + 8.
    flags = [
        "--model=DistilledStudentModel",
        "--frame_stride=4",
        "--teacher_block_size=10",
        "--teacher_epochs=1",
        "--joint_epochs=1",
        "--finetune_epochs=1",
        "--deterministic",
        "--seed=7",
        "--checkpoint_steps=1",
        "--dropout=0.5",
    ]

    def command(train_dir):
        return [*train_command(train_pattern, train_dir), *flags]

    uninterrupted_dir = tmp_path / "uninterrupted"
    done = subprocess.run(
        command(uninterrupted_dir), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    directories = {1: [killed_dir / "teacher"], 2: [killed_dir, killed_dir / "distill"]}
    for stage, kill_step in ((1, 3), (2, 4), (2, 12)):
        process, _ = start_and_wait_for_step(command(killed_dir), kill_step, stage)
        kill_while_writing_or_soon_after(process, directories[stage], rng)
        # Whatever was being written when it died, the latest checkpoint reads back whole.
        latest = max(checkpoint_step(directory) or 0 for directory in directories[stage])
        assert kill_step - 1 <= latest <= kill_step + 1
    finished = subprocess.run(
        command(killed_dir), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "Student: Trained to step 16" in finished.stdout
    assert "Student: Trained to step 16" in done.stdout
    for reference_dir, resumed_dir in (
        (uninterrupted_dir / "teacher", killed_dir / "teacher"),
        (uninterrupted_dir, killed_dir),
    ):
        reference, resumed = checkpoint_tensors(reference_dir), checkpoint_tensors(resumed_dir)
        assert sorted(reference) == sorted(resumed)
        assert any("random_states" in name for name in reference)
        for name, value in reference.items():
            np.testing.assert_array_equal(resumed[name], value, err_msg=name)


REAL_SHARDS = ("clippedtrain0093.tfrecord", "clippedtrain0208.tfrecord")
REAL_MODEL = tiny_config(block_size=5)  # 3,862 classes


def run_cli(script, *args):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=600,
    )


def error_lines(completed):
    return [line for line in completed.stderr.splitlines() if line.startswith("ERROR:")]


def count_records(path):
    return sum(1 for _ in tf.data.TFRecordDataset(str(path)))


@pytest.fixture(scope="module")
def damaged_set(tmp_path_factory):
    """Real shards, one with a flipped bit in its second record, and a shard of malformed videos.

    Sorted file order: flipped, good, malformed.
    """
    root = tmp_path_factory.mktemp("damaged")
    good = root / "good.tfrecord"
    good.write_bytes((FRAME_SAMPLE / REAL_SHARDS[0]).read_bytes())
    data = bytearray((FRAME_SAMPLE / REAL_SHARDS[1]).read_bytes())
    second_record = 16 + int.from_bytes(data[:8], "little")
    data[second_record + 12 + 200] ^= 0x01
    flipped = root / "flipped.tfrecord"
    flipped.write_bytes(bytes(data))
    rng = np.random.default_rng(7)
    wrong_size = random_frames(rng, 3)
    wrong_size["audio"][0] = wrong_size["audio"][0][:100]
    malformed = write_records(
        root / "malformed.tfrecord",
        [
            sequence_example("wrong-size", [1], wrong_size),
            sequence_example("label-5000", [5000], random_frames(rng, 3)),
            sequence_example("fine", [3], random_frames(rng, 5)),
        ],
    )
    flipped_records = count_records(FRAME_SAMPLE / REAL_SHARDS[1])
    return {
        "all": str(root / "*.tfrecord"),
        "shards": f"{good},{flipped}",
        "videos": f"{good},{malformed}",
        "kept": count_records(good) + 1 + 1,  # the flipped shard's first record, "fine"
        "skipped": (flipped_records - 1) + 2,
    }


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """A tiny teacher trained 2 steps on the real samples (3,862 classes)."""
    train_dir = tmp_path_factory.mktemp("real_model") / "teacher"
    trainer.train(
        tasks.SupervisedTask(REAL_MODEL),
        tiny_options(
            FRAME_SAMPLE / "clippedtrain0*.tfrecord", train_dir, batch_size=4, max_steps=2
        ),
    )
    return str(train_dir)


@pytest.mark.xdist_group("real_model")
def test_fail_policy_stops_at_a_damaged_shard_or_a_malformed_video(
    real_model, damaged_set, tmp_path
):
    """Through the CLIs: one ERROR line naming the shard or the video, no partial output."""
    completed = run_cli(
        "eval.py",
        f"--train_dir={real_model}",
        f"--eval_data_pattern={damaged_set['shards']}",
        "--run_once",
    )
    assert completed.returncode == 1
    [line] = error_lines(completed)
    assert "flipped.tfrecord" in line and "Corrupt or truncated" in line
    output_file = tmp_path / "predictions.csv"
    completed = run_cli(
        "inference.py",
        f"--train_dir={real_model}",
        f"--input_data_pattern={damaged_set['videos']}",
        f"--output_file={output_file}",
    )
    assert completed.returncode == 1
    [line] = error_lines(completed)
    assert "wrong-size" in line or "label-5000" in line, line
    assert not output_file.exists() and not list(tmp_path.iterdir())  # no partial CSV left


@pytest.mark.xdist_group("real_model")
def test_skip_policy_counts_what_it_leaves_out_in_eval_inference_and_train(
    real_model, damaged_set, tmp_path
):
    metrics = evaluator.evaluate_checkpoint(
        real_model, damaged_set["all"], corrupt_record_policy="skip"
    )
    assert metrics["num_examples"] == damaged_set["kept"]
    assert metrics["skipped_records"] == damaged_set["skipped"]
    assert metrics["skipped"]["num_malformed_videos"] == 2
    [shard] = metrics["skipped"]["damaged_shards"]
    assert shard["file"].endswith("flipped.tfrecord") and shard["exact"]
    line = evaluator.format_metrics(metrics)
    assert line.endswith(f"| {damaged_set['skipped']} record(s) skipped")

    output_file = tmp_path / "predictions.csv"
    written = predictor.run_inference(
        damaged_set["all"], str(output_file), train_dir=real_model, corrupt_record_policy="skip"
    )
    # Inference does not read labels: the video labelled 5000 is predicted, not skipped.
    rows = output_file.read_text().splitlines()[1:]
    assert len(rows) == written["num_videos"] == damaged_set["kept"] + 1
    assert not any(row.startswith("wrong-size,") for row in rows)
    assert sum(row.startswith("label-5000,") for row in rows) == 1
    assert written["skipped_records"] == damaged_set["skipped"] - 1
    summary = corrupt_records.SkippedRecords.describe_summary(written["skipped"])
    assert f"left out {damaged_set['skipped'] - 1} record(s)" in summary

    trained = trainer.train(
        tasks.SupervisedTask(REAL_MODEL),
        tiny_options(
            damaged_set["all"],
            tmp_path / "skip_train",
            num_epochs=1,
            batch_size=4,
            corrupt_record_policy="skip",
        ),
    )
    assert trained["skipped_records"] == damaged_set["skipped"]
    # Batches of 4 records, the malformed videos left out of theirs (an emptied one is dropped).
    read = damaged_set["kept"] + 2
    assert -(-damaged_set["kept"] // 4) <= trained["global_step"] <= -(-read // 4)


@pytest.mark.xdist_group("real_model")
def test_eval_and_inference_reruns_are_identical(real_model, tmp_path):
    pattern = str(FRAME_SAMPLE / "clippedtrain1*.tfrecord")
    outputs = []
    for run in range(2):
        output_file = tmp_path / f"run{run}.csv"
        predictor.run_inference(pattern, str(output_file), train_dir=real_model)
        outputs.append(output_file.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0].count(b"\n") > 1
    metrics = []
    for _ in range(2):
        values = evaluator.evaluate_checkpoint(real_model, pattern)
        metrics.append({key: value for key, value in values.items() if "second" not in key})
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--model=NoSuchModel", "--model=NoSuchModel"),
        ("--corrupt_record_policy=ignore", "corrupt_record_policy"),
    ],
)
def test_bad_flags_stop_training_before_the_data_is_looked_at(flag, expected, tmp_path):
    """Through the CLI (every flag's own check is in test_config.py)."""
    completed = run_cli(
        "train.py",
        f"--train_data_pattern={tmp_path / 'no-such-data*.tfrecord'}",
        f"--train_dir={tmp_path / 'train'}",
        flag,
    )
    assert completed.returncode != 0
    assert expected in completed.stderr and "no-such-data" not in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.xdist_group("real_model")
def test_unwritable_output_directories_are_refused_up_front(real_model, tmp_path):
    unwritable = "/proc/no-such-directory/out"
    with pytest.raises(utils.UserInputError, match="--train_dir: cannot write") as raised:
        trainer.train(
            tasks.SupervisedTask(REAL_MODEL),
            tiny_options(FRAME_SAMPLE / REAL_SHARDS[0], unwritable, batch_size=4),
        )
    assert unwritable in str(raised.value)
    with pytest.raises(utils.UserInputError, match="--output_file: cannot write") as raised:
        predictor.run_inference(
            str(FRAME_SAMPLE / REAL_SHARDS[0]),
            f"{unwritable}/predictions.csv",
            train_dir=real_model,
        )
    assert unwritable in str(raised.value)
