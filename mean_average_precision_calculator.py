"""Per-class average precision (for the mean AP over classes), vectorised across classes.

This reimplements the API and semantics of the YouTube-8M starter's
`mean_average_precision_calculator.py` (Apache-2.0, Google): each class's AP or AP@top_n is what
`average_precision_calculator.AveragePrecisionCalculator` would give for that class's stream of
(score, label) pairs. Instead of one calculator object per class, all classes share three flat
arrays of (class index, score, is_positive) triplets, and the per-class APs are computed in one
vectorised pass: a single sort by (class, descending score), then segment sums. Equal scores of
a class rank in the order they were accumulated, earlier first (see the AP module).

Inputs to `accumulate`:
  * a 2-D numpy array `[num_videos, num_classes]` of scores and one of labels (dense), or
  * sequences of length num_class of per-class 1-D score and label lists (the starter's
    class-major form; the per-class lists may differ in length).
`accumulate_sparse` takes the triplets directly (what `eval_util` feeds: each video's top-k).

With top_n set, only each class's top_n scores are retained, so memory stays bounded. With
top_n None everything accumulated is kept (about 13 bytes per (item, class) pair).

Usage:
    calculator = MeanAveragePrecisionCalculator(num_class=50)
    calculator.accumulate(scores, labels)  # both [num_videos, 50]
    aps = calculator.peek_map_at_n()  # list of per-class APs
"""

import numbers

import numpy as np

from average_precision_calculator import _check_top_n, top_k_mask

# With top_n set, the stored triplets are trimmed to each class's top_n once there are more than
# this many times num_class * top_n of them (or _MIN_TRIM_SIZE), keeping trimming amortised.
_TRIM_FACTOR = 2
_MIN_TRIM_SIZE = 1 << 16


def _rank_within_class(class_ids, scores, num_class):
    """Sorts triplets by (class, descending score, arrival) and ranks them inside their class.

    Args:
      class_ids: int array `[num_items]`.
      scores: float array `[num_items]`.
      num_class: number of classes.

    Returns:
      (order, ranks, starts): `order` int `[num_items]` sorts the items; `ranks` int
      `[num_items]` is the 0-based rank of each sorted item inside its class; `starts` int
      `[num_class]` is where each class's segment begins in the sorted order.
    """
    order = np.lexsort((-scores, class_ids))  # lexsort is stable: ties keep arrival order
    counts = np.bincount(class_ids, minlength=num_class)
    starts = np.cumsum(counts) - counts
    ranks = np.arange(order.size) - starts[class_ids[order]]
    return order, ranks, starts


def per_class_average_precision(class_ids, scores, positives, num_positives, num_class, top_n):
    """AP (or AP@top_n) of every class from flat triplets, in one vectorised pass.

    Args:
      class_ids: int array `[num_items]`, the class of each item.
      scores: float array `[num_items]`.
      positives: bool array `[num_items]`.
      num_positives: float array `[num_class]`, each class's AP denominator before capping.
      num_class: number of classes.
      top_n: a positive int or None.

    Returns:
      float64 array `[num_class]`; 0.0 for classes without positives.
    """
    order, ranks, starts = _rank_within_class(class_ids, scores, num_class)
    sorted_classes = class_ids[order]
    sorted_positives = positives[order]
    # Positives seen so far inside the class, inclusive of the current item.
    positives_before = np.concatenate(([0], np.cumsum(sorted_positives)))
    positives_so_far = positives_before[1:] - positives_before[starts[sorted_classes]]
    counted = sorted_positives if top_n is None else sorted_positives & (ranks < top_n)
    precisions = positives_so_far[counted] / (ranks[counted] + 1.0)
    precision_sums = np.bincount(sorted_classes[counted], weights=precisions, minlength=num_class)
    denominators = np.asarray(num_positives, dtype=np.float64)
    if top_n is not None:
        denominators = np.minimum(denominators, top_n)
    safe = np.where(denominators > 0, denominators, 1.0)
    return np.where(denominators > 0, precision_sums / safe, 0.0)


class MeanAveragePrecisionCalculator:
    """Accumulates scores and labels of many classes and computes each class's AP."""

    def __init__(self, num_class, filter_empty_classes=True, top_n=None):
        """Creates an empty calculator.

        Args:
          num_class: number of classes, an int > 1.
          filter_empty_classes: if True, `peek_map_at_n` leaves out classes that have no
            accumulated positives (as the starter).
          top_n: a positive int to compute each class's AP@top_n (retaining only its top_n
            scores), or None for the plain AP over everything accumulated.

        Raises:
          ValueError: num_class is not an int > 1, or top_n is not None or a positive int.
        """
        if isinstance(num_class, bool) or not isinstance(num_class, numbers.Integral):
            raise ValueError("num_class must be an integer greater than 1.")
        if num_class <= 1:
            raise ValueError("num_class must be an integer greater than 1.")
        self._num_class = int(num_class)
        self._filter_empty_classes = filter_empty_classes
        self._top_n = _check_top_n(top_n)
        self.clear()

    @property
    def num_class(self):
        """Number of classes."""
        return self._num_class

    @property
    def num_accumulated_positives(self):
        """float64 array `[num_class]`: positives accumulated per class."""
        return self._num_positives.copy()

    def clear(self):
        """Forgets everything accumulated."""
        self._num_positives = np.zeros(self._num_class, dtype=np.float64)
        self._class_chunks = []  # int32 arrays, in arrival order
        self._score_chunks = []  # float64 arrays
        self._positive_chunks = []  # bool arrays
        self._num_stored = 0

    def is_empty(self):
        """True when no (score, label) pair is held for any class."""
        return self._num_stored == 0

    def accumulate(self, predictions, actuals, num_positives=None):
        """Adds scores and labels of all classes.

        Args:
          predictions: either a numpy array `[num_videos, num_classes]` (dense), or a sequence of
            num_class per-class 1-D score sequences (class-major, as the starter).
          actuals: labels in the same layout; a value > 0 is a positive.
          num_positives: optional array-like `[num_classes]`: how many positives each class's
            data represents (pass it when only part of the scores is given, e.g. top-k per
            video). Default: count `actuals > 0` per class.

        Raises:
          ValueError: the layout or shapes do not match num_class, or num_positives is invalid.
        """
        if isinstance(predictions, np.ndarray) and predictions.ndim == 2:
            self._accumulate_dense(predictions, actuals, num_positives)
            return
        if len(predictions) != self._num_class or len(actuals) != self._num_class:
            raise ValueError(
                f"class-major predictions and actuals must have {self._num_class} entries."
            )
        score_lists = [np.asarray(p, dtype=np.float64).ravel() for p in predictions]
        positive_lists = [(np.asarray(a) > 0).ravel() for a in actuals]
        lengths = np.array([s.size for s in score_lists], dtype=np.int64)
        if not np.array_equal(lengths, [p.size for p in positive_lists]):
            raise ValueError("the shape of predictions and actuals does not match.")
        class_ids = np.repeat(np.arange(self._num_class, dtype=np.int32), lengths)
        self.accumulate_sparse(
            class_ids,
            np.concatenate(score_lists),
            np.concatenate(positive_lists),
            num_positives,
        )

    def _accumulate_dense(self, predictions, actuals, num_positives):
        """Dense `[num_videos, num_classes]` input; pre-trims each class to top_n if set."""
        scores = np.asarray(predictions, dtype=np.float64)
        positives = np.asarray(actuals) > 0
        if scores.shape != positives.shape or scores.shape[1] != self._num_class:
            raise ValueError(
                f"predictions and actuals must both be [num_videos, {self._num_class}]; "
                f"got {scores.shape} and {positives.shape}."
            )
        if num_positives is None:
            num_positives = positives.sum(axis=0)
        if self._top_n is not None and scores.shape[0] > self._top_n:
            # Per class (column), keep the top_n scores; ties: earlier videos stay.
            keep = top_k_mask(scores.T, self._top_n).T
            videos, classes = np.nonzero(keep)  # row-major: video order inside each class
            self.accumulate_sparse(
                classes, scores[videos, classes], positives[videos, classes], num_positives
            )
            return
        classes = np.tile(np.arange(self._num_class, dtype=np.int32), scores.shape[0])
        self.accumulate_sparse(classes, scores.ravel(), positives.ravel(), num_positives)

    def accumulate_sparse(self, class_indices, predictions, actuals, num_positives=None):
        """Adds (class, score, label) triplets, e.g. the top-k predictions of some videos.

        Args:
          class_indices: int array-like `[num_items]` in [0, num_class).
          predictions: scores, array-like `[num_items]`.
          actuals: labels, array-like `[num_items]`; a value > 0 is a positive.
          num_positives: optional array-like `[num_class]`, the positives each class's data
            represents. Default: the positives among these triplets, per class.

        Raises:
          ValueError: shapes differ, a class index is out of range, or num_positives is not a
            non-negative array of length num_class.
        """
        class_ids = np.asarray(class_indices).ravel().astype(np.int32, copy=False)
        scores = np.asarray(predictions, dtype=np.float64).ravel()
        positives = (np.asarray(actuals) > 0).ravel()
        if not class_ids.shape == scores.shape == positives.shape:
            raise ValueError("class_indices, predictions and actuals must have the same size.")
        if class_ids.size and (class_ids.min() < 0 or class_ids.max() >= self._num_class):
            raise ValueError(f"class indices must lie in [0, {self._num_class}).")
        if num_positives is None:
            num_positives = np.bincount(class_ids[positives], minlength=self._num_class)
        num_positives = np.asarray(num_positives, dtype=np.float64)
        if num_positives.shape != (self._num_class,) or np.any(num_positives < 0):
            raise ValueError(f"num_positives must be {self._num_class} non-negative numbers.")
        self._num_positives += num_positives
        if class_ids.size == 0:
            return
        self._class_chunks.append(class_ids)
        self._score_chunks.append(scores)
        self._positive_chunks.append(positives)
        self._num_stored += class_ids.size
        if self._top_n is not None and self._num_stored > max(
            _TRIM_FACTOR * self._num_class * self._top_n, _MIN_TRIM_SIZE
        ):
            self._trim()

    def _consolidated(self):
        """Returns (class_ids, scores, positives) of everything stored as single arrays."""
        if len(self._class_chunks) != 1:
            self._class_chunks = [np.concatenate(self._class_chunks or [np.empty(0, np.int32)])]
            self._score_chunks = [np.concatenate(self._score_chunks or [np.empty(0)])]
            self._positive_chunks = [np.concatenate(self._positive_chunks or [np.empty(0, bool)])]
        return self._class_chunks[0], self._score_chunks[0], self._positive_chunks[0]

    def _trim(self):
        """Keeps only each class's top_n triplets (ties: earlier stay), in arrival order."""
        class_ids, scores, positives = self._consolidated()
        order, ranks, _ = _rank_within_class(class_ids, scores, self._num_class)
        keep = np.sort(order[ranks < self._top_n])
        self._class_chunks = [class_ids[keep]]
        self._score_chunks = [scores[keep]]
        self._positive_chunks = [positives[keep]]
        self._num_stored = keep.size

    def peek_average_precisions(self):
        """AP (or AP@top_n) of every class, empty classes included.

        Returns:
          float64 array `[num_class]`; 0.0 for classes without positives.
        """
        class_ids, scores, positives = self._consolidated()
        return per_class_average_precision(
            class_ids, scores, positives, self._num_positives, self._num_class, self._top_n
        )

    def peek_map_at_n(self):
        """Per-class APs (AP@top_n when top_n is set), as the starter returns them.

        Returns:
          list of float: one AP per class, in class order; with filter_empty_classes, classes
          with no accumulated positives are left out. Take the mean for the mAP.
        """
        aps = self.peek_average_precisions()
        if self._filter_empty_classes:
            aps = aps[self._num_positives > 0]
        return aps.tolist()
