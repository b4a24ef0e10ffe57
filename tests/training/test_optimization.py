"""Tests of optimization.py: the learning-rate schedule (the update itself, with loss scaling
and replicas, is tested in test_distribution.py)."""

import numpy as np

from runs import config
from training import optimization


def test_learning_rate_decays_in_steps_of_examples():
    options = config.TrainOptions(
        batch_size=100,
        base_learning_rate=0.01,
        learning_rate_decay=0.5,
        learning_rate_decay_examples=1000,
    )
    schedule = optimization.make_learning_rate(options)
    rates = [float(schedule(step)) for step in (0, 9, 10, 19, 20)]
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.005, 0.005, 0.0025], rtol=1e-6)
