"""Tests for average_precision_calculator: worked examples and a plain-Python reference."""

import numpy as np
import pytest
from reference_metrics import brute_force_ap

from average_precision_calculator import AveragePrecisionCalculator, top_k_mask

TOL = 1e-9


def test_ap_worked_example():
    # Ranked: 0.9 (pos), 0.8 (neg), 0.7 (pos). Precision at the positives: 1/1 and 2/3.
    # AP = (1/1 + 2/3) / 2 = 5/6.
    ap = AveragePrecisionCalculator.ap(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]))
    assert ap == pytest.approx(5 / 6, abs=TOL)


def test_ap_is_order_independent_and_accepts_lists():
    # Same items as above, given in another order and as Python lists.
    assert AveragePrecisionCalculator.ap([0.7, 0.9, 0.8], [1, 1, 0]) == pytest.approx(
        5 / 6, abs=TOL
    )


def test_ap_at_n_worked_example():
    # Ranked: 0.9 (neg), 0.7 (pos), 0.5 (pos), 0.1 (pos); 3 positives.
    # n=2: only ranks 1-2 count; precision at rank 2 is 1/2; denominator min(3, 2) = 2 -> 0.25.
    scores, labels = [0.1, 0.9, 0.5, 0.7], [1, 0, 1, 1]
    assert AveragePrecisionCalculator.ap_at_n(scores, labels, n=2) == pytest.approx(0.25, abs=TOL)
    # n=None: (1/2 + 2/3 + 3/4) / 3.
    expected = (1 / 2 + 2 / 3 + 3 / 4) / 3
    assert AveragePrecisionCalculator.ap_at_n(scores, labels, n=None) == pytest.approx(
        expected, abs=TOL
    )
    # n larger than the list behaves like the whole list.
    assert AveragePrecisionCalculator.ap_at_n(scores, labels, n=100) == pytest.approx(
        expected, abs=TOL
    )


def test_ap_at_n_with_total_num_positives():
    # Both items positive (precisions 1 and 1) but 4 positives exist in total: (1 + 1) / 4.
    ap = AveragePrecisionCalculator.ap_at_n([0.9, 0.8], [1, 1], n=None, total_num_positives=4)
    assert ap == pytest.approx(0.5, abs=TOL)
    # With n=3 the denominator is min(4, 3) = 3.
    ap = AveragePrecisionCalculator.ap_at_n([0.9, 0.8], [1, 1], n=3, total_num_positives=4)
    assert ap == pytest.approx(2 / 3, abs=TOL)


def test_no_positives_gives_zero():
    assert AveragePrecisionCalculator.ap([0.3, 0.2], [0, 0]) == 0.0
    assert AveragePrecisionCalculator.ap([], []) == 0.0
    assert AveragePrecisionCalculator().peek_ap_at_n() == 0.0


def test_ties_rank_in_input_order():
    # Equal scores: the earlier item ranks first, so the result is deterministic.
    assert AveragePrecisionCalculator.ap([0.5, 0.5], [0, 1]) == pytest.approx(0.5, abs=TOL)
    assert AveragePrecisionCalculator.ap([0.5, 0.5], [1, 0]) == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize("top_n", [None, 10, 150])
def test_many_ties_match_stable_brute_force(top_n):
    # Scores with 11 distinct values over 6,000 items (so numpy's sort is not an insertion
    # sort): equal scores must rank in input order, across batches and buffer trims.
    rng = np.random.default_rng(17)
    scores = np.round(rng.random(6000), 1)
    labels = (rng.random(6000) < 0.4).astype(int)
    expected = brute_force_ap(scores.tolist(), labels.tolist(), n=top_n)
    assert AveragePrecisionCalculator.ap_at_n(scores, labels, n=top_n) == pytest.approx(
        expected, abs=TOL
    )
    calculator = AveragePrecisionCalculator(top_n=top_n)
    for part in np.array_split(np.arange(6000), 7):
        calculator.accumulate(scores[part], labels[part])
    assert calculator.peek_ap_at_n() == pytest.approx(expected, abs=TOL)


def test_top_n_keeps_earlier_items_on_ties():
    # top_n=2 and three equal scores: the first two (neg, pos) stay, ranked in that order.
    # AP@2 = (1/2) / min(2 positives, 2) = 0.25.
    calculator = AveragePrecisionCalculator(top_n=2)
    calculator.accumulate([0.5, 0.5, 0.5], [0, 1, 1])
    assert calculator.heap_size == 2
    assert calculator.num_accumulated_positives == 2
    assert calculator.peek_ap_at_n() == pytest.approx(0.25, abs=TOL)


def test_accumulate_worked_example_over_two_batches():
    # All scores: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.6 (neg); top_n=3 keeps 0.9, 0.8, 0.7.
    # AP@3 = (1/1 + 2/3) / min(2, 3) = 5/6.
    calculator = AveragePrecisionCalculator(top_n=3)
    calculator.accumulate(np.array([0.6, 0.9]), np.array([0, 1]))
    calculator.accumulate(np.array([0.7, 0.8]), np.array([1, 0]))
    assert calculator.heap_size == 3
    assert calculator.peek_ap_at_n() == pytest.approx(5 / 6, abs=TOL)


def test_num_positives_argument_sets_the_denominator():
    # One positive seen at rank 1, but the caller says the batch stands for 4 positives.
    calculator = AveragePrecisionCalculator()
    calculator.accumulate([0.9, 0.1], [1, 0], num_positives=4)
    assert calculator.num_accumulated_positives == 4
    assert calculator.peek_ap_at_n() == pytest.approx(0.25, abs=TOL)


@pytest.mark.parametrize("top_n", [None, 1, 7, 100, 5000])
def test_accumulate_matches_brute_force(top_n):
    rng = np.random.default_rng(1234 + (top_n or 0))
    calculator = AveragePrecisionCalculator(top_n=top_n)
    all_scores, all_labels = [], []
    for batch_size in [0, 1, 37, 3000, 2500, 400]:  # 5938 items: small top_n trim
        scores = rng.random(batch_size)
        labels = (rng.random(batch_size) < 0.2).astype(int)
        calculator.accumulate(scores, labels)
        all_scores.extend(scores.tolist())
        all_labels.extend(labels.tolist())
    expected = brute_force_ap(all_scores, all_labels, n=top_n)
    assert calculator.num_accumulated_positives == sum(all_labels)
    assert calculator.heap_size == (len(all_scores) if top_n is None else min(top_n, 5938))
    assert calculator.peek_ap_at_n() == pytest.approx(expected, abs=TOL)
    if top_n is None or top_n > 1:
        assert 0.0 < expected < 1.0  # not a degenerate case


@pytest.mark.parametrize("seed", range(5))
def test_static_ap_at_n_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 300))
    scores = rng.normal(size=size)  # negative scores are fine
    labels = (rng.random(size) < 0.3).astype(int)
    for n in [None, 1, 5, 20, 1000]:
        total = int(labels.sum()) + int(rng.integers(0, 5))
        expected = brute_force_ap(scores.tolist(), labels.tolist(), n=n, num_positives=total)
        got = AveragePrecisionCalculator.ap_at_n(scores, labels, n=n, total_num_positives=total)
        assert got == pytest.approx(expected, abs=TOL)


def test_clear_resets():
    calculator = AveragePrecisionCalculator(top_n=5)
    calculator.accumulate([0.9, 0.2], [1, 0])
    calculator.clear()
    assert calculator.heap_size == 0
    assert calculator.num_accumulated_positives == 0
    assert calculator.peek_ap_at_n() == 0.0
    calculator.accumulate([0.1, 0.8], [1, 0])  # ranked: neg, pos -> 1/2
    assert calculator.peek_ap_at_n() == pytest.approx(0.5, abs=TOL)


@pytest.mark.parametrize("top_n", [0, -1, 1.5, "3", True])
def test_invalid_top_n(top_n):
    with pytest.raises(ValueError):
        AveragePrecisionCalculator(top_n=top_n)


def test_invalid_inputs():
    calculator = AveragePrecisionCalculator()
    with pytest.raises(ValueError):
        calculator.accumulate([0.1, 0.2], [1])
    with pytest.raises(ValueError):
        calculator.accumulate([0.1], [1], num_positives=-1)
    with pytest.raises(ValueError):
        AveragePrecisionCalculator.ap_at_n([0.1], [1], n=0)
    with pytest.raises(ValueError):
        AveragePrecisionCalculator.ap_at_n([0.1, 0.2], [1])


def test_zero_one_normalize():
    normalized = AveragePrecisionCalculator._zero_one_normalize(np.array([2.0, 4.0, 6.0]))
    np.testing.assert_allclose(normalized, [0.0, 0.5, 1.0], atol=TOL)
    constant = AveragePrecisionCalculator._zero_one_normalize(np.array([3.0, 3.0]))
    np.testing.assert_allclose(constant, [0.0, 0.0], atol=TOL)


def test_shuffle_is_a_fixed_joint_permutation():
    predictions, actuals = np.arange(10.0), np.arange(10) * 10
    shuffled_p, shuffled_a = AveragePrecisionCalculator._shuffle(predictions, actuals)
    np.testing.assert_array_equal(np.sort(shuffled_p), predictions)
    np.testing.assert_array_equal(shuffled_a, shuffled_p * 10)
    again_p, _ = AveragePrecisionCalculator._shuffle(predictions, actuals)
    np.testing.assert_array_equal(again_p, shuffled_p)


def test_top_k_mask_rows_and_ties():
    scores = np.array(
        [
            [0.1, 0.9, 0.5, 0.7],
            [0.5, 0.5, 0.5, 0.2],  # three-way tie at the 2nd place: lower columns win
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    expected = np.array(
        [
            [False, True, False, True],
            [True, True, False, False],
            [True, True, False, False],
        ]
    )
    np.testing.assert_array_equal(top_k_mask(scores, 2), expected)
    # A per-row k, including 0 and more than the number of columns.
    per_row = top_k_mask(scores, np.array([1, 0, 9]))
    np.testing.assert_array_equal(per_row[0], [False, True, False, False])
    np.testing.assert_array_equal(per_row[1], [False] * 4)
    np.testing.assert_array_equal(per_row[2], [True] * 4)


def test_top_k_mask_matches_sorting():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random((50, 30)), 1)  # many ties
    k = rng.integers(0, 31, size=50)
    mask = top_k_mask(scores, k)
    for row in range(50):
        ranked = sorted(range(30), key=lambda column, r=row: -scores[r, column])  # stable
        assert set(np.flatnonzero(mask[row])) == set(ranked[: k[row]])
