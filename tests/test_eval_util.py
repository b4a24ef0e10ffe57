"""Tests for eval_util: worked examples, plain-Python references, batching invariance, scale."""

import numpy as np
import pytest
from reference_metrics import brute_force_ap

import eval_util

TOL = 1e-9


def brute_force_top_k(row_scores, k):
    """Class indices of a video's k best scores (ties: lower class index first)."""
    return sorted(range(len(row_scores)), key=lambda c: -row_scores[c])[:k]


def brute_force_gap(predictions, labels, top_k=20):
    """Pool every video's top_k (score, label) pairs; AP over all of the batch's positives."""
    pairs = []
    for row_scores, row_labels in zip(predictions.tolist(), labels.tolist(), strict=True):
        pairs.extend((row_scores[c], row_labels[c]) for c in brute_force_top_k(row_scores, top_k))
    scores, pair_labels = zip(*pairs, strict=True) if pairs else ((), ())
    return brute_force_ap(list(scores), list(pair_labels), num_positives=int((labels > 0).sum()))


def brute_force_perr(predictions, labels):
    """Mean over videos of precision in the top L (L = number of labels; 0.0 when L = 0)."""
    values = []
    for row_scores, row_labels in zip(predictions.tolist(), labels.tolist(), strict=True):
        num_labels = sum(1 for label in row_labels if label > 0)
        top = brute_force_top_k(row_scores, num_labels)
        hits = sum(1 for c in top if row_labels[c] > 0 and row_scores[c] > 0)
        values.append(hits / num_labels if num_labels else 0.0)
    return sum(values) / len(values)


def brute_force_class_aps(predictions, labels, top_k, top_n):
    """Per-class AP@top_n over each video's top_k, for classes that have positives."""
    aps = []
    for c in range(predictions.shape[1]):
        num_positives = int((labels[:, c] > 0).sum())
        if num_positives == 0:
            continue
        pairs = [
            (predictions[v, c], labels[v, c])
            for v in range(predictions.shape[0])
            if c in brute_force_top_k(predictions[v].tolist(), top_k)
        ]
        scores, pair_labels = zip(*pairs, strict=True) if pairs else ((), ())
        aps.append(
            brute_force_ap(list(scores), list(pair_labels), n=top_n, num_positives=num_positives)
        )
    return aps


def random_batch(rng, num_videos, num_classes, label_rate=0.1):
    """Continuous random scores (no ties) and sparse labels that correlate with them."""
    labels = (rng.random((num_videos, num_classes)) < label_rate).astype(np.float32)
    predictions = rng.random((num_videos, num_classes)) + 0.5 * labels * rng.random(labels.shape)
    return predictions, labels


def test_flatten():
    assert eval_util.flatten([[1, 2], [], [3]]) == [1, 2, 3]


def test_hit_at_one_worked_example():
    # Video 0's top class (1) is a label; video 1's top class (0) is not -> 1/2.
    predictions = np.array([[0.1, 0.9, 0.3], [0.8, 0.1, 0.2]])
    labels = np.array([[0, 1, 0], [0, 0, 1]])
    assert eval_util.calculate_hit_at_one(predictions, labels) == pytest.approx(0.5, abs=TOL)


def test_perr_worked_example_with_zero_label_video():
    predictions = np.array(
        [
            [0.9, 0.8, 0.1, 0.7],  # labels {0, 2}: top 2 = {0, 1} -> 1 hit of 2 = 0.5
            [0.1, 0.2, 0.3, 0.4],  # label {3}: top 1 = {3} -> 1.0
            [0.4, 0.3, 0.2, 0.1],  # no labels -> 0.0, still counted in the mean
        ]
    )
    labels = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    perr = eval_util.calculate_precision_at_equal_recall_rate(predictions, labels)
    assert perr == pytest.approx((0.5 + 1.0 + 0.0) / 3, abs=TOL)
    assert (
        eval_util.calculate_precision_at_equal_recall_rate(np.zeros((1, 3)), np.zeros((1, 3))) == 0
    )


def test_perr_ignores_non_positive_scores():
    # As the starter, a top-L class with score <= 0 is not a hit, even if it is a label.
    predictions = np.array([[-0.1, -0.2], [0.0, -1.0]])
    labels = np.array([[1, 0], [1, 0]])
    assert eval_util.calculate_precision_at_equal_recall_rate(predictions, labels) == 0.0


def test_gap_worked_example():
    # top_k=2. Video A keeps 0.9 (pos), 0.6 (neg); video B keeps 0.8 (neg), 0.5 (pos).
    # Pool ranked: 0.9+, 0.8-, 0.6-, 0.5+ -> precisions 1/1 and 2/4.
    predictions = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.5]])
    labels = np.array([[1, 0, 0], [0, 0, 1]])
    # 2 positives in all: (1 + 1/2) / 2 = 0.75.
    assert eval_util.calculate_gap(predictions, labels, top_k=2) == pytest.approx(0.75, abs=TOL)
    # Add a positive outside A's top 2 (class 1, score 0.2): it is missed but still counts in the
    # denominator: (1 + 1/2) / 3 = 0.5.
    labels[0, 1] = 1
    assert eval_util.calculate_gap(predictions, labels, top_k=2) == pytest.approx(0.5, abs=TOL)


def test_gap_without_positives_is_zero():
    assert eval_util.calculate_gap(np.random.default_rng(0).random((4, 5)), np.zeros((4, 5))) == 0


def test_top_k_by_class_worked_example():
    predictions = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.5]])
    labels = np.array([[1, 1, 0], [0, 0, 1]])
    class_predictions, class_labels, class_positives = eval_util.top_k_by_class(
        predictions, labels, k=2
    )
    # Video 0 keeps classes 0 and 2; video 1 keeps classes 1 and 2.
    assert [p.tolist() for p in class_predictions] == [[0.9], [0.8], [0.6, 0.5]]
    assert [a.tolist() for a in class_labels] == [[1], [0], [0, 1]]
    assert class_positives.tolist() == [1, 1, 1]
    with pytest.raises(ValueError):
        eval_util.top_k_by_class(predictions, labels, k=0)


def test_top_k_by_class_matches_brute_force():
    rng = np.random.default_rng(3)
    predictions, labels = random_batch(rng, 40, 25)
    class_predictions, class_labels, class_positives = eval_util.top_k_by_class(
        predictions, labels, k=6
    )
    for c in range(25):
        videos = [v for v in range(40) if c in brute_force_top_k(predictions[v].tolist(), 6)]
        np.testing.assert_array_equal(class_predictions[c], predictions[videos, c])
        np.testing.assert_array_equal(class_labels[c], labels[videos, c])
    np.testing.assert_array_equal(class_positives, labels.sum(axis=0))
    # k larger than the number of classes keeps everything.
    everything, _, _ = eval_util.top_k_by_class(predictions, labels, k=100)
    assert sum(len(p) for p in everything) == 40 * 25


@pytest.mark.parametrize("seed", range(4))
def test_batch_functions_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    predictions, labels = random_batch(rng, 60, 30)
    predictions[rng.random(predictions.shape) < 0.1] *= -1  # some non-positive scores
    labels[0] = 0  # a video without labels
    top_k = [20, 1, 5, 50][seed]
    assert eval_util.calculate_gap(predictions, labels, top_k=top_k) == pytest.approx(
        brute_force_gap(predictions, labels, top_k), abs=TOL
    )
    assert eval_util.calculate_precision_at_equal_recall_rate(predictions, labels) == pytest.approx(
        brute_force_perr(predictions, labels), abs=TOL
    )
    expected_hits = np.mean([labels[v, np.argmax(predictions[v])] > 0 for v in range(60)])
    assert eval_util.calculate_hit_at_one(predictions, labels) == pytest.approx(
        expected_hits, abs=TOL
    )


@pytest.mark.parametrize("top_n", [None, 4])
def test_evaluation_metrics_match_brute_force(top_n):
    rng = np.random.default_rng(21)
    predictions, labels = random_batch(rng, 90, 15, label_rate=0.15)
    metrics = eval_util.EvaluationMetrics(num_class=15, top_k=5, top_n=top_n)
    metrics.accumulate(predictions, labels, loss=0.25)
    result = metrics.get()
    assert result["gap"] == pytest.approx(brute_force_gap(predictions, labels, 5), abs=TOL)
    expected_aps = brute_force_class_aps(predictions, labels, top_k=5, top_n=top_n)
    np.testing.assert_allclose(result["aps"], expected_aps, atol=TOL)
    assert result["map"] == pytest.approx(np.mean(expected_aps), abs=TOL)
    assert result["avg_perr"] == pytest.approx(brute_force_perr(predictions, labels), abs=TOL)
    assert result["avg_loss"] == pytest.approx(0.25, abs=TOL)
    assert result["num_examples"] == 90


@pytest.mark.parametrize("top_n", [None, 7])
def test_evaluation_metrics_three_batches_equal_one_batch(top_n):
    rng = np.random.default_rng(8)
    predictions, labels = random_batch(rng, 300, 40)
    losses = [0.3, 0.7, 1.1]
    split = [0, 70, 71, 300]  # uneven batches, one of a single video
    batched = eval_util.EvaluationMetrics(num_class=40, top_k=20, top_n=top_n)
    for i in range(3):
        rows = slice(split[i], split[i + 1])
        batch_result = batched.accumulate(predictions[rows], labels[rows], losses[i])
        assert batch_result["hit_at_one"] == pytest.approx(
            eval_util.calculate_hit_at_one(predictions[rows], labels[rows]), abs=TOL
        )
        assert batch_result["perr"] == pytest.approx(
            eval_util.calculate_precision_at_equal_recall_rate(predictions[rows], labels[rows]),
            abs=TOL,
        )
        assert batch_result["gap"] == pytest.approx(
            eval_util.calculate_gap(predictions[rows], labels[rows], top_k=20), abs=TOL
        )
        assert batch_result["loss"] == pytest.approx(losses[i], abs=TOL)
    whole = eval_util.EvaluationMetrics(num_class=40, top_k=20, top_n=top_n)
    whole.accumulate(predictions, labels, 0.0)
    got, want = batched.get(), whole.get()
    for key in ["avg_hit_at_one", "avg_perr", "gap", "map"]:
        assert got[key] == pytest.approx(want[key], abs=TOL), key
    np.testing.assert_allclose(got["aps"], want["aps"], atol=TOL)
    assert got["num_examples"] == want["num_examples"] == 300
    expected_loss = (0.3 * 70 + 0.7 * 1 + 1.1 * 229) / 300  # example-weighted
    assert got["avg_loss"] == pytest.approx(expected_loss, abs=TOL)
    # The pooled GAP is the GAP of everything at once, not a mean of batch GAPs.
    assert got["gap"] == pytest.approx(brute_force_gap(predictions, labels, 20), abs=TOL)


def test_evaluation_metrics_get_and_clear():
    metrics = eval_util.EvaluationMetrics(num_class=3, top_k=2, top_n=None)
    with pytest.raises(ValueError):
        metrics.get()
    # The data of test_gap_worked_example (GAP 0.75).
    predictions = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.5]])
    labels = np.array([[1, 0, 0], [0, 0, 1]])
    metrics.accumulate(predictions, labels, np.array([0.5, 1.5]))  # an array loss is averaged
    result = metrics.get()
    assert result["gap"] == pytest.approx(0.75, abs=TOL)
    # Class 0: kept scores 0.9 (pos) -> 1.0. Class 2: 0.6 (neg), 0.5 (pos) -> 1/2. Class 1 has
    # no positives and is left out. mAP = 0.75.
    np.testing.assert_allclose(result["aps"], [1.0, 0.5], atol=TOL)
    assert result["map"] == pytest.approx(0.75, abs=TOL)
    assert result["avg_hit_at_one"] == pytest.approx(0.5, abs=TOL)
    assert result["avg_loss"] == pytest.approx(1.0, abs=TOL)
    metrics.clear()
    with pytest.raises(ValueError):
        metrics.get()
    metrics.accumulate(predictions[:1], labels[:1], 0.0)
    assert metrics.get()["num_examples"] == 1
    assert metrics.get()["gap"] == pytest.approx(1.0, abs=TOL)


def test_evaluation_metrics_at_youtube8m_scale():
    """20,000 videos x 3862 classes in 20 batches: must stay fast (no per-video Python loops)."""
    rng = np.random.default_rng(0)
    num_classes, batch_size = 3862, 1000
    metrics = eval_util.EvaluationMetrics(num_class=num_classes, top_k=20, top_n=None)
    for _ in range(20):
        predictions = rng.random((batch_size, num_classes), dtype=np.float32)
        labels = (rng.random((batch_size, num_classes), dtype=np.float32) < 3 / num_classes).astype(
            np.float32
        )
        predictions += 0.5 * labels  # some signal, so the metrics are not at chance level
        metrics.accumulate(predictions, labels, 0.1)
    result = metrics.get()
    assert result["num_examples"] == 20_000
    assert len(result["aps"]) > 3000
    for key in ["gap", "map", "avg_hit_at_one", "avg_perr"]:
        assert 0.0 < result[key] < 1.0, key
