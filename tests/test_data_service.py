"""Tests of reading through tf.data service: data_service.py's dispatcher and two workers run as
subprocesses on localhost; eval, inference and training read through them and give what
reading the files here gives."""

import math
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from conftest import (
    FRAME_SAMPLE,
    REPO_ROOT,
    random_frames,
    sequence_example,
    tiny_config,
    tiny_options,
    train_tiny_teacher,
    write_records,
)

import data_service
import readers
import utils
from pipeline import corrupt_records, data_service_input
from runs import config
from serving import early_exit, evaluator, predictor
from training import tasks, trainer

pytestmark = pytest.mark.xdist_group("data_service")

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")  # 59 real videos in 11 files
START_SECONDS = 90  # TensorFlow's import takes most of it on a loaded machine


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def wait_until_listening(process, port, log_path):
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"data_service.py exited: {log_path.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"data_service.py did not listen on {port}: {log_path.read_text()}")


@pytest.fixture(scope="module")
def service_processes(tmp_path_factory):
    """Starts a dispatcher and 2 workers on localhost (without waiting for them); yields
    (the dispatcher's grpc:// address, [(process, port, log path)]) and stops them."""
    logs = tmp_path_factory.mktemp("data_service_logs")
    dispatcher_port = free_port()
    commands = [("dispatcher", dispatcher_port, ["--role=dispatcher"])]
    for index in range(2):
        port = free_port()
        worker_flags = [
            "--role=worker",
            f"--dispatcher_address=localhost:{dispatcher_port}",
            f"--worker_address=localhost:{port}",
        ]
        commands.append((f"worker{index}", port, worker_flags))
    processes = []
    try:
        for name, port, arguments in commands:
            log_path = logs / f"{name}.log"
            with open(log_path, "w") as log:
                process = subprocess.Popen(
                    [sys.executable, str(REPO_ROOT / "data_service.py"), f"--port={port}"]
                    + arguments,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            processes.append((process, port, log_path))
        yield f"grpc://localhost:{dispatcher_port}", processes
    finally:
        # The workers first, then the dispatcher they report to.
        exit_codes = []
        for process, _, _ in processes[1:] + processes[:1]:
            if process.poll() is None:
                process.terminate()
            exit_codes.append(process.wait(timeout=30))
    assert exit_codes == [0, 0, 0]  # SIGTERM stops each server cleanly


@pytest.fixture(scope="module")
def service(service_processes):
    """The address of the dispatcher, once it and its workers listen."""
    address, processes = service_processes
    for process, port, log_path in processes:
        wait_until_listening(process, port, log_path)
    return address


@pytest.fixture(scope="module")
def teacher_dir(service_processes, tmp_path_factory):
    """A tiny teacher, trained while the servers start."""
    return train_tiny_teacher(tmp_path_factory.mktemp("teacher"))


def test_eval_through_the_service_equals_reading_locally(teacher_dir, service):
    local = evaluator.evaluate_checkpoint(teacher_dir, SAMPLE, batch_size=16)
    served = evaluator.evaluate_checkpoint(
        teacher_dir, SAMPLE, batch_size=16, tf_data_service_address=service
    )
    assert served["num_examples"] == local["num_examples"] == 59  # each video exactly once
    for name in ("gap", "avg_hit_at_one", "avg_perr", "map", "avg_loss"):
        assert served[name] == pytest.approx(local[name], rel=1e-5, abs=1e-6), name


def infer_here_and_through_the_service(service, output_dir, train_dir, **options):
    """{"local": ..., "served": ...}: (run_inference's result, {video id: its CSV pairs}) of the
    same inference on the samples, read here and through the service; the CSVs' headers are
    checked."""
    outcomes = {}
    for name, address in (("local", ""), ("served", service)):
        output = output_dir / f"{name}.csv"
        result = predictor.run_inference(
            SAMPLE,
            str(output),
            train_dir=train_dir,
            batch_size=16,
            tf_data_service_address=address,
            **options,
        )
        lines = output.read_text().splitlines()
        assert lines[0] + "\n" == predictor.CSV_HEADER
        rows = {row.split(",")[0]: row.split(",")[1].split() for row in lines[1:]}
        assert len(rows) == len(lines) - 1 == result["num_videos"] == 59  # each video once
        outcomes[name] = (result, rows)
    return outcomes


def test_inference_through_the_service_writes_the_same_rows(teacher_dir, service, tmp_path):
    outcomes = infer_here_and_through_the_service(service, tmp_path, teacher_dir, top_k=5)
    (_, local_rows), (_, served_rows) = outcomes["local"], outcomes["served"]
    assert sorted(served_rows) == sorted(local_rows)
    for video_id, local_pairs in local_rows.items():
        served_pairs = served_rows[video_id]
        # Classes equal; scores to float32 rounding (a video is batched with others there).
        assert served_pairs[::2] == local_pairs[::2]
        np.testing.assert_allclose(
            np.array(served_pairs[1::2], float), np.array(local_pairs[1::2], float), rtol=1e-4
        )


def test_inference_that_stops_videos_early_reads_the_same_through_the_service(service, tmp_path):
    staged = tiny_config(model="NeXtVLADModel", cluster_size=2, hidden_size=8, exit_stages=3)
    train_dir = str(tmp_path / "staged")
    trainer.train(tasks.SupervisedTask(staged), tiny_options(SAMPLE, train_dir, max_steps=1))
    early_exit.calibrate_train_dir(train_dir, SAMPLE, max_videos=30)
    # Threshold 0: every video stops after the first stage, wherever it is read.
    outcomes = infer_here_and_through_the_service(
        service, tmp_path, train_dir, top_k=3, exit_threshold=0.0
    )
    (local, local_rows), (served, served_rows) = outcomes["local"], outcomes["served"]
    assert served["mean_frames_read"] == pytest.approx(local["mean_frames_read"])
    assert local["mean_frames_read"] < 12  # a quarter of up to 40 frames, rounded up
    assert sorted(served_rows) == sorted(local_rows)
    for video_id, pairs in local_rows.items():
        assert served_rows[video_id][::2] == pairs[::2]


def test_training_through_the_service_runs_its_epochs(service, tmp_path):
    train_dir = tmp_path / "model"
    options = tiny_options(
        SAMPLE,
        train_dir,
        batch_size=16,
        num_epochs=2,
        tf_data_service_address=service,
        tf_data_service_job_name="train-test",
    )
    result = trainer.train(tasks.SupervisedTask(tiny_config()), options)
    # 59 videos an epoch, batched by each of 2 workers: 4 to 6 batches an epoch.
    assert 8 <= result["steps_run"] <= 12
    assert math.isfinite(result["last_loss"])
    epochs_done = tf.train.load_checkpoint(result["checkpoint"]).get_tensor(
        "epochs_done/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert epochs_done == 2


def test_a_malformed_record_through_the_service_fails_naming_the_video(service, tmp_path):
    rng = np.random.default_rng(1)
    frames = random_frames(rng, 3)
    frames["rgb"][1] = frames["rgb"][1][:1000]
    path = write_records(
        tmp_path / "bad.tfrecord",
        [
            sequence_example("good", [1], random_frames(rng, 3)),
            sequence_example("bad1", [1], frames),
        ],
    )
    dataset, files = readers.reader_for(tiny_config()).make_dataset(str(path), 4)
    served = data_service_input.distribute_dataset(dataset, service)
    with pytest.raises(utils.UserInputError, match="bad1"):
        list(corrupt_records.iterate_batches(served, files))


def test_a_damaged_shard_read_by_a_service_worker_fails_naming_the_file(service, tmp_path):
    """Training through the service with --corrupt_record_policy=fail: a shard cut short, read
    by a service worker, stops the run with the file's name (skip is refused with the service:
    its workers cannot report what they skip)."""
    real = sorted(FRAME_SAMPLE.glob("*.tfrecord"))[0].read_bytes()
    damaged = tmp_path / "cut-short.tfrecord"
    damaged.write_bytes(real[: len(real) // 2])
    options = tiny_options(
        str(damaged), tmp_path / "model", batch_size=4, tf_data_service_address=service
    )
    with pytest.raises(utils.UserInputError, match="cut-short.tfrecord"):
        trainer.train(tasks.SupervisedTask(tiny_config()), options)


@pytest.mark.parametrize(
    "address",
    ["localhost:5050", "grpc://localhost", "grpc://localhost:0", "grpc://:5050", "http://h:1"],
)
def test_a_bad_service_address_names_the_flag(address):
    with pytest.raises(utils.UserInputError, match="--tf_data_service_address"):
        config.TrainOptions(train_data_pattern=SAMPLE, tf_data_service_address=address)
    with pytest.raises(utils.UserInputError, match="--tf_data_service_address"):
        evaluator.evaluate_checkpoint("unused", SAMPLE, tf_data_service_address=address)
    with pytest.raises(utils.UserInputError, match="--tf_data_service_address"):
        predictor.run_inference(
            SAMPLE, "unused.csv", train_dir="unused", tf_data_service_address=address
        )


def test_skip_policy_with_the_service_is_refused_naming_both_flags():
    message = "--corrupt_record_policy=skip.*--tf_data_service_address"
    with pytest.raises(utils.UserInputError, match=message):
        config.TrainOptions(
            corrupt_record_policy="skip", tf_data_service_address="grpc://localhost:5050"
        )
    with pytest.raises(utils.UserInputError, match=message):
        predictor.run_inference(
            SAMPLE,
            "unused.csv",
            train_dir="unused",
            corrupt_record_policy="skip",
            tf_data_service_address="grpc://localhost:5050",
        )


def parsed_flags(*arguments):
    flag_values = flags.FlagValues()
    data_service.define_flags(flag_values)
    flag_values(["data_service.py", *arguments])
    return flag_values


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--role=worker", "--port=5051"], "--dispatcher_address is required"),
        (["--role=master", "--port=5051"], "--role=master"),
        (["--role=dispatcher"], "--port is required"),
        (["--role=dispatcher", "--port=70000"], "--port=70000"),
        (["--role=worker", "--port=5051", "--dispatcher_address=host"], "--dispatcher_address"),
        (["--role=dispatcher", "--port=5050", "--dispatcher_address=h:1"], "--dispatcher_addr"),
        (["--role=worker", "--port=1", "--dispatcher_address=h:1", "--work_dir=/d"], "--work_dir"),
    ],
)
def test_data_service_flags_are_checked(arguments, message):
    with pytest.raises(utils.UserInputError, match=message):
        data_service.check_flags(parsed_flags(*arguments))


def test_data_service_command_reports_a_bad_flag_and_exits_1():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "data_service.py"), "--role=worker", "--port=5051"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "ERROR: --dispatcher_address is required" in result.stderr


def test_job_names_are_new_per_pass_and_shared_by_training_workers():
    assert data_service_input.read_once_job_name("", "eval") != (
        data_service_input.read_once_job_name("", "eval")
    )
    assert data_service_input.read_once_job_name("mine", "eval") == "mine"
    assert data_service_input.training_job_name("", "/tmp/t", "epochs-0-5", 1) is None
    shared = data_service_input.training_job_name("", "gs://b/t", "epochs-0-5", 2)
    assert shared == data_service_input.training_job_name("", "gs://b/t", "epochs-0-5", 2)
    assert shared != data_service_input.training_job_name("", "gs://b/t", "epochs-2-5", 2)
    assert data_service_input.training_job_name("run7", "x", "epochs-0-5", 1) == "run7-epochs-0-5"
