"""Tests for mean_average_precision_calculator: worked examples and a per-class reference."""

import numpy as np
import pytest
from reference_metrics import brute_force_ap

from mean_average_precision_calculator import MeanAveragePrecisionCalculator

TOL = 1e-9


def brute_force_column_aps(score_batches, label_batches, top_n):
    """Per-class AP of dense `[num_videos, num_classes]` batches, one class at a time."""
    scores = np.concatenate(score_batches)
    labels = np.concatenate(label_batches)
    return [
        brute_force_ap(scores[:, c].tolist(), labels[:, c].tolist(), n=top_n)
        for c in range(scores.shape[1])
    ]


def test_class_major_worked_example():
    # Class 0: ranked 0.9 (pos), 0.8 (neg), 0.7 (pos) -> (1/1 + 2/3) / 2 = 5/6.
    # Class 1: ranked 0.6 (neg), 0.3 (pos) -> (1/2) / 1 = 1/2.
    calculator = MeanAveragePrecisionCalculator(num_class=2)
    calculator.accumulate([[0.9, 0.8, 0.7], [0.3, 0.6]], [[1, 0, 1], [1, 0]])
    np.testing.assert_allclose(calculator.peek_map_at_n(), [5 / 6, 1 / 2], atol=TOL)


def test_dense_worked_example_equals_class_major():
    # The same data as above laid out [num_videos, num_classes]; class 1 has no third video,
    # so give it a negative with the lowest score, which does not change its AP.
    scores = np.array([[0.9, 0.3], [0.8, 0.6], [0.7, 0.0]])
    labels = np.array([[1, 1], [0, 0], [1, 0]])
    calculator = MeanAveragePrecisionCalculator(num_class=2)
    calculator.accumulate(scores, labels)
    np.testing.assert_allclose(calculator.peek_map_at_n(), [5 / 6, 1 / 2], atol=TOL)


def test_filter_empty_classes():
    # Class 1 has no positives: dropped by default, reported as 0.0 otherwise.
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6]])
    labels = np.array([[1, 0, 0], [0, 0, 1]])
    # Class 0: ranked 0.9 (pos), 0.2 (neg) -> 1.0. Class 2: ranked 0.6 (pos), 0.1 -> 1.0.
    filtered = MeanAveragePrecisionCalculator(num_class=3)
    filtered.accumulate(scores, labels)
    np.testing.assert_allclose(filtered.peek_map_at_n(), [1.0, 1.0], atol=TOL)
    unfiltered = MeanAveragePrecisionCalculator(num_class=3, filter_empty_classes=False)
    unfiltered.accumulate(scores, labels)
    np.testing.assert_allclose(unfiltered.peek_map_at_n(), [1.0, 0.0, 1.0], atol=TOL)


def test_num_positives_argument():
    # Class 0: one positive at rank 1 but 4 positives in truth -> 1/4. Class 1: 2 of 2 -> 1.
    calculator = MeanAveragePrecisionCalculator(num_class=2)
    calculator.accumulate([[0.9, 0.1], [0.8, 0.7]], [[1, 0], [1, 1]], num_positives=[4, 2])
    np.testing.assert_allclose(calculator.peek_map_at_n(), [0.25, 1.0], atol=TOL)
    np.testing.assert_array_equal(calculator.num_accumulated_positives, [4, 2])


def test_top_n_ties_keep_earlier_videos():
    # One class, four equal scores, labels neg, pos, pos, pos, top_n=2: the first two videos
    # stay and rank in video order -> AP@2 = (1/2) / min(3, 2) = 0.25, dense or class-major.
    dense = MeanAveragePrecisionCalculator(num_class=2, filter_empty_classes=False, top_n=2)
    dense.accumulate(np.array([[0.5, 0.0]] * 4), np.array([[0, 0], [1, 0], [1, 0], [1, 0]]))
    class_major = MeanAveragePrecisionCalculator(num_class=2, filter_empty_classes=False, top_n=2)
    class_major.accumulate([[0.5] * 4, [0.0] * 4], [[0, 1, 1, 1], [0] * 4])
    np.testing.assert_allclose(dense.peek_map_at_n(), [0.25, 0.0], atol=TOL)
    np.testing.assert_allclose(class_major.peek_map_at_n(), [0.25, 0.0], atol=TOL)


@pytest.mark.parametrize("top_n", [None, 1, 5, 40, 1000])
def test_dense_batches_match_brute_force(top_n):
    rng = np.random.default_rng(10 + (top_n or 0))
    num_class = 13
    calculator = MeanAveragePrecisionCalculator(num_class, filter_empty_classes=False, top_n=top_n)
    score_batches, label_batches = [], []
    for num_videos in [50, 1, 120, 33]:
        scores = rng.random((num_videos, num_class))
        labels = (rng.random((num_videos, num_class)) < 0.15).astype(np.float32)
        calculator.accumulate(scores, labels)
        score_batches.append(scores)
        label_batches.append(labels)
    expected = brute_force_column_aps(score_batches, label_batches, top_n)
    np.testing.assert_allclose(calculator.peek_map_at_n(), expected, atol=TOL)
    assert not calculator.is_empty()


@pytest.mark.parametrize("top_n", [None, 3, 25])
def test_ragged_class_major_batches_match_brute_force(top_n):
    rng = np.random.default_rng(99 + (top_n or 0))
    num_class = 7
    calculator = MeanAveragePrecisionCalculator(num_class, top_n=top_n)
    per_class = [([], []) for _ in range(num_class)]
    for _ in range(3):
        lengths = rng.integers(0, 40, size=num_class)
        scores = [rng.random(n) for n in lengths]
        labels = [(rng.random(n) < 0.3).astype(int) for n in lengths]
        calculator.accumulate(scores, labels)
        for c in range(num_class):
            per_class[c][0].extend(scores[c].tolist())
            per_class[c][1].extend(labels[c].tolist())
    expected = [
        brute_force_ap(s, a, n=top_n) for s, a in per_class if any(label > 0 for label in a)
    ]
    np.testing.assert_allclose(calculator.peek_map_at_n(), expected, atol=TOL)


@pytest.mark.parametrize("decimals", [None, 2])
def test_sparse_triplets_with_trimming_match_brute_force(decimals):
    # 2 x 70,000 triplets over 10 classes with top_n=30: the buffer is trimmed to each class's
    # top 30 along the way, which must not change the result. With decimals=2 the scores have
    # many ties, which must keep ranking in arrival order through the trims.
    rng = np.random.default_rng(5)
    num_class, top_n = 10, 30
    calculator = MeanAveragePrecisionCalculator(num_class, top_n=top_n)
    classes, scores, labels = [], [], []
    for _ in range(2):
        batch_classes = rng.integers(0, num_class, size=70_000)
        batch_scores = rng.random(70_000)
        if decimals is not None:
            batch_scores = np.round(batch_scores, decimals)
        batch_labels = (batch_scores + rng.random(70_000) > 1.6).astype(int)
        extra_positives = rng.integers(0, 3, size=num_class)
        calculator.accumulate_sparse(
            batch_classes,
            batch_scores,
            batch_labels,
            np.bincount(batch_classes[batch_labels > 0], minlength=num_class) + extra_positives,
        )
        classes.append(batch_classes)
        scores.append(batch_scores)
        labels.append(batch_labels)
        assert calculator._num_stored <= 2 * 70_000
    classes, scores, labels = map(np.concatenate, (classes, scores, labels))
    expected = [
        brute_force_ap(
            scores[classes == c].tolist(),
            labels[classes == c].tolist(),
            n=top_n,
            num_positives=calculator.num_accumulated_positives[c],
        )
        for c in range(num_class)
    ]
    assert calculator._num_stored == num_class * top_n  # trimmed after the second batch
    np.testing.assert_allclose(calculator.peek_map_at_n(), expected, atol=TOL)


def test_clear_and_is_empty():
    calculator = MeanAveragePrecisionCalculator(num_class=2)
    assert calculator.is_empty()
    assert calculator.peek_map_at_n() == []
    calculator.accumulate(np.array([[0.1, 0.2]]), np.array([[1, 0]]))
    assert not calculator.is_empty()
    calculator.clear()
    assert calculator.is_empty()
    assert calculator.peek_map_at_n() == []


@pytest.mark.parametrize("num_class", [1, 0, 2.0, True])
def test_invalid_num_class(num_class):
    with pytest.raises(ValueError):
        MeanAveragePrecisionCalculator(num_class)


def test_invalid_inputs():
    calculator = MeanAveragePrecisionCalculator(num_class=3)
    with pytest.raises(ValueError):  # dense, wrong number of classes
        calculator.accumulate(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):  # dense, shapes differ
        calculator.accumulate(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError):  # class-major, wrong number of classes
        calculator.accumulate([[0.1], [0.2]], [[1], [0]])
    with pytest.raises(ValueError):  # class-major, per-class lengths differ
        calculator.accumulate([[0.1], [0.2], [0.3, 0.4]], [[1], [0], [1]])
    with pytest.raises(ValueError):
        calculator.accumulate_sparse([0, 3], [0.1, 0.2], [1, 0])
    with pytest.raises(ValueError):
        calculator.accumulate_sparse([0, 1], [0.1, 0.2], [1, 0], num_positives=[1, -1, 0])
    with pytest.raises(ValueError):
        MeanAveragePrecisionCalculator(num_class=3, top_n=0)
