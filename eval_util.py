"""Video-classification evaluation metrics in numpy: hit@1, PERR, GAP and per-class AP.

Reimplements the API and semantics of the YouTube-8M starter's `eval_util.py` (Apache-2.0,
Google), vectorised over videos: no Python loop runs per video.

Conventions: `predictions` and `labels` are numpy arrays `[batch, num_classes]`; a label
value > 0 is a positive. Wherever a ranking has equal scores, the lower class index ranks first
inside a video, and the earlier video first across videos (see `average_precision_calculator`).

GAP is the Kaggle YouTube-8M global average precision: keep each video's top_k predictions,
pool the (score, is_positive) pairs of all videos, rank the pool by score and compute its AP,
dividing by the total number of positive labels of all videos (found or not in the top_k).
"""

import numpy as np

import average_precision_calculator as ap_calculator
import mean_average_precision_calculator as map_calculator


def flatten(l):  # noqa: E741 (the starter's name)
    """Merges a list of lists into one list."""
    return [item for sublist in l for item in sublist]


def calculate_hit_at_one(predictions, actuals):
    """Fraction of videos whose highest-scoring class is a true label.

    Args:
      predictions: `[batch, num_classes]` scores (ties: the lowest class index is the top one).
      actuals: `[batch, num_classes]` labels.

    Returns:
      float: the mean hit@1 of the batch (0.0 for an empty batch).
    """
    predictions = np.asarray(predictions)
    if predictions.shape[0] == 0:
        return 0.0
    top_class = np.argmax(predictions, axis=1)
    hits = np.asarray(actuals)[np.arange(predictions.shape[0]), top_class] > 0
    return float(np.mean(hits))


def _precision_at_equal_recall_rate_per_video(predictions, actuals):
    """Per-video PERR: precision of the top L scores, L = the video's number of labels.

    Args:
      predictions: `[batch, num_classes]` scores.
      actuals: `[batch, num_classes]` labels.

    Returns:
      float64 array `[batch]`; 0.0 for videos with no labels.
    """
    predictions = np.asarray(predictions)
    positives = np.asarray(actuals) > 0
    num_labels = positives.sum(axis=1)
    # As the starter, a top-L class counts only if its score is > 0.
    selected = ap_calculator.top_k_mask(predictions, num_labels) & (predictions > 0)
    hits = np.count_nonzero(selected & positives, axis=1)
    return np.where(num_labels > 0, hits / np.maximum(num_labels, 1), 0.0)


def calculate_precision_at_equal_recall_rate(predictions, actuals):
    """Mean precision at equal recall rate (PERR) of a batch.

    For a video with L true labels, PERR is the fraction of its L highest-scoring classes that
    are true labels (a class with score <= 0 never counts as a hit, as in the starter). Ties at
    the L-th score are resolved lower class index first. A video with no labels scores 0.0 and
    still counts in the mean (what the starter's loop effectively does: it then takes all
    classes, finds no hit, and adds 0), so the result is never NaN.

    Args:
      predictions: `[batch, num_classes]` scores.
      actuals: `[batch, num_classes]` labels.

    Returns:
      float: the mean PERR over the batch (0.0 for an empty batch).
    """
    per_video = _precision_at_equal_recall_rate_per_video(predictions, actuals)
    return float(np.mean(per_video)) if per_video.size else 0.0


def _top_k_triplets(predictions, labels, k):
    """Each video's top-k predictions as flat arrays, in (video, class index) order.

    Args:
      predictions: `[batch, num_classes]` scores.
      labels: `[batch, num_classes]` labels.
      k: positive int; clipped to num_classes. Ties at the k-th score: lower class index kept.

    Returns:
      (videos, classes, scores, label_values): arrays `[batch * min(k, num_classes)]`.

    Raises:
      ValueError: k is not positive.
    """
    if k <= 0:
        raise ValueError("k must be a positive integer.")
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 2:
        raise ValueError(
            f"predictions and labels must both be [batch, num_classes]; "
            f"got {predictions.shape} and {labels.shape}."
        )
    videos, classes = np.nonzero(ap_calculator.top_k_mask(predictions, k))
    return videos, classes, predictions[videos, classes], labels[videos, classes]


def top_k_by_class(predictions, labels, k=20):
    """Keeps each video's top k predictions and regroups them by class.

    Args:
      predictions: `[batch, num_classes]` scores.
      labels: `[batch, num_classes]` labels.
      k: predictions kept per video (clipped to num_classes); ties at the k-th score keep the
        lower class index.

    Returns:
      (class_predictions, class_labels, class_positives): `class_predictions` and
      `class_labels` are lists of num_classes 1-D numpy arrays holding, for each class, the
      kept scores and their labels in video order; `class_positives` is an int array
      `[num_classes]` with each class's number of positive labels over the whole batch
      (including those outside any top k).

    Raises:
      ValueError: k is not a positive integer.
    """
    _, classes, scores, label_values = _top_k_triplets(predictions, labels, k)
    num_classes = np.shape(predictions)[1]
    order = np.argsort(classes, kind="stable")  # group by class, video order inside
    boundaries = np.cumsum(np.bincount(classes, minlength=num_classes))[:-1]
    class_predictions = np.split(scores[order], boundaries)
    class_labels = np.split(label_values[order], boundaries)
    class_positives = np.count_nonzero(np.asarray(labels) > 0, axis=0)
    return class_predictions, class_labels, class_positives


def calculate_gap(predictions, actuals, top_k=20):
    """Global average precision of a batch over each video's top_k predictions.

    Args:
      predictions: `[batch, num_classes]` scores.
      actuals: `[batch, num_classes]` labels.
      top_k: predictions kept per video.

    Returns:
      float: the GAP (0.0 without positive labels).
    """
    _, _, scores, label_values = _top_k_triplets(predictions, actuals, top_k)
    num_positives = int(np.count_nonzero(np.asarray(actuals) > 0))
    if scores.size == 0:
        return 0.0
    return ap_calculator.AveragePrecisionCalculator.ap_at_n(
        scores, label_values, n=None, total_num_positives=num_positives
    )


# How progress lines and tables name each scalar that `EvaluationMetrics.get()` returns, in the
# order they are shown. A new metric is added to `get()` and here.
METRIC_LABELS = {
    "gap": "GAP",
    "avg_hit_at_one": "Hit@1",
    "avg_perr": "PERR",
    "map": "mAP",
    "avg_loss": "loss",
}


class EvaluationMetrics:
    """Accumulates hit@1, PERR, loss, GAP and per-class AP over the batches of an evaluation."""

    def __init__(self, num_class, top_k, top_n):
        """Creates an empty accumulator.

        Args:
          num_class: number of classes, an int > 1.
          top_k: predictions per video kept for the GAP and the per-class APs.
          top_n: each class's AP is AP@top_n over its kept predictions (None: plain AP).

        Raises:
          ValueError: num_class or top_n is invalid (see MeanAveragePrecisionCalculator).
        """
        self.num_class = num_class
        self.top_k = top_k
        self.map_calculator = map_calculator.MeanAveragePrecisionCalculator(num_class, top_n=top_n)
        self.clear()

    def accumulate(self, predictions, labels, loss):
        """Adds one batch.

        Args:
          predictions: `[batch, num_classes]` scores.
          labels: `[batch, num_classes]` labels.
          loss: the batch's mean loss (a scalar; an array is averaged).

        Returns:
          dict of the batch's own metrics: hit_at_one, perr, loss, gap.

        Raises:
          ValueError: the shapes of predictions and labels differ.
        """
        predictions = np.asarray(predictions)
        labels = np.asarray(labels)
        _, classes, scores, label_values = _top_k_triplets(predictions, labels, self.top_k)
        class_positives = np.count_nonzero(labels > 0, axis=0)
        batch_size = labels.shape[0]
        batch_positives = int(class_positives.sum())

        mean_hit_at_one = calculate_hit_at_one(predictions, labels)
        mean_perr = calculate_precision_at_equal_recall_rate(predictions, labels)
        mean_loss = float(np.mean(loss))
        batch_gap = ap_calculator.AveragePrecisionCalculator.ap_at_n(
            scores, label_values, n=None, total_num_positives=batch_positives
        )

        self.map_calculator.accumulate_sparse(classes, scores, label_values, class_positives)
        self._gap_scores.append(scores.astype(np.float64))
        self._gap_positives.append(label_values > 0)
        self._gap_num_positives += batch_positives

        self.num_examples += batch_size
        self.sum_hit_at_one += mean_hit_at_one * batch_size
        self.sum_perr += mean_perr * batch_size
        self.sum_loss += mean_loss * batch_size
        return {
            "hit_at_one": mean_hit_at_one,
            "perr": mean_perr,
            "loss": mean_loss,
            "gap": batch_gap,
        }

    def global_average_precision(self):
        """GAP over the pooled top_k predictions of every batch accumulated so far."""
        if not self._gap_scores:
            return 0.0
        if len(self._gap_scores) > 1:
            self._gap_scores = [np.concatenate(self._gap_scores)]
            self._gap_positives = [np.concatenate(self._gap_positives)]
        return ap_calculator.AveragePrecisionCalculator.ap_at_n(
            self._gap_scores[0],
            self._gap_positives[0],
            n=None,
            total_num_positives=self._gap_num_positives,
        )

    def get(self):
        """Metrics over everything accumulated since the last clear().

        Returns:
          dict with avg_hit_at_one, avg_perr, avg_loss (example-weighted means of the batch
          values), aps (list of per-class APs of the classes with positives), map (mean of aps,
          0.0 if none), gap (global over all batches) and num_examples.

        Raises:
          ValueError: nothing was accumulated.
        """
        if self.num_examples <= 0:
            raise ValueError("total_sample must be positive.")
        aps = self.map_calculator.peek_map_at_n()
        return {
            "avg_hit_at_one": self.sum_hit_at_one / self.num_examples,
            "avg_perr": self.sum_perr / self.num_examples,
            "avg_loss": self.sum_loss / self.num_examples,
            "aps": aps,
            "map": float(np.mean(aps)) if aps else 0.0,
            "gap": self.global_average_precision(),
            "num_examples": self.num_examples,
        }

    def clear(self):
        """Resets everything accumulated."""
        self.sum_hit_at_one = 0.0
        self.sum_perr = 0.0
        self.sum_loss = 0.0
        self.num_examples = 0
        self.map_calculator.clear()
        self._gap_scores = []  # per batch: float64 [batch * top_k]
        self._gap_positives = []  # per batch: bool [batch * top_k]
        self._gap_num_positives = 0
