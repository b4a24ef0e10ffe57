"""Tests of reading in exit stages (models.EncoderModel.call_in_stages) and of early_exit.py:
each stage's outputs are the model's on that stage's frames, the predictor stops videos after
the stage the rule says and reads only their frames, the thresholds follow the calibration, and
a staged student trains, calibrates and evaluates end to end."""

import json
import types

import numpy as np
import pytest
import tensorflow as tf
from conftest import short_video_train_set, tiny_config, tiny_options

import export_model
import model_zoo
import train
import utils
from pipeline import frame_selection
from runs import config
from serving import early_exit, evaluator, predictor
from training import tasks, trainer

NUM_CLASSES = 5
STAGED = {
    "feature_names": "rgb,audio",
    "feature_sizes": "6,2",
    "cluster_size": 4,
    "hidden_size": 8,
    "groups": 4,
    "num_classes": NUM_CLASSES,
    "exit_stages": 3,
}


def staged_pair(model_name, **changes):
    """A model that reads in 3 stages and the same model (same weights) in one pass."""
    staged = model_zoo.build_model(tiny_config(model=model_name, **STAGED, **changes))
    one_pass = model_zoo.build_model(staged.config.replace(exit_stages=1))
    for source, target in zip(staged.weights, one_pass.weights, strict=True):
        target.assign(source)
    return staged, one_pass


def test_stages_are_every_4th_then_every_2nd_then_every_frame():
    stages = frame_selection.exit_stages_of(9, 3).numpy().tolist()
    assert stages == [0, 2, 1, 2, 0, 2, 1, 2, 0]
    assert frame_selection.exit_stages_of(4, 1).numpy().tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "model_name, changes",
    [
        ("NeXtVLADModel", {}),
        ("NetVLADModel", {}),
        ("DbofModel", {"dbof_pooling": "max"}),
        ("DbofModel", {"dbof_pooling": "average"}),
    ],
)
def test_each_stage_is_the_model_on_the_frames_read_so_far(model_name, changes):
    staged, one_pass = staged_pair(model_name, **changes)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(3, 9, 8), dtype=np.uint8)
    num_frames = np.array([9, 3, 0], np.int32)
    outputs = staged(video, num_frames, in_stages=True)
    assert outputs["stage_logits"].shape == (3, 3, NUM_CLASSES)
    for stage, step in enumerate([4, 2, 1]):
        every = one_pass(video[:, ::step], num_frames=-(-num_frames // step))
        np.testing.assert_allclose(outputs["stage_logits"][stage], every["logits"], atol=1e-5)
    np.testing.assert_allclose(outputs["logits"], outputs["stage_logits"][-1], atol=0)
    # Outside training, by default, the model reads every frame in one pass, as its last stage.
    one_read = staged(video, num_frames)
    assert "stage_logits" not in one_read
    np.testing.assert_allclose(one_read["logits"], outputs["stage_logits"][-1], atol=1e-5)


def test_the_predictor_stops_each_video_where_the_rule_says_and_reads_only_that():
    staged, _ = staged_pair("NeXtVLADModel")
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, size=(4, 9, 8), dtype=np.uint8)
    num_frames = np.array([9, 3, 0, 5], np.int32)
    reference = staged(video, num_frames, in_stages=True)["stage_logits"].numpy()
    every_stage = early_exit.ExitPredictor(staged, [np.inf, np.inf])(video, num_frames)
    np.testing.assert_allclose(every_stage["logits"], reference[-1], atol=1e-5)
    assert every_stage["frames_read"].tolist() == [9, 3, 0, 5]
    first_only = early_exit.ExitPredictor(staged, [-np.inf, -np.inf])(video, num_frames)
    np.testing.assert_allclose(first_only["logits"], reference[0], atol=1e-5)
    assert first_only["frames_read"].tolist() == [3, 1, 0, 2]  # frames 0, 4, 8 of each
    # A threshold between the videos' confidences: the confident ones stop after stage 0.
    confidence, _ = early_exit.stage_confidences(reference)
    # (midway between two videos' confidences: the re-batched graph may round one of them
    # differently in the last bit)
    threshold = float(np.mean(np.sort(confidence[0])[1:3]))
    mixed = early_exit.ExitPredictor(staged, [threshold, np.inf])(video, num_frames)
    stops = confidence[0] >= threshold
    assert mixed["exit_stage"].tolist() == np.where(stops, 0, 2).tolist()
    expected = np.where(stops[:, np.newaxis], reference[0], reference[-1])
    np.testing.assert_allclose(mixed["logits"], expected, atol=1e-5)
    np.testing.assert_allclose(mixed["predictions"], tf.sigmoid(expected), atol=1e-5)


def test_thresholds_are_the_lowest_confidence_that_keeps_the_agreement():
    calibration = {
        "confidence": [[0.9, 0.8, 0.8, 0.7, 0.6], [0.5, 0.4, 0.3, 0.2, 0.1]],
        "agrees_with_last_stage": [[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]],
    }
    # Stage 0, from the top: agreement 1, 1, 2/3 (a tie at 0.8 counts whole), 3/4, 3/5.
    assert early_exit.exit_thresholds(calibration, 1.0) == [0.9, np.inf]
    assert early_exit.exit_thresholds(calibration, 0.75) == [0.7, np.inf]
    assert early_exit.exit_thresholds(calibration, 0.6) == [0.6, np.inf]
    assert early_exit.exit_thresholds(calibration, 0.0) == [-np.inf, -np.inf]
    with pytest.raises(utils.UserInputError, match="--exit_threshold=1.5 must be in"):
        early_exit.exit_thresholds(calibration, 1.5)


def test_only_a_pooling_that_adds_up_reads_in_stages():
    with pytest.raises(utils.UserInputError, match="HierarchicalTeacherModel does not pool"):
        tiny_config(exit_stages=3)
    with pytest.raises(utils.UserInputError, match="--exit_stages=0 must be >= 1"):
        tiny_config(model="NeXtVLADModel", **dict(STAGED, exit_stages=0))


def test_a_staged_student_distils_calibrates_and_evaluates_with_its_exits(tmp_path):
    pattern = short_video_train_set(
        tmp_path / "data", 24, NUM_CLASSES, seed=3, min_frames=12, max_frames=40
    )
    sizes = {"cluster_size": 2, "hidden_size": 8, "num_classes": NUM_CLASSES, "max_frames": 40}
    teacher_dir = tmp_path / "teacher"
    trainer.train(
        tasks.SupervisedTask(tiny_config(model="NeXtVLADModel", **sizes)),
        tiny_options(pattern, teacher_dir, max_steps=2),
    )
    student = tiny_config(
        model=config.STUDENT_MODEL,
        student_architecture="NeXtVLADModel",
        frame_stride=2,
        exit_stages=3,
        **sizes,
    )
    phases = config.DistillOptions(
        joint_epochs=1, finetune_epochs=1, teacher_train_dir=str(teacher_dir)
    )
    student_dir = tmp_path / "student"
    trainer.train(tasks.make_task(student, phases), tiny_options(pattern, student_dir))
    with pytest.raises(utils.UserInputError, match="exit_calibration.json: train.py writes"):
        evaluator.evaluate_checkpoint(str(student_dir), pattern, exit_threshold=0.5)

    # train.py calibrates once the training is finished, on the training files by default.
    options = tiny_options(pattern, student_dir)
    flag_values = types.SimpleNamespace(
        exit_calibration_data_pattern="", exit_calibration_videos=20
    )
    unfinished = [{"finished": False, "checkpoint": None, "chief": True}]
    assert train.calibrate_exits(student, options, unfinished, flag_values) == ""
    not_chief = [{"finished": True, "checkpoint": "ckpt", "chief": False}]
    assert train.calibrate_exits(student, options, not_chief, flag_values) == ""
    finished = [{"finished": True, "checkpoint": "ckpt", "chief": True}]
    line = train.calibrate_exits(student, options, finished, flag_values)
    assert line.startswith(f"Exit rule calibrated on 20 videos of {pattern}")
    calibration = early_exit.load_calibration(str(student_dir), 3)
    assert calibration["videos"] == 20 and len(calibration["confidence"]) == 2
    stored = json.loads((student_dir / early_exit.CALIBRATION_FILE).read_text())
    assert stored["agrees_with_last_stage"] == calibration["agrees_with_last_stage"]

    every_stage = evaluator.evaluate_checkpoint(str(student_dir), pattern, batch_size=8)
    first_stage = evaluator.evaluate_checkpoint(
        str(student_dir), pattern, batch_size=8, exit_threshold=0.0
    )
    assert first_stage["exit_stage_shares"] == [1.0, 0.0, 0.0]
    # The first stage holds every 4th of the student's frames (a quarter, rounded up).
    assert first_stage["mean_frames_read"] < every_stage["mean_frames_read"] / 2
    assert "exit_threshold" not in every_stage
    assert "frames read per video" in evaluator.format_metrics(first_stage)
    csv = tmp_path / "predictions.csv"
    written = predictor.run_inference(
        pattern, str(csv), train_dir=str(student_dir), batch_size=8, exit_threshold=0.0
    )
    assert written["num_videos"] == 24
    assert written["mean_frames_read"] == pytest.approx(first_stage["mean_frames_read"])
    assert csv.read_text().startswith(predictor.CSV_HEADER)
    with pytest.raises(utils.UserInputError, match="reads its frames in one pass"):
        evaluator.evaluate_checkpoint(str(teacher_dir), pattern, exit_threshold=0.5)

    # export_model.py --exit_threshold: the SavedModel stops videos where inference does.
    export_flags = types.SimpleNamespace(
        train_dir=str(student_dir),
        checkpoint_path="",
        export_dir=str(tmp_path / "export"),
        top_k=3,
        video_id_key="id",
        format="saved_model",
        litert_quantization="float32",
        representative_data_pattern="",
        representative_videos=8,
        exit_threshold=0.0,
    )
    _, export_dir = export_model.export(export_flags)
    records = [record.numpy() for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern))]
    served = tf.saved_model.load(export_dir).signatures["serving_default"](
        serialized_examples=tf.constant(records)
    )
    assert (served["exit_stage"].numpy() == 0).all()
    assert served["frames_read"].numpy().mean() == pytest.approx(written["mean_frames_read"])
    served_csv = predictor.run_inference(
        pattern, str(tmp_path / "served.csv"), saved_model_dir=export_dir, batch_size=8, top_k=3
    )
    assert served_csv["mean_frames_read"] == pytest.approx(written["mean_frames_read"])
    calibration_file = student_dir / early_exit.CALIBRATION_FILE
    calibrated = calibration_file.read_text()
    other = dict(json.loads(calibrated), checkpoint=str(student_dir / "ckpt-999"))
    calibration_file.write_text(json.dumps(other))
    with pytest.raises(utils.UserInputError, match="calibrates ckpt-999, not ckpt-"):
        export_model.export(export_flags)
    calibration_file.write_text(calibrated)
    with pytest.raises(utils.UserInputError, match="a LiteRT model reads one video's frames"):
        export_model.export(types.SimpleNamespace(**dict(vars(export_flags), format="litert")))
    with pytest.raises(utils.UserInputError, match="reads its frames in one pass"):
        export_model.export(
            types.SimpleNamespace(**dict(vars(export_flags), train_dir=str(teacher_dir)))
        )
