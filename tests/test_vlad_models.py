"""Tests of the cluster-and-aggregate models (vlad_models.py: NetVLAD, NeXtVLAD; and the
starter's DbofModel): masking, shapes, empty videos, checkpoints, training, operation counts."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

import losses
import model_zoo
import utils
import vlad_models

# rgb 6 + audio 2: with expansion 2 and 4 groups both widths split evenly.
CONFIG = tiny_config(
    num_classes=5,
    feature_names="rgb,audio",
    feature_sizes="6,2",
    cluster_size=4,
    hidden_size=8,
    groups=4,
    dropout=0.0,
)
CLUSTER_MODELS = ["NetVLADModel", "NeXtVLADModel", "DbofModel"]


def random_video(rng, batch, frames):
    return rng.integers(0, 256, size=(batch, frames, CONFIG.feature_size), dtype=np.uint8)


def build(model_name, **overrides):
    return model_zoo.build_model(CONFIG.replace(model=model_name, **overrides))


@pytest.mark.parametrize("model_name", CLUSTER_MODELS)
def test_padding_adds_nothing_and_an_empty_video_is_finite(model_name):
    rng = np.random.default_rng(0)
    model = build(model_name)
    video = random_video(rng, 3, 7)
    num_frames = np.array([7, 3, 0], np.int32)
    reference = model(video, num_frames=num_frames)
    padded = np.concatenate([video, random_video(rng, 3, 5)], axis=1)
    padded[1, 3:] = 255
    padded[2] = rng.integers(0, 256, size=padded[2].shape)
    changed = model(padded, num_frames=num_frames)
    for key in ("predictions", "logits", "representation"):
        np.testing.assert_allclose(changed[key], reference[key], atol=1e-5)
        assert np.isfinite(reference[key]).all()
    assert reference["predictions"].shape == (3, 5)
    assert reference["representation"].shape == (3, 8)
    np.testing.assert_allclose(reference["predictions"], tf.sigmoid(reference["logits"]), atol=1e-6)
    only_empty = model(np.zeros((2, 0, CONFIG.feature_size), np.uint8), num_frames=[0, 0])
    np.testing.assert_allclose(only_empty["logits"][0], reference["logits"][2], atol=1e-5)


@pytest.mark.parametrize("model_name", CLUSTER_MODELS)
def test_checkpoint_round_trip_and_a_few_training_steps(model_name, tmp_path):
    rng = np.random.default_rng(1)
    video, num_frames = random_video(rng, 8, 6), rng.integers(1, 7, size=8).astype(np.int32)
    labels = rng.integers(0, 2, size=(8, 5)).astype(np.float32)
    model = build(model_name)
    optimizer = tf.keras.optimizers.Adam(0.05)
    loss_fn = losses.CrossEntropyLoss()

    def step():
        with tf.GradientTape() as tape:
            outputs = model(video, num_frames=num_frames, training=True)
            loss = loss_fn.calculate_loss(outputs["predictions"], labels, logits=outputs["logits"])
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return float(loss)

    first = step()
    for _ in range(15):
        last = step()
    assert last < first
    expected = model(video, num_frames=num_frames)["predictions"]
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = build(model_name)
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored(video, num_frames=num_frames)["predictions"], expected)


def test_netvlad_aggregates_residuals_to_the_centres():
    """One cluster, one feature: the aggregate is the normalized sum of x - c over the frames."""
    pooling = vlad_models.NetVLAD(feature_size=3, cluster_size=1)
    frames = np.array([[[1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [9.0, 9.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False]])
    aggregate = pooling(frames, mask).numpy()[0]
    center = pooling.centers.numpy()[:, 0]
    residual = frames[0, 0] + frames[0, 1] - 2 * center
    np.testing.assert_allclose(aggregate, residual / np.linalg.norm(residual), atol=1e-5)


def test_nextvlad_groups_must_divide_the_expanded_width():
    with pytest.raises(utils.UserInputError, match="--groups=3 does not divide"):
        CONFIG.replace(model="NeXtVLADModel", groups=3)


def test_published_sizes_are_the_defaults():
    published = tiny_config(model="NeXtVLADModel")
    assert (published.cluster_size, published.hidden_size, published.classifier) == (
        128,
        2048,
        "moe",
    )
    assert tiny_config(model="NetVLADModel").cluster_size == 256
    assert tiny_config(model="DbofModel").cluster_size == 8192
    assert tiny_config(model="HierarchicalTeacherModel").classifier == "logistic"
    assert tiny_config(model="NeXtVLADModel", classifier="logistic").classifier == "logistic"


def test_operation_counts_of_the_built_models():
    """NeXtVLAD at the published sizes (rgb 1024 + audio 128): expansion, attention, assignment
    and residual sum per frame; the hidden layer and gating once per video."""
    config = tiny_config(model="NeXtVLADModel", num_classes=10)
    model = model_zoo.build_model(config)
    per_frame, fixed = model.flops(1)
    rgb = 2 * (1024 * 2048 + 2048 * 8 + 2048 * 8 * 128 + 8 * 256 * 128)
    audio = 2 * (128 * 256 + 256 * 8 + 256 * 8 * 64 + 8 * 32 * 64)
    assert per_frame == rgb + audio
    assert model.flops(30)[0] == 30 * per_frame
    hidden = 2 * (256 * 128 + 32 * 64) * 2048
    gating = 2 * 2 * 2048 * 256
    moe = 2 * 2048 * 10 * (2 + 1) + 2 * 2048 * 10 * 2
    assert fixed == hidden + gating + moe
