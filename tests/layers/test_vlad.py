"""Tests of layers/vlad.py: the residual aggregate of NetVLAD, by hand."""

import numpy as np

from layers import vlad


def test_netvlad_aggregates_residuals_to_the_centres():
    """One cluster, one feature: the aggregate is the normalized sum of x - c over the frames."""
    pooling = vlad.NetVLAD(feature_size=3, cluster_size=1)
    frames = np.array([[[1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [9.0, 9.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False]])
    aggregate = pooling(frames, mask).numpy()[0]
    center = pooling.centers.numpy()[:, 0]
    residual = frames[0, 0] + frames[0, 1] - 2 * center
    np.testing.assert_allclose(aggregate, residual / np.linalg.norm(residual), atol=1e-5)
