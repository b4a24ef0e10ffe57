"""Tests of trainer.py's loop on a tiny teacher: resume, a finished run, an interrupted epoch, old
checkpoints, --start_new_model and the NaN stop."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FRAME_SAMPLE,
    VIDEO_SAMPLE,
    random_frames,
    sequence_example,
    tiny_config,
    tiny_options,
    write_records,
)

import losses
import utils
from runs import checkpoints, config
from training import optimization, tasks, trainer, training_input

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")  # 59 real videos, 3,862 classes


def train_tiny(train_dir, pattern=SAMPLE, run_config=None, **options):
    run_config = run_config or tiny_config()
    return trainer.train(
        tasks.SupervisedTask(run_config), tiny_options(pattern, train_dir, **options)
    )


def test_resume_continues_the_step_and_the_optimizer(tmp_path):
    train_dir = tmp_path / "model"
    first = train_tiny(train_dir, max_steps=2, batch_size=16)
    assert first["global_step"] == 2 and first["checkpoint"].endswith("ckpt-2")
    result = train_tiny(train_dir, max_steps=3, batch_size=16)
    assert result["global_step"] == 3
    reader = tf.train.load_checkpoint(result["checkpoint"])
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert config.RunConfig.load(str(train_dir)) == tiny_config()


def test_a_finished_run_has_nothing_left_and_more_epochs_train_on(tmp_path):
    train_dir = tmp_path / "model"
    # 59 videos in batches of 30: 2 steps an epoch.
    first = train_tiny(train_dir, num_epochs=2, batch_size=30)
    assert first["global_step"] == 4 and first["phase"] == "train"
    again = train_tiny(train_dir, num_epochs=2, batch_size=30)
    assert again["global_step"] == 4 and again["steps_run"] == 0 and again["last_loss"] is None
    more = train_tiny(train_dir, num_epochs=3, batch_size=30)
    assert more["global_step"] == 6 and more["steps_run"] == 2


def test_an_interrupted_epoch_goes_on_from_its_step(tmp_path):
    train_dir = tmp_path / "model"
    train_tiny(train_dir, num_epochs=2, batch_size=30, max_steps=3)
    # Epoch 1 was done (step 2); epoch 2 stopped after 1 of its 2 steps and goes on from there.
    result = train_tiny(train_dir, num_epochs=2, batch_size=30)
    assert result["global_step"] == 4 and result["finished"]


def test_checkpoint_secs_saves_whenever_that_long_has_passed(tmp_path, monkeypatch):
    """A clock that moves 100 s a reading: with --checkpoint_secs=150 every other step is
    saved, though --checkpoint_steps (100) is never reached."""
    clock = iter(range(0, 10**6, 100))
    monkeypatch.setattr(trainer.time, "monotonic", lambda: next(clock))
    train_dir = tmp_path / "model"
    train_tiny(
        train_dir,
        max_steps=3,
        batch_size=16,
        checkpoint_secs=150,
        max_checkpoints_to_keep=10,
    )
    saved = tf.train.get_checkpoint_state(str(train_dir)).all_model_checkpoint_paths
    assert [path.rsplit("-", 1)[1] for path in saved] == ["2", "3"]


def test_a_checkpoint_without_a_step_resumes_from_the_optimizer_count(tmp_path):
    # Checkpoints of earlier releases held the model and the optimizer only.
    train_dir = tmp_path / "model"
    run_config = tiny_config()
    task = tasks.SupervisedTask(run_config)
    task.build()
    # As they made it: Adam on the starter's schedule, which read the optimizer's count.
    schedule = optimization.make_learning_rate(config.TrainOptions())
    optimizer = optimization.make_optimizer(schedule, mixed_precision=False)
    optimizer.build(task.model.trainable_variables)
    optimizer.iterations.assign(7)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=task.model, optimizer=optimizer), str(train_dir), 1
    )
    manager.save(checkpoint_number=7)
    run_config.save(str(train_dir))
    result = train_tiny(train_dir, max_steps=8, batch_size=16)
    assert result["global_step"] == 8 and result["checkpoint"].endswith("ckpt-8")


def test_start_new_model_keeps_the_old_model_until_the_new_data_has_been_read(tmp_path):
    train_dir = tmp_path / "model"
    train_tiny(train_dir, max_steps=1, batch_size=16)
    before = sorted(tf.io.gfile.listdir(str(train_dir)))
    with pytest.raises(utils.UserInputError, match="no files match"):
        train_tiny(train_dir, pattern=tmp_path / "typo*.tfrecord", start_new_model=True)
    assert sorted(tf.io.gfile.listdir(str(train_dir))) == before
    # A shard of random bytes: its first batch fails, and the old model is still there.
    garbage = tmp_path / "garbage.tfrecord"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(utils.UserInputError, match="garbage.tfrecord"):
        train_tiny(train_dir, pattern=garbage, start_new_model=True)
    assert sorted(tf.io.gfile.listdir(str(train_dir))) == before
    # Data that reads: the old model goes, a new one starts at step 0.
    result = train_tiny(train_dir, max_steps=1, batch_size=16, start_new_model=True)
    assert result["global_step"] == 1 and result["steps_run"] == 1


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    train_dir = tmp_path / "model"
    train_tiny(train_dir, max_steps=3, checkpoint_steps=1, batch_size=8)
    good = tf.train.latest_checkpoint(str(train_dir))
    assert good.endswith("ckpt-3")
    good_weights = {
        name: tf.train.load_variable(good, name) for name, _ in tf.train.list_variables(good)
    }
    original = losses.CrossEntropyLoss.calculate_loss

    def loss_turning_nan(self, predictions, labels, **kwargs):
        return original(self, predictions, labels, **kwargs) * float("nan")

    monkeypatch.setattr(losses.CrossEntropyLoss, "calculate_loss", loss_turning_nan)
    with pytest.raises(utils.UserInputError, match="NaN or infinite at step 4") as raised:
        train_tiny(train_dir, max_steps=6, checkpoint_steps=1, batch_size=8)
    assert "ckpt-3" in str(raised.value)
    assert tf.train.latest_checkpoint(str(train_dir)) == good
    for name, value in good_weights.items():
        np.testing.assert_array_equal(tf.train.load_variable(good, name), value)


def test_a_video_level_model_trains_on_video_level_records(tmp_path):
    run_config = tiny_config(
        model="LogisticModel", frame_features=False, feature_names="mean_rgb,mean_audio"
    )
    result = train_tiny(tmp_path / "model", VIDEO_SAMPLE / "*.tfrecord", run_config, max_steps=2)
    assert result["global_step"] == 2
    assert config.RunConfig.load(str(tmp_path / "model")).model == "LogisticModel"


def test_one_pipeline_serves_every_epoch_of_a_phase(tmp_path, monkeypatch, caplog):
    """No pipeline is rebuilt between epochs: each batch carries its epoch, and the epoch's end
    is counted in the checkpoint when the next epoch's first batch comes (and at the end). An
    epoch of 2 steps is warned about, once."""
    calls = []
    build = training_input.make_training_dataset

    def recording(*args, **kwargs):
        calls.append(args[-2:])  # (first epoch, epochs)
        return build(*args, **kwargs)

    monkeypatch.setattr(training_input, "make_training_dataset", recording)
    train_dir = tmp_path / "model"
    # 59 videos in batches of 30: 2 steps an epoch; a checkpoint every step.
    result = train_tiny(
        train_dir, num_epochs=3, batch_size=30, checkpoint_steps=1, max_checkpoints_to_keep=10
    )
    assert result["global_step"] == 6 and calls == [(0, 3)]
    warnings = [
        record.getMessage() for record in caplog.records if "An epoch of" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert "only 2 step(s): 59 videos at --batch_size=30" in warnings[0]
    epochs_done = {
        step: tf.train.load_checkpoint(str(train_dir / f"ckpt-{step}")).get_tensor(
            "epochs_done/.ATTRIBUTES/VARIABLE_VALUE"
        )
        for step in (1, 2, 3, 6)
    }
    assert epochs_done == {1: 0, 2: 1, 3: 1, 6: 3}


def test_training_on_data_that_gives_no_video_fails_instead_of_saving_an_untrained_model(
    tmp_path,
):
    rng = np.random.default_rng(0)
    records = [
        sequence_example(f"bad-{index}", [5000], random_frames(rng, 3)) for index in range(4)
    ]
    pattern = write_records(tmp_path / "labels-out-of-range.tfrecord", records)
    train_dir = tmp_path / "model"
    with pytest.raises(utils.UserInputError, match="gave no video to train on.*4 malformed"):
        train_tiny(train_dir, pattern, corrupt_record_policy="skip", batch_size=2, num_epochs=1)
    # Failed before its first checkpoint: the directory it made is gone again.
    assert not train_dir.exists()
    # In a directory that was there, only what the run wrote goes (model_flags.json, events).
    train_dir.mkdir()
    (train_dir / "notes.txt").write_text("mine")
    with pytest.raises(utils.UserInputError, match="Label out of range"):
        train_tiny(train_dir, pattern, batch_size=2, num_epochs=1)
    assert [path.name for path in train_dir.iterdir()] == ["notes.txt"]


@pytest.fixture
def op_determinism_restored():
    """Turns TensorFlow's op determinism off again after a test that turned it on."""
    from tensorflow.python.framework import config as framework_config

    yield
    framework_config.disable_op_determinism()


def test_a_deterministic_seed_reproduces_its_run_and_another_seed_does_not(
    tmp_path, op_determinism_restored
):
    """Random frame sampling and shuffled shards, two runs per seed: a seed gives the same
    weights; another seed other weights."""
    run_config = tiny_config(frame_stride=5, frame_sampling="random")

    def trained_weights(name, seed):
        result = train_tiny(
            tmp_path / name,
            run_config=run_config,
            batch_size=16,
            num_epochs=1,
            seed=seed,
            deterministic=True,
            num_readers=4,
        )
        model, _, _ = checkpoints.restore_model(str(tmp_path / name))
        tf.keras.backend.clear_session()
        return result["last_loss"], [weight.numpy() for weight in model.weights]

    first_loss, first = trained_weights("first", 7)
    again_loss, again = trained_weights("again", 7)
    other_loss, other = trained_weights("other", 8)
    assert first_loss == again_loss
    for weight, repeated in zip(first, again, strict=True):
        np.testing.assert_array_equal(weight, repeated)
    assert other_loss != first_loss
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
