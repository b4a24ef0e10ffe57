"""Plain-Python reference metrics that the vectorised ones are tested against."""


def brute_force_ap(scores, labels, n=None, num_positives=None):
    """The textbook AP@n: rank by score, walk, sum the precision at each positive.

    Equal scores keep their input order (Python's sort is stable), the documented tie rule.

    Args:
      scores: list of floats.
      labels: list of 0/1 (any value > 0 is a positive), same length.
      n: only the top n ranks count, and the denominator is capped at n.
      num_positives: the denominator; the number of positives in `labels` when None.
    """
    ranked = sorted(zip(scores, labels, strict=True), key=lambda pair: -pair[0])
    if num_positives is None:
        num_positives = sum(1 for label in labels if label > 0)
    if n is not None:
        num_positives = min(num_positives, n)
        ranked = ranked[:n]
    if num_positives == 0:
        return 0.0
    total, hits = 0.0, 0
    for rank, (_, label) in enumerate(ranked, start=1):
        if label > 0:
            hits += 1
            total += hits / rank
    return total / num_positives
