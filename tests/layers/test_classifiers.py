"""Tests of layers/classifiers.py: the logistic and mixture-of-experts output layers."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

import model_zoo
import utils
from layers import classifiers


def test_the_mixture_is_the_gated_sum_of_its_experts():
    layer = classifiers.MixtureOfExperts(num_classes=3, num_mixtures=2, l2_penalty=0.0)
    representation = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    logits = layer(representation).numpy()
    gates = layer.gates(representation).numpy().reshape(4, 3, 3)
    experts = layer.experts(representation).numpy().reshape(4, 3, 2)
    gates = np.exp(gates) / np.exp(gates).sum(-1, keepdims=True)
    expected = (gates[..., :2] / (1 + np.exp(-experts))).sum(-1)
    np.testing.assert_allclose(tf.sigmoid(logits), expected, rtol=1e-5)
    assert np.isfinite(layer(1e4 * representation).numpy()).all()  # clipped, never infinite


def test_any_model_takes_the_mixture_by_flag():
    config = tiny_config(num_classes=4, classifier="moe", moe_num_mixtures=3)
    model = model_zoo.build_model(config)
    assert isinstance(model.classifier, classifiers.MixtureOfExperts)
    assert model.classifier.experts.kernel.shape == (8, 4 * 3)
    video = np.random.default_rng(1).integers(0, 256, size=(2, 6, 1152), dtype=np.uint8)
    outputs = model(video, num_frames=np.array([6, 2], np.int32))
    assert outputs["predictions"].shape == (2, 4)
    assert model.classifier_flops(8) == 2 * 8 * 4 * (3 + 1) + 2 * 8 * 4 * 3
    with pytest.raises(utils.UserInputError, match="--moe_num_mixtures=0"):
        config.replace(moe_num_mixtures=0)
    with pytest.raises(utils.UserInputError, match="--classifier=svm"):
        config.replace(classifier="svm")
