"""Tests of the frame-level models: output contract, padding masks, block structure; the
cluster-and-aggregate models (NetVLAD, NeXtVLAD, DBoF): masking, empty videos, checkpoints,
training, published sizes, operation counts."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

import losses
import model_zoo
import utils
from layers import recurrent

CONFIG = tiny_config(
    num_classes=7, feature_names="rgb", feature_sizes="6", lstm_layers=2, dropout=0.5, block_size=4
)
FRAME_MODELS = ["HierarchicalTeacherModel", "LstmModel", "FrameLevelLogisticModel"]


def random_video(rng, batch, frames):
    return rng.integers(0, 256, size=(batch, frames, CONFIG.feature_size), dtype=np.uint8)


@pytest.mark.parametrize("model_name", FRAME_MODELS)
def test_padding_frames_do_not_change_the_output(model_name):
    rng = np.random.default_rng(0)
    model = model_zoo.build_model(CONFIG.replace(model=model_name))
    video = random_video(rng, 3, 10)
    num_frames = np.array([10, 6, 1], np.int32)
    reference = model(video, num_frames=num_frames)
    # Longer padding, filled with garbage rather than zeros.
    padded = np.concatenate([video, random_video(rng, 3, 9)], axis=1)
    padded[1, 6:] = rng.integers(0, 256, size=padded[1, 6:].shape)
    padded[2, 1:] = 255
    changed = model(padded, num_frames=num_frames)
    for key in ("predictions", "representation"):
        np.testing.assert_allclose(changed[key], reference[key], atol=1e-6)
    if "frame_outputs" in reference:
        for row, count in enumerate(num_frames):
            np.testing.assert_allclose(
                changed["frame_outputs"][row, :count],
                reference["frame_outputs"][row, :count],
                atol=1e-6,
            )


@pytest.mark.parametrize("model_name", FRAME_MODELS)
def test_output_contract_and_empty_video(model_name):
    rng = np.random.default_rng(1)
    model = model_zoo.build_model(CONFIG.replace(model=model_name))
    outputs = model(random_video(rng, 2, 9), num_frames=np.array([9, 0], np.int32))
    assert outputs["predictions"].shape == (2, 7)
    assert outputs["logits"].shape == (2, 7)
    np.testing.assert_allclose(outputs["predictions"], tf.sigmoid(outputs["logits"]), atol=1e-6)
    # A video with no frames: zero representation, so the prediction is the output bias.
    np.testing.assert_array_equal(outputs["representation"][1], 0.0)
    bias = model.classifier.bias.numpy()
    np.testing.assert_allclose(outputs["logits"][1], bias, atol=1e-6)


def test_teacher_shapes_follow_the_config():
    rng = np.random.default_rng(2)
    model = model_zoo.build_model(CONFIG.replace(model="HierarchicalTeacherModel"))
    outputs = model(random_video(rng, 2, 11), num_frames=np.array([11, 5], np.int32))
    assert outputs["representation"].shape == (2, CONFIG.lstm_layers * CONFIG.lstm_cells)
    assert outputs["frame_outputs"].shape == (2, 11, CONFIG.lstm_cells)


def test_teacher_blocks_are_encoded_independently():
    """Changing frames of block 2 leaves the lower encodings of blocks 1 and 3 unchanged."""
    rng = np.random.default_rng(3)
    encoder = recurrent.HierarchicalEncoder(block_size=4, lstm_cells=8, lstm_layers=2)
    frames = rng.normal(size=(1, 12, 6)).astype(np.float32)
    num_frames = np.array([12], np.int32)
    reference = encoder(frames, num_frames)
    changed_frames = frames.copy()
    changed_frames[0, 4:8] += 1.0
    changed = encoder(changed_frames, num_frames)
    blocks, changed_blocks = reference["block_encodings"], changed["block_encodings"]
    np.testing.assert_allclose(changed_blocks[0, 0], blocks[0, 0], atol=1e-6)
    np.testing.assert_allclose(changed_blocks[0, 2], blocks[0, 2], atol=1e-6)
    assert np.abs(changed_blocks[0, 1] - blocks[0, 1]).max() > 1e-4
    # The video representation sees every block.
    assert np.abs(changed["representation"] - reference["representation"]).max() > 1e-4


def test_dropout_only_in_training():
    rng = np.random.default_rng(4)
    model = model_zoo.build_model(CONFIG.replace(model="HierarchicalTeacherModel"))
    video, num_frames = random_video(rng, 4, 8), np.full(4, 8, np.int32)
    first = model(video, num_frames=num_frames, training=False)["predictions"]
    second = model(video, num_frames=num_frames, training=False)["predictions"]
    np.testing.assert_array_equal(first, second)
    trained = model(video, num_frames=num_frames, training=True)["predictions"]
    assert np.abs(trained - first).max() > 1e-6


def test_float_input_equals_dequantized_uint8():
    rng = np.random.default_rng(5)
    model = model_zoo.build_model(CONFIG.replace(model="HierarchicalTeacherModel"))
    video, num_frames = random_video(rng, 2, 8), np.array([8, 3], np.int32)
    as_float = video.astype(np.float32) * 4 / 255 + 4 / 512 - 2
    np.testing.assert_allclose(
        model(video, num_frames=num_frames)["predictions"],
        model(as_float, num_frames=num_frames)["predictions"],
        atol=1e-6,
    )


@pytest.mark.parametrize("model_name", FRAME_MODELS)
def test_checkpoint_round_trip_restores_every_weight(model_name, tmp_path):
    rng = np.random.default_rng(6)
    video, num_frames = random_video(rng, 2, 9), np.array([9, 4], np.int32)
    model = model_zoo.build_model(CONFIG.replace(model=model_name))
    expected = model(video, num_frames=num_frames)["predictions"]
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved_names = {name for name, _ in tf.train.list_variables(path)}
    saved_model_names = [name for name in saved_names if name.startswith("model/")]
    assert len(saved_model_names) == len(model.trainable_variables)

    restored = model_zoo.build_model(CONFIG.replace(model=model_name))
    restored(video, num_frames=num_frames)
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored(video, num_frames=num_frames)["predictions"], expected)


@pytest.mark.parametrize("model_name", FRAME_MODELS)
def test_batch_of_only_empty_videos(model_name):
    model = model_zoo.build_model(CONFIG.replace(model=model_name))
    video = np.zeros((2, 0, CONFIG.feature_size), np.uint8)
    outputs = model(video, num_frames=np.zeros(2, np.int32))
    assert outputs["predictions"].shape == (2, 7)
    np.testing.assert_allclose(outputs["logits"], np.tile(model.classifier.bias.numpy(), (2, 1)))


@pytest.mark.parametrize("model_name", FRAME_MODELS)
def test_frame_counts_beyond_the_matrix_are_clamped(model_name):
    rng = np.random.default_rng(8)
    model = model_zoo.build_model(CONFIG.replace(model=model_name))
    video = random_video(rng, 2, 10)
    exact = model(video, num_frames=np.array([10, 4], np.int32))["predictions"]
    overstated = model(video, num_frames=np.array([15, 4], np.int32))["predictions"]
    np.testing.assert_allclose(overstated, exact, atol=1e-6)


def test_stacked_lstm_skips_empty_sequences_exactly():
    """Running only non-empty sequences gives what running each alone gives."""
    rng = np.random.default_rng(9)
    stack = recurrent.StackedLSTM(units=5, num_layers=2)
    inputs = rng.normal(size=(4, 6, 3)).astype(np.float32)
    mask = np.array([[1] * 6, [0] * 6, [1, 1, 1, 0, 0, 0], [0] * 6]) > 0
    outputs, final_state = stack(inputs, mask=mask)
    assert not np.asarray(outputs[1]).any() and not np.asarray(final_state[3]).any()
    for row in (0, 2):
        alone_outputs, alone_state = stack(inputs[row : row + 1], mask=mask[row : row + 1])
        np.testing.assert_allclose(final_state[row], alone_state[0], atol=1e-6)
        np.testing.assert_allclose(outputs[row], alone_outputs[0], atol=1e-6)


# rgb 6 + audio 2: with expansion 2 and 4 groups both widths split evenly.
CLUSTER_CONFIG = tiny_config(
    num_classes=5,
    feature_names="rgb,audio",
    feature_sizes="6,2",
    cluster_size=4,
    hidden_size=8,
    groups=4,
    dropout=0.0,
)
CLUSTER_MODELS = ["NetVLADModel", "NeXtVLADModel", "DbofModel"]


def random_cluster_video(rng, batch, frames):
    return rng.integers(0, 256, size=(batch, frames, CLUSTER_CONFIG.feature_size), dtype=np.uint8)


def build_cluster_model(model_name, **overrides):
    return model_zoo.build_model(CLUSTER_CONFIG.replace(model=model_name, **overrides))


@pytest.mark.parametrize("model_name", CLUSTER_MODELS)
def test_cluster_models_padding_adds_nothing_and_an_empty_video_is_finite(model_name):
    rng = np.random.default_rng(0)
    model = build_cluster_model(model_name)
    video = random_cluster_video(rng, 3, 7)
    num_frames = np.array([7, 3, 0], np.int32)
    reference = model(video, num_frames=num_frames)
    padded = np.concatenate([video, random_cluster_video(rng, 3, 5)], axis=1)
    padded[1, 3:] = 255
    padded[2] = rng.integers(0, 256, size=padded[2].shape)
    changed = model(padded, num_frames=num_frames)
    for key in ("predictions", "logits", "representation"):
        np.testing.assert_allclose(changed[key], reference[key], atol=1e-5)
        assert np.isfinite(reference[key]).all()
    assert reference["predictions"].shape == (3, 5)
    assert reference["representation"].shape == (3, 8)
    np.testing.assert_allclose(reference["predictions"], tf.sigmoid(reference["logits"]), atol=1e-6)
    only_empty = model(np.zeros((2, 0, CLUSTER_CONFIG.feature_size), np.uint8), num_frames=[0, 0])
    np.testing.assert_allclose(only_empty["logits"][0], reference["logits"][2], atol=1e-5)


@pytest.mark.parametrize("model_name", CLUSTER_MODELS)
def test_cluster_models_checkpoint_round_trip_and_a_few_training_steps(model_name, tmp_path):
    rng = np.random.default_rng(1)
    video, num_frames = random_cluster_video(rng, 8, 6), rng.integers(1, 7, size=8).astype(np.int32)
    labels = rng.integers(0, 2, size=(8, 5)).astype(np.float32)
    model = build_cluster_model(model_name)
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
    restored = build_cluster_model(model_name)
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored(video, num_frames=num_frames)["predictions"], expected)


def test_nextvlad_groups_must_divide_the_expanded_width():
    with pytest.raises(utils.UserInputError, match="--groups=3 does not divide"):
        CLUSTER_CONFIG.replace(model="NeXtVLADModel", groups=3)


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


def test_operation_counts_of_dbof():
    """The projection of every frame; the hidden layer and the output layer once per video."""
    model = build_cluster_model("DbofModel", classifier="moe")  # 8 features, 4 clusters, hidden 8
    gates, experts = 2 * 8 * 5 * (2 + 1), 2 * 8 * 5 * 2  # 5 classes, 2 mixtures
    assert model.flops(7) == (7 * 2 * 8 * 4, 2 * 4 * 8 + gates + experts)
