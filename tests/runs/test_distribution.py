"""Tests of distribution.py and of training under tf.distribute strategies on this CPU machine:
2 replicas match one device, a 2-worker cluster on localhost trains, stops at one step when
one worker is preempted and resumes, mixed
precision trains, and Vertex AI's output directories are honoured."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, REPO_ROOT, frame_sample_records, tiny_config, tiny_options

import model_zoo
import readers
import utils
from runs import checkpoints, distribution
from training import optimization, tasks, trainer

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")


def run_python(args, env=None, timeout=400):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def report_of(completed):
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")][-1]
    return json.loads(line[len("REPORT ") :])


def test_tf_config_master_becomes_chief(monkeypatch):
    config = {
        "cluster": {"master": ["host0:2222"], "worker": ["host1:2222"]},
        "task": {"type": "master", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    parsed = distribution.tf_config()
    assert parsed["cluster"] == {"chief": ["host0:2222"], "worker": ["host1:2222"]}
    assert parsed["task"] == {"type": "chief", "index": 0}
    assert json.loads(os.environ["TF_CONFIG"]) == parsed  # what TensorFlow will read
    assert distribution.cluster_size(parsed) == 2
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(utils.UserInputError, match="TF_CONFIG"):
        distribution.tf_config()
    monkeypatch.delenv("TF_CONFIG")
    assert distribution.tf_config() == {}


def test_unknown_strategy_is_refused():
    with pytest.raises(utils.UserInputError, match="--strategy=parameter_server"):
        distribution.make_strategy("parameter_server")


def test_auto_strategy_on_one_cpu_is_one_device(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribution.make_strategy("auto")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert distribution.is_chief(strategy)
    assert distribution.task_role(strategy) == ("chief", 0)


def test_workers_read_disjoint_shares():
    files = [f"shard-{index}" for index in range(5)]

    def shares(num_workers):
        return [
            distribution.input_shard(
                tf.distribute.InputContext(num_workers, worker, num_workers), files
            )
            for worker in range(num_workers)
        ]

    assert shares(1) == [(files, None)]
    two = shares(2)
    assert two == [(files[0::2], None), (files[1::2], None)]
    # More workers than files: every worker reads every file and keeps one record in 8.
    assert shares(8)[3] == (files, (8, 3))


def test_replica_share_is_the_mean_and_zero_for_an_empty_batch():
    assert float(distribution.replica_share(tf.constant(2.5), 4)) == 2.5
    assert float(distribution.replica_share(tf.constant(float("nan")), 0)) == 0.0


def test_prediction_is_traced_once_for_every_batch_size_and_video_length():
    model = model_zoo.build_model(tiny_config(num_classes=5))
    traces = []

    def finish(outputs):
        traces.append(outputs["predictions"].shape)  # Python runs only while tracing
        return outputs["predictions"]

    predict = distribution.predict_on_replicas(None, model, finish)
    for batch_size, frames in ((4, 10), (4, 17), (3, 17), (1, 5)):
        video_matrix = tf.zeros([batch_size, frames, 1152], tf.uint8)
        scores = predict(video_matrix, tf.fill([batch_size], frames))
        assert scores.shape == (batch_size, 5)
    assert len(traces) == 1 and traces[0].as_list() == [None, 5]


def test_two_replicas_match_one_device():
    """Same start, same global batches (6, 5, 1 videos): the losses and the weights after three
    steps with clipping and L2 agree with one device's."""
    report = report_of(run_python(["tests/distributed_check.py", "steps"]))
    assert report["replicas"] == 2
    np.testing.assert_allclose(
        report["mirrored_losses"], report["one_device_losses"], rtol=1e-5, atol=1e-6
    )
    assert report["max_weight_change"] > 1e-3  # the steps did move the weights
    assert report["max_weight_difference"] < 1e-5


def test_training_distillation_eval_and_inference_under_two_replicas(tmp_path):
    report = report_of(run_python(["tests/distributed_check.py", "train", str(tmp_path)]))
    assert report["replicas"] == 2
    assert report["first_step"] == 3
    assert report["resumed_step"] == 4 and report["resumed_checkpoint"].endswith("ckpt-4")
    # 59 videos, global batch 8: 8 steps a pass, one joint pass and one fine-tuning pass.
    assert report["student_step"] == 16
    student, student_config, _ = checkpoints.restore_model(str(tmp_path / "student"))
    assert student_config.model == "DistilledStudentModel"
    assert not any("teacher" in variable.path for variable in student.variables)
    assert report["mixed_step"] == 2
    # Eval and inference with each batch split over the 2 replicas give the same results.
    # (The batches of 5 and their halves may round differently: scores agree to 1e-5, and
    # labels only swap between near-ties.)
    assert report["same_csv_ids"] and report["csv_lines"] == 60  # header + 59 videos
    assert report["csv_score_gap"] < 1e-5
    np.testing.assert_allclose(report["eval_gaps"][1], report["eval_gaps"][0], rtol=1e-6)
    np.testing.assert_allclose(report["eval_losses"][1], report["eval_losses"][0], rtol=1e-5)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("localhost", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def start_two_workers(train_dir, max_steps, extra_flags=()):
    """Starts the chief (named `master`, as AI Platform does) and one worker, each `train.py`
    with --strategy=auto, on localhost; returns both processes."""
    ports = free_ports(2)
    cluster = {"master": [f"localhost:{ports[0]}"], "worker": [f"localhost:{ports[1]}"]}
    args = [
        "train.py",
        f"--train_data_pattern={SAMPLE}",
        f"--train_dir={train_dir}",
        "--strategy=auto",
        "--batch_size=4",
        f"--max_steps={max_steps}",
        "--checkpoint_steps=2",
        "--log_every_n_steps=1",
        "--lstm_cells=4",
        "--lstm_layers=1",
        "--max_frames=20",
        "--block_size=5",
        *extra_flags,
    ]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    processes = []
    for task_type in ("master", "worker"):
        environment["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": task_type, "index": 0}}
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, *args],
                cwd=REPO_ROOT,
                env=dict(environment),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def finish(processes, timeout=300):
    """(exit status, stdout, stderr) of each process once it ends; all are killed when one
    overruns `timeout`."""
    outputs = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for each in processes:
                each.kill()
            raise
        outputs.append((process.returncode, stdout, stderr))
    return outputs


def checkpoint_step(train_dir):
    latest = tf.train.latest_checkpoint(str(train_dir))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def test_preempted_worker_stops_the_cluster_at_one_step_and_the_rerun_resumes(tmp_path):
    """SIGTERM to the (non-chief) worker of a 2-worker job: both workers save the same step and
    exit 143 (none hangs on a collective); the same command then resumes from that step."""
    train_dir = tmp_path / "model"
    processes = start_two_workers(train_dir, 100_000, ["--num_epochs=10000"])
    deadline = time.monotonic() + 240
    while (checkpoint_step(train_dir) or 0) < 4:
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), [
            stderr[-3000:] for _, _, stderr in finish(processes)
        ]
        time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)
    (chief_code, _, chief_err), (worker_code, _, worker_err) = finish(processes)
    assert "--strategy=multi_worker_mirrored: 2 replica(s)" in chief_err
    assert chief_code == 143, chief_err[-3000:]
    assert worker_code == 143, worker_err[-3000:]
    stopped_at = checkpoint_step(train_dir)
    assert "Another worker of the cluster was preempted (SIGTERM): stopped at step " in chief_err
    assert f"stopped at step {stopped_at} and saved" in chief_err
    assert f"SIGTERM received (preemption of this worker): stopped at step {stopped_at}" in (
        worker_err
    )

    (chief_code, chief_out, chief_err), (worker_code, _, worker_err) = finish(
        start_two_workers(train_dir, stopped_at + 2)
    )
    assert chief_code == 0, chief_err[-3000:]
    assert worker_code == 0, worker_err[-3000:]
    assert f"Resumed from {train_dir}/ckpt-{stopped_at} at step {stopped_at}" in chief_err
    assert f"Trained to step {stopped_at + 2}" in chief_out
    # Only the chief wrote into train_dir.
    reader = tf.train.load_checkpoint(str(train_dir))
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == stopped_at + 2
    assert sorted(
        name for name in os.listdir(train_dir) if not name.startswith(("ckpt-", "events."))
    ) == ["checkpoint", "model_flags.json"]


@pytest.mark.parametrize("clip_gradient_norm", [0.0, 0.01])
def test_loss_scaling_leaves_the_update_unchanged(clip_gradient_norm):
    """A step through the loss-scaling optimizer (scale 2**15) moves every variable as plain
    Adam does: the scale reaches the gradients and is taken off again, around the clipping."""
    run_config = tiny_config(num_classes=5, feature_names="rgb", feature_sizes="8", lstm_cells=4)
    frames = tf.constant(np.random.default_rng(0).integers(0, 255, [3, 6, 8]), tf.uint8)
    num_frames = tf.constant([6, 2, 4])
    labels = tf.constant(np.eye(5)[[0, 3, 4]], tf.float32)
    updated = []
    for mixed_precision in (False, True):
        tf.keras.utils.set_random_seed(0)
        model = model_zoo.build_model(run_config)
        optimizer = optimization.make_optimizer(0.01, mixed_precision)
        optimizer.build(model.trainable_variables)
        with tf.GradientTape() as tape:
            predictions = model(frames, num_frames=num_frames, training=True)["predictions"]
            loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, predictions))
        optimization.apply_gradients(
            optimizer, tape, loss, model.trainable_variables, clip_gradient_norm
        )
        updated.append([variable.numpy() for variable in model.trainable_variables])
        if mixed_precision:
            assert float(optimizer.dynamic_scale) == 2.0**15
    moved = 0
    for plain, scaled in zip(*updated, strict=True):
        np.testing.assert_allclose(scaled, plain, rtol=1e-5, atol=1e-7)
        moved += not np.allclose(plain, scaled * 0)
    assert moved == len(updated[0])


@pytest.fixture
def float32_policy_after():
    yield
    optimization.set_precision_policy(False)


def test_mixed_precision_trains_and_exports(tmp_path, float32_policy_after):
    """float16 compute with loss scaling trains a few finite steps; the checkpoint restores
    into a float32 model, and the final export (Vertex's AIP_MODEL_DIR) loads and predicts."""
    export_dir = str(tmp_path / "model")
    options = tiny_options(
        SAMPLE,
        tmp_path / "train",
        batch_size=8,
        max_steps=3,
        mixed_precision=True,
        final_export_dir=export_dir,
    )
    result = trainer.train(tasks.SupervisedTask(tiny_config(max_frames=20, block_size=5)), options)
    assert result["global_step"] == 3
    optimization.set_precision_policy(False)
    model, _, _ = checkpoints.restore_model(options.train_dir)
    assert all(variable.dtype == "float32" for variable in model.trainable_variables)
    loaded = tf.saved_model.load(export_dir)
    records = frame_sample_records()
    served = loaded.signatures["predict"](serialized_examples=tf.constant(records[:4]))
    assert served["predictions"].dtype == tf.float32
    # The export holds the trained weights: the float32 model restored from the checkpoint
    # predicts the same (the exported model computed in float16).
    reader = readers.reader_for(tiny_config(max_frames=20, block_size=5))
    batch = reader.parse_serialized(tf.constant(records[:4]))
    restored = model(batch["video_matrix"], num_frames=batch["num_frames"])["predictions"]
    np.testing.assert_allclose(served["predictions"], restored, atol=2e-3)


def test_lstm_layers_keep_the_cudnn_settings():
    """Keras runs an LSTM on cuDNN only with these settings (and right-padded masks)."""
    model = model_zoo.build_model(tiny_config(num_classes=5, lstm_cells=4, lstm_layers=2))
    lstms = [layer for layer in model._flatten_layers() if isinstance(layer, tf.keras.layers.LSTM)]
    assert len(lstms) == 4
    for lstm in lstms:
        assert lstm.use_cudnn in ("auto", True)
        assert lstm.activation is tf.keras.activations.tanh
        assert lstm.recurrent_activation is tf.keras.activations.sigmoid
        assert lstm.cell.recurrent_dropout == 0 and lstm.cell.use_bias and not lstm.unroll
