"""Tests of serving/saved_model.py: the exported SavedModel gives the model's own top-k from raw
records, for the hierarchical model and a student of another family."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import frame_sample_records, tiny_config

import model_zoo
import readers
import utils
from serving import early_exit, saved_model


@pytest.mark.parametrize(
    "family_flags",
    [{}, {"student_architecture": "NeXtVLADModel", "cluster_size": 2, "hidden_size": 8}],
    ids=["hierarchical", "nextvlad_student"],
)
def test_the_served_top_k_is_the_models(tmp_path, family_flags):
    if family_flags:
        family_flags = dict(family_flags, model="DistilledStudentModel")
    run_config = tiny_config(frame_stride=3, **family_flags)
    model = model_zoo.build_model(run_config)
    reader = readers.reader_for(run_config)
    export_dir = saved_model.export_saved_model(model, reader, str(tmp_path / "export"), top_k=5)
    assert not [path for path in tmp_path.iterdir() if ".tmp-" in path.name]
    records = frame_sample_records()
    batch = reader.parse_serialized(tf.constant(records[:6]))
    expected = model(batch["video_matrix"], num_frames=batch["num_frames"])["predictions"].numpy()
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](serialized_examples=tf.constant(records[:6]))
    np.testing.assert_array_equal(served["video_ids"], batch["video_ids"])
    np.testing.assert_array_equal(served["num_frames"], batch["num_frames"])  # 1 frame in 3
    top = np.argsort(-expected, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(served["class_indexes"], top)
    np.testing.assert_allclose(
        served["class_scores"], np.take_along_axis(expected, top, 1), rtol=1e-5
    )
    predicted = loaded.signatures["predict"](serialized_examples=tf.constant(records[:6]))
    np.testing.assert_allclose(predicted["predictions"], expected, rtol=1e-5)
    with pytest.raises(utils.UserInputError, match="--top_k=0"):
        saved_model.export_saved_model(model, reader, str(tmp_path / "other"), top_k=0)


def test_a_staged_model_exports_its_exits(tmp_path):
    run_config = tiny_config(
        model="NeXtVLADModel", cluster_size=2, hidden_size=8, frame_stride=2, exit_stages=3
    )
    model = model_zoo.build_model(run_config)
    reader = readers.reader_for(run_config)
    records = frame_sample_records()
    batch = reader.parse_serialized(tf.constant(records[:8]))
    # Thresholds that stop some videos after the first stage and let others read on.
    stage_logits = model(batch["video_matrix"], batch["num_frames"], in_stages=True)["stage_logits"]
    median = float(np.median(early_exit.confidence_of(stage_logits[0])))
    exit_predictor = early_exit.ExitPredictor(model, [median, np.inf])
    expected = exit_predictor(batch["video_matrix"], batch["num_frames"])
    assert 0 < (expected["exit_stage"] == 0).sum() < 8, "the batch should mix exits"
    export_dir = saved_model.export_saved_model(
        model, reader, str(tmp_path / "export"), top_k=3, exit_predictor=exit_predictor
    )
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["predict"](serialized_examples=tf.constant(records[:8]))
    np.testing.assert_allclose(served["predictions"], expected["predictions"], rtol=1e-5)
    np.testing.assert_array_equal(served["exit_stage"], expected["exit_stage"])
    np.testing.assert_array_equal(served["frames_read"], expected["frames_read"])
    top = loaded.signatures["serving_default"](serialized_examples=tf.constant(records[:8]))
    np.testing.assert_array_equal(top["frames_read"], expected["frames_read"])
    assert set(top) >= {"class_indexes", "exit_stage"}
    # Videos that read every stage get the one-pass model's predictions.
    one_pass = model(batch["video_matrix"], batch["num_frames"])["predictions"].numpy()
    last = expected["exit_stage"] == 2
    np.testing.assert_allclose(served["predictions"][last], one_pass[last], rtol=1e-5)
