"""Tests of unrolled_lstm.py and cpu_inference.py: the unrolled LSTMs give the Keras loop's
outputs, every sequence or only those present, on real videos, empty ones and a batch of only
empty ones; the CPU's input options."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import FRAME_SAMPLE, tiny_config

import model_zoo
import readers
from runs import config, distribution
from serving import cpu_inference, unrolled_lstm

SAMPLE = str(FRAME_SAMPLE / "*.tfrecord")


@pytest.mark.parametrize(
    "overrides",
    [{"lstm_layers": 2}, {"model": config.STUDENT_MODEL, "frame_stride": 3, "block_size": 3}],
    ids=["teacher", "student"],
)
def test_the_unrolled_lstms_give_the_keras_loops_outputs(overrides):
    run_config = tiny_config(num_classes=30, **overrides)
    model = model_zoo.build_model(run_config)
    dataset, _ = readers.reader_for(run_config, check_labels=False).make_dataset(SAMPLE, 12)
    batch = next(iter(dataset))
    video_matrix = batch["video_matrix"].numpy()
    num_frames = batch["num_frames"].numpy()
    num_frames[[2, 5]] = 0  # empty videos among the others
    batches = [(video_matrix, num_frames), (video_matrix[:3], np.zeros(3, np.int32))]
    keras = distribution.predict_on_replicas(None, model)
    unrolled = cpu_inference.predict_function(model, distribution.predict_on_replicas(None, model))
    for matrix, counts in batches:
        expected = keras(tf.constant(matrix), tf.constant(counts))["predictions"].numpy()
        for _ in range(2):  # traced unrolled at the first call, and kept
            scores = unrolled(tf.constant(matrix), tf.constant(counts))["predictions"].numpy()
            np.testing.assert_allclose(scores, expected, atol=1e-6)
        with unrolled_lstm.unrolled_lstms(model):  # every sequence, as in a LiteRT model
            every = model(matrix, num_frames=counts, training=False)
        np.testing.assert_allclose(every["predictions"].numpy(), expected, atol=1e-6)
    # Outside the block the model is its own again.
    plain = model(video_matrix, num_frames=num_frames, training=False)["predictions"].numpy()
    np.testing.assert_allclose(plain, keras(video_matrix, num_frames)["predictions"], atol=1e-7)


def test_the_cpu_input_has_no_autotuning():
    dataset = cpu_inference.input_dataset(tf.data.Dataset.range(3))
    assert not dataset.options().autotune.enabled and list(dataset.as_numpy_iterator()) == [0, 1, 2]
