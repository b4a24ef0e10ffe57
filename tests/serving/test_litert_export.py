"""Tests of litert_export.py and litert_runtime.py: a teacher, a student and a cluster model
converted with each quantization score the real samples as the model does; the CSV and the eval
of a .tflite; the export command line; a model that cannot be converted."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, REPO_ROOT, tiny_config

import model_zoo
import readers
import utils
from runs import config
from serving import evaluator, litert_export, litert_runtime, predictor, saved_model

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")  # 59 videos
NUM_CLASSES = 3862  # the real samples' labels
KINDS = {
    "teacher": {},
    "student": {"model": config.STUDENT_MODEL, "frame_stride": 4, "block_size": 2},
    "nextvlad_student": {
        "model": config.STUDENT_MODEL,
        "student_architecture": "NeXtVLADModel",
        "frame_stride": 4,
        "cluster_size": 8,
        "hidden_size": 16,
    },
}
# Largest difference of a score from the model's, per quantization.
TOLERANCES = {"float32": 1e-4, "float16": 2e-3, "int8_weights": 2e-2, "int8": 8e-2}


def build(kind, tmp_path):
    """A model of `kind` with its first checkpoint and model_flags.json in `tmp_path/kind`."""
    run_config = tiny_config(num_classes=NUM_CLASSES, **KINDS[kind])
    model = model_zoo.build_model(run_config)
    train_dir = str(tmp_path / kind)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), train_dir, 1).save(1)
    run_config.save(train_dir)
    return model, run_config, train_dir


def sample_batch(run_config):
    reader = readers.reader_for(run_config)
    dataset, _ = reader.make_dataset(SAMPLE, 64)
    return next(iter(dataset))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("litert")
    return {kind: build(kind, root) for kind in KINDS}


@pytest.mark.xdist_group("litert")
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_quantization_scores_the_videos_as_the_model_does(models, kind, tmp_path):
    model, run_config, _ = models[kind]
    batch = sample_batch(run_config)
    expected = model(batch["video_matrix"], num_frames=batch["num_frames"])["predictions"]
    sizes = {}
    for quantization in litert_export.QUANTIZATIONS:
        path = litert_export.export_litert(
            model,
            run_config,
            str(tmp_path / quantization),
            quantization,
            representative_data_pattern=SAMPLE,
            representative_count=16,
        )
        sizes[quantization] = os.path.getsize(path)
        device_model, _, _ = litert_export.load_litert(path)
        frames = litert_export.device_frame_count(run_config)
        assert device_model.matrix_shape == [1, frames, run_config.feature_size]
        assert device_model.matrix_type == np.uint8
        scores = device_model.predict(batch["video_matrix"], batch["num_frames"])["predictions"]
        assert scores.shape == (59, NUM_CLASSES)
        difference = np.abs(scores - expected.numpy()).max()
        assert difference <= TOLERANCES[quantization], (quantization, difference)
        if quantization == "float32":  # the weight cache shares packings, it changes no score
            uncached = litert_runtime.LiteRTModel(path, weight_cache=False)
            unshared = uncached.predict(batch["video_matrix"], batch["num_frames"])
            np.testing.assert_array_equal(unshared["predictions"], scores)
    assert sizes["float32"] > sizes["float16"] > sizes["int8_weights"]


def test_the_device_frame_count_is_the_most_frames_the_reader_gives():
    assert litert_export.device_frame_count(tiny_config()) == 40
    assert litert_export.device_frame_count(tiny_config(frame_stride=3)) == 14
    assert litert_export.device_frame_count(tiny_config(frames_per_video=6)) == 6
    assert (
        litert_export.device_frame_count(
            tiny_config(
                model="LogisticModel", frame_features=False, feature_names="mean_rgb,mean_audio"
            )
        )
        is None
    )


@pytest.mark.xdist_group("litert")
def test_the_csv_and_the_metrics_of_a_tflite_are_the_saved_models(models, tmp_path):
    model, run_config, train_dir = models["student"]
    litert_path = litert_export.export_litert(model, run_config, str(tmp_path / "litert"))
    export_dir = saved_model.export_saved_model(
        model, readers.reader_for(run_config), str(tmp_path / "saved_model"), top_k=5
    )
    rows = {}
    for name, source in [
        ("saved_model", {"saved_model_dir": export_dir}),
        ("litert", {"litert_model": litert_path}),
    ]:
        output_file = tmp_path / f"{name}.csv"
        predictor.run_inference(SAMPLE, str(output_file), top_k=5, batch_size=16, **source)
        rows[name] = [line.split(",") for line in output_file.read_text().splitlines()[1:]]
    assert len(rows["litert"]) == 59
    for saved_row, litert_row in zip(rows["saved_model"], rows["litert"], strict=True):
        assert saved_row[0] == litert_row[0]
        saved_pairs, litert_pairs = saved_row[1].split(), litert_row[1].split()
        assert saved_pairs[::2] == litert_pairs[::2]  # the same classes in the same order
        np.testing.assert_allclose(
            np.float32(litert_pairs[1::2]), np.float32(saved_pairs[1::2]), atol=1e-4
        )
    reference = evaluator.evaluate_checkpoint(train_dir, SAMPLE, batch_size=16)
    metrics = evaluator.evaluate_litert(litert_path, SAMPLE, batch_size=16)
    assert metrics["num_examples"] == 59 and metrics["global_step"] == -1
    for name in ("gap", "avg_hit_at_one", "map", "avg_loss"):
        assert metrics[name] == pytest.approx(reference[name], abs=1e-4), name


def test_a_model_that_cannot_be_converted_names_the_operation_and_the_layer(monkeypatch):
    run_config = tiny_config(model="FrameLevelLogisticModel", num_classes=NUM_CLASSES)
    model = model_zoo.build_model(run_config)
    plain_call = model.classifier.call

    def call_with_an_unsupported_op(inputs, **options):
        return plain_call(tf.math.bessel_i1e(inputs), **options)

    monkeypatch.setattr(model.classifier, "call", call_with_an_unsupported_op)
    with pytest.raises(utils.UserInputError) as raised:
        litert_export.convert(model, run_config)
    message = str(raised.value)
    assert "FrameLevelLogisticModel cannot be converted to LiteRT (float32)" in message
    assert "tf.BesselI1e" in message and "classifier" in message, message


def test_a_missing_tflite_or_model_flags_is_a_user_error(tmp_path):
    with pytest.raises(utils.UserInputError, match="--litert_model=.* is not a .tflite file"):
        litert_export.load_litert(str(tmp_path / "none.tflite"))
    (tmp_path / "model.tflite").write_bytes(b"not a model")
    with pytest.raises(utils.UserInputError, match="no model_flags.json beside it"):
        litert_export.load_litert(str(tmp_path / "model.tflite"))
    tiny_config().save(str(tmp_path))
    with pytest.raises(utils.UserInputError, match="is not a model of export_model.py"):
        litert_export.load_litert(str(tmp_path / "model.tflite"))
    with pytest.raises(utils.UserInputError, match="--litert_quantization=int4"):
        litert_export.convert(None, tiny_config(), "int4")


@pytest.mark.xdist_group("litert")
def test_the_export_command_line_writes_a_calibrated_int8_model(models, tmp_path):
    _, run_config, train_dir = models["teacher"]
    export_dir = tmp_path / "int8"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "export_model.py"),
            f"--train_dir={train_dir}",
            "--format=litert",
            "--litert_quantization=int8",
            f"--representative_data_pattern={SAMPLE}",
            "--representative_videos=8",
            f"--export_dir={export_dir}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"to {export_dir / 'model.tflite'}" in completed.stdout
    assert config.RunConfig.load(str(export_dir)) == run_config
    _, _, info = litert_export.load_litert(str(export_dir / "model.tflite"))
    assert info["quantization"] == "int8" and info["checkpoint"].endswith("ckpt-1")
