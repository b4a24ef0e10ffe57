"""Non-interpolated average precision (AP and AP@n) of one ranked list, computed with numpy.

This reimplements the API and semantics of the YouTube-8M starter's
`average_precision_calculator.py` (Apache-2.0, Google), vectorised: the calculator keeps the
retained scores as numpy arrays instead of a heap of Python tuples.

Definition (non-interpolated, as the starter): rank the items by descending score, walk the
first `n` of them (all if `n` is None) and add `precision@i / num_positives` at every positive
item `i`. `num_positives` is the number of positives in the list unless given explicitly, and is
capped at `n` when `n` is set, so that a perfect top-n ranking scores 1.0. Any label value > 0
is a positive.

Tie-breaking (deterministic, unlike the starter, which shuffles with a fixed seed before
sorting): items with equal scores are ranked in the order they were given, earlier first (a
stable sort by descending score). When a top-n limit drops items, the same rule decides which of
several equal scores stay: the earlier ones. `top_k_mask` applies the same rule to each row of a
matrix, with the column index as the order.

Usage:
    ap = AveragePrecisionCalculator.ap(scores, labels)

    calculator = AveragePrecisionCalculator(top_n=10)
    calculator.accumulate(scores_part1, labels_part1)
    calculator.accumulate(scores_part2, labels_part2)
    ap_at_10 = calculator.peek_ap_at_n()
"""

import numbers

import numpy as np

# A top-n calculator trims its buffer once it holds this many times top_n items (or at least
# _MIN_TRIM_SIZE), so trimming costs O(1) amortised per accumulated item.
_TRIM_FACTOR = 2
_MIN_TRIM_SIZE = 4096


def _check_top_n(top_n, name="top_n"):
    """Returns `top_n` as an int or None; raises ValueError unless it is None or a positive int."""
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, numbers.Integral) or top_n <= 0:
        raise ValueError(f"{name} must be None or a positive integer. It was {top_n!r}.")
    return int(top_n)


def descending_order(scores):
    """Indices that rank `scores` by descending score, equal scores kept in input order.

    Args:
      scores: 1-D array `[num_items]`.

    Returns:
      int array `[num_items]`: a stable descending sort order.
    """
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def average_precision_of_ranking(ranked_positives, num_positives, n=None):
    """AP@n of a list that is already ranked.

    Args:
      ranked_positives: bool array `[num_items]`, True where the item at that rank is positive.
      num_positives: the denominator before capping (total positives of the whole list).
      n: consider only the first n ranks and cap the denominator at n; None for all.

    Returns:
      float: sum over positive ranks i < n of precision@(i+1), divided by
      min(num_positives, n); 0.0 when that denominator is 0.
    """
    if n is not None:
        num_positives = min(num_positives, n)
        ranked_positives = ranked_positives[:n]
    if num_positives == 0:
        return 0.0
    hit_ranks = np.flatnonzero(ranked_positives)  # 0-based ranks of the positives
    precisions = np.arange(1, hit_ranks.size + 1) / (hit_ranks + 1.0)
    return float(np.sum(precisions) / num_positives)


def top_k_mask(scores, k):
    """Marks the k highest scores of each row; equal scores are taken lower column index first.

    Vectorised: one `np.partition` per call finds each row's k-th largest score, then the
    entries above it are kept and the entries equal to it fill the remaining quota in column
    order. NaN scores are not supported.

    Args:
      scores: array `[num_rows, num_columns]`.
      k: int, or int array `[num_rows]` (a per-row k); each k is clipped to
        [0, num_columns].

    Returns:
      bool array `[num_rows, num_columns]` with exactly min(k, num_columns) True per row.
    """
    scores = np.asarray(scores)
    num_rows, num_columns = scores.shape
    k = np.clip(np.broadcast_to(np.asarray(k, dtype=np.int64), (num_rows,)), 0, num_columns)
    mask = np.zeros(scores.shape, dtype=bool)
    if num_rows == 0 or num_columns == 0 or not k.any():
        return mask
    k_max = int(k.max())
    # The k_max largest scores of each row, ascending; the k-th largest sits at k_max - k.
    top = np.partition(scores, num_columns - k_max, axis=1)[:, num_columns - k_max :]
    top.sort(axis=1)
    kth = top[np.arange(num_rows), np.minimum(k_max - k, k_max - 1)][:, None]
    above = scores > kth
    tied = scores == kth
    quota = k - above.sum(axis=1)  # how many tied entries each row still takes
    excess = tied.sum(axis=1) > quota
    mask = above | tied
    if excess.any():
        rows = np.flatnonzero(excess)
        tied_rows = tied[rows]
        keep_tied = tied_rows & (np.cumsum(tied_rows, axis=1) <= quota[rows, None])
        mask[rows] = above[rows] | keep_tied
    mask[k == 0] = False
    return mask


def _top_n_in_arrival_order(scores, positives, top_n):
    """Keeps the top_n items (ties: earlier first), returned in their original order."""
    if scores.size <= top_n:
        return scores, positives
    keep = top_k_mask(scores[None, :], top_n)[0]
    return scores[keep], positives[keep]


class AveragePrecisionCalculator:
    """Accumulates (score, label) pairs of one class and computes their AP or AP@n."""

    def __init__(self, top_n=None):
        """Creates an empty calculator.

        Args:
          top_n: a positive int: compute AP@top_n and retain only the top_n scores; or None to
            retain everything and compute the plain AP.

        Raises:
          ValueError: top_n is neither None nor a positive integer.
        """
        self._top_n = _check_top_n(top_n)
        self._total_positives = 0
        self._score_chunks = []  # float64 arrays, in arrival order
        self._positive_chunks = []  # bool arrays, aligned with _score_chunks
        self._num_stored = 0

    @property
    def heap_size(self):
        """Number of retained items: everything accumulated, or at most top_n of them."""
        if self._top_n is None:
            return self._num_stored
        return min(self._num_stored, self._top_n)

    @property
    def num_accumulated_positives(self):
        """Total positives accumulated (counted from labels, or as passed in num_positives)."""
        return self._total_positives

    def accumulate(self, predictions, actuals, num_positives=None):
        """Adds a batch of scores and labels.

        Args:
          predictions: scores, array-like `[num_items]`.
          actuals: labels, array-like `[num_items]`; a value > 0 is a positive.
          num_positives: optional number of positives this batch represents. Pass it when the
            batch is incomplete (e.g. only each video's top-k scores), so that recall counts
            the positives that are missing from `actuals`. Default: count `actuals > 0`.

        Raises:
          ValueError: the shapes differ, or num_positives is not a non-negative number.
        """
        scores = np.asarray(predictions, dtype=np.float64).ravel()
        positives = (np.asarray(actuals) > 0).ravel()
        if scores.shape != positives.shape:
            raise ValueError("the shape of predictions and actuals does not match.")
        if num_positives is not None:
            if not isinstance(num_positives, numbers.Number) or num_positives < 0:
                raise ValueError("num_positives must be a non-negative number.")
            self._total_positives += num_positives
        else:
            self._total_positives += int(np.count_nonzero(positives))
        if scores.size == 0:
            return
        self._score_chunks.append(scores)
        self._positive_chunks.append(positives)
        self._num_stored += scores.size
        if self._top_n is not None and self._num_stored > max(
            _TRIM_FACTOR * self._top_n, _MIN_TRIM_SIZE
        ):
            self._trim()

    def _consolidated(self):
        """Returns (scores, positives) of everything stored, merging the chunks into one."""
        if len(self._score_chunks) != 1:
            scores = np.concatenate(self._score_chunks or [np.empty(0)])
            positives = np.concatenate(self._positive_chunks or [np.empty(0, dtype=bool)])
            self._score_chunks, self._positive_chunks = [scores], [positives]
        return self._score_chunks[0], self._positive_chunks[0]

    def _trim(self):
        """Drops everything outside the top_n (ties: earlier items stay)."""
        scores, positives = _top_n_in_arrival_order(*self._consolidated(), self._top_n)
        self._score_chunks, self._positive_chunks = [scores], [positives]
        self._num_stored = scores.size

    def clear(self):
        """Forgets everything accumulated."""
        self._total_positives = 0
        self._score_chunks = []
        self._positive_chunks = []
        self._num_stored = 0

    def peek_ap_at_n(self):
        """AP@top_n (or AP when top_n is None) of everything accumulated so far.

        Returns:
          float; 0.0 when nothing was accumulated or there are no positives.
        """
        if self.heap_size <= 0:
            return 0.0
        scores, positives = self._consolidated()
        return self.ap_at_n(
            scores, positives, n=self._top_n, total_num_positives=self._total_positives
        )

    @staticmethod
    def ap(predictions, actuals):
        """Non-interpolated AP of a whole list.

        Args:
          predictions: scores, array-like `[num_items]`.
          actuals: labels, array-like `[num_items]`; a value > 0 is a positive.

        Returns:
          float: the AP (0.0 without positives).
        """
        return AveragePrecisionCalculator.ap_at_n(predictions, actuals, n=None)

    @staticmethod
    def ap_at_n(predictions, actuals, n=20, total_num_positives=None):
        """Non-interpolated AP of the top n items of a list.

        Args:
          predictions: scores, array-like `[num_items]`.
          actuals: labels, array-like `[num_items]`; a value > 0 is a positive.
          n: a positive int, or None for the whole list.
          total_num_positives: the denominator (before capping at n); default: the number of
            positives in `actuals`.

        Returns:
          float: sum of precision@i at the positive ranks i <= n, divided by
          min(total_num_positives, n); 0.0 when that is 0.

        Raises:
          ValueError: the shapes differ, or n is neither None nor a positive integer.
        """
        scores = np.asarray(predictions, dtype=np.float64).ravel()
        positives = (np.asarray(actuals) > 0).ravel()
        if scores.shape != positives.shape:
            raise ValueError("the shape of predictions and actuals does not match.")
        n = _check_top_n(n, name="n")
        if total_num_positives is None:
            total_num_positives = int(np.count_nonzero(positives))
        ranked_positives = positives[descending_order(scores)]
        return average_precision_of_ranking(ranked_positives, total_num_positives, n)

    @staticmethod
    def _shuffle(predictions, actuals):
        """Returns both arrays permuted by the same fixed (seed 0) random permutation.

        Kept for API compatibility with the starter; this module's AP does not shuffle (ties
        are broken by input order instead). Unlike the starter it leaves the global `random`
        state untouched.

        Args:
          predictions: array `[num_items]`.
          actuals: array `[num_items]`.

        Returns:
          (predictions, actuals), both permuted.
        """
        predictions = np.asarray(predictions)
        actuals = np.asarray(actuals)
        permutation = np.random.default_rng(0).permutation(len(predictions))
        return predictions[permutation], actuals[permutation]

    @staticmethod
    def _zero_one_normalize(predictions, epsilon=1e-7):
        """Maps scores linearly onto [0, 1]; the ranking, hence the AP, is unchanged.

        Args:
          predictions: array `[num_items]`.
          epsilon: lower bound of the denominator (max - min), avoiding a division by zero.

        Returns:
          float array `[num_items]`.
        """
        predictions = np.asarray(predictions, dtype=np.float64)
        low = np.min(predictions)
        return (predictions - low) / max(np.max(predictions) - low, epsilon)
