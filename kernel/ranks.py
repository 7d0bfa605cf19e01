"""Rank statistics: AUROC with DeLong's variance, and one-sided Mann–Whitney tests of a score shift.

Both are computed from sorted arrays in O(n log n), so a window of thousands of predictions and dozens of
subgroups stays in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kernel.distributions import normal_quantile, normal_sf

FloatArray = NDArray[np.float64]


def midranks(values: ArrayLike) -> FloatArray:
    """1-based ranks with ties sharing the mean of their positions (like ``rankdata(method="average")``)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, x.size))
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = (first + (counts + 1) / 2.0)[group]
    return ranks


@dataclass(frozen=True)
class AurocEstimate:
    """An AUROC with DeLong's variance.

    Attributes:
        value: Area under the ROC curve (ties count one half); NaN without both classes.
        variance: DeLong variance of ``value``; NaN when it cannot be estimated.
        positives: Positive observations.
        negatives: Negative observations.
    """

    value: float
    variance: float
    positives: int
    negatives: int

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Wald interval on the logit scale (stays inside (0, 1)); NaN when undefined.

        At AUROC 0 or 1 the logit is infinite, so the interval collapses to the point.
        """
        if not (math.isfinite(self.value) and math.isfinite(self.variance)):
            return math.nan, math.nan
        if self.value <= 0.0 or self.value >= 1.0:
            return self.value, self.value
        z = normal_quantile(0.5 + level / 2.0)
        centre = math.log(self.value / (1.0 - self.value))
        half = z * math.sqrt(self.variance) / (self.value * (1.0 - self.value))
        return 1.0 / (1.0 + math.exp(-(centre - half))), 1.0 / (1.0 + math.exp(-(centre + half)))


def auroc_delong(scores: ArrayLike, labels: ArrayLike) -> AurocEstimate:
    """AUROC of ``scores`` for binary ``labels`` with DeLong's variance (structural components).

    Args:
        scores: Higher means more likely positive.
        labels: 0/1 labels (no NaN).

    Returns:
        The estimate; NaN value when a class is missing, NaN variance with fewer than two of a class.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    positive = y == 1.0
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        return AurocEstimate(math.nan, math.nan, m, n)
    pos, neg = s[positive], s[~positive]
    overall = midranks(s)
    # Placement values: V10[i] = share of negatives a positive beats, V01[j] = share of positives above
    # a negative; their means are the AUROC and their spreads give DeLong's variance.
    v10 = (overall[positive] - midranks(pos)) / n
    v01 = 1.0 - (overall[~positive] - midranks(neg)) / m
    value = float(v10.mean())
    if m < 2 or n < 2:
        return AurocEstimate(value, math.nan, m, n)
    variance = float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    return AurocEstimate(value, variance, m, n)


def auroc_decrease_pvalue(current: AurocEstimate, baseline: AurocEstimate) -> float:
    """One-sided z-test of H1: the current AUROC is below the baseline's (independent samples)."""
    variance = current.variance + baseline.variance
    if not (math.isfinite(variance) and variance > 0.0):
        return 1.0
    return float(normal_sf((baseline.value - current.value) / math.sqrt(variance)))


@dataclass(frozen=True)
class ShiftTest:
    """A one-sided Mann–Whitney test of whether current scores sit below (or above) baseline scores.

    Attributes:
        superiority: P(current > baseline) + P(equal) / 2; 0.5 when nothing moved.
        p_value: One-sided asymptotic p-value (tie-corrected, continuity-corrected).
        n_current: Current observations.
        n_baseline: Baseline observations.
    """

    superiority: float
    p_value: float
    n_current: int
    n_baseline: int


def score_shift_test(current: ArrayLike, baseline_sorted: ArrayLike, *, lower: bool) -> ShiftTest:
    """Mann–Whitney U test of a shift of ``current`` against a pre-sorted baseline.

    Args:
        current: Current scores.
        baseline_sorted: Baseline scores, sorted ascending (sort once, test many windows).
        lower: Alternative hypothesis: True for "current lower", False for "current higher".

    Returns:
        The test; p-value 1.0 when either sample is empty.
    """
    x = np.asarray(current, dtype=np.float64)
    y = np.asarray(baseline_sorted, dtype=np.float64)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        return ShiftTest(math.nan, 1.0, n1, n2)
    below = np.searchsorted(y, x, side="left")
    equal = np.searchsorted(y, x, side="right") - below
    u1 = float(below.sum() + 0.5 * equal.sum())
    u = n1 * n2 - u1 if lower else u1
    # Tie correction over the pooled sample; scores are continuous, so usually there is nothing to add.
    pooled = np.sort(np.concatenate((x, y)))
    boundaries = np.flatnonzero(np.concatenate(([True], pooled[1:] != pooled[:-1], [True])))
    ties = np.diff(boundaries).astype(np.float64)
    total = n1 + n2
    tie_term = float(np.sum(ties**3 - ties))
    sd = math.sqrt(n1 * n2 / 12.0 * ((total + 1) - tie_term / (total * (total - 1))))
    if sd == 0.0:
        return ShiftTest(u1 / (n1 * n2), 1.0, n1, n2)
    z = (u - n1 * n2 / 2.0 - 0.5) / sd
    return ShiftTest(u1 / (n1 * n2), float(normal_sf(z)), n1, n2)


def _kish(weights: FloatArray) -> float:
    squares = float((weights * weights).sum())
    return float(weights.sum()) ** 2 / squares if squares > 0.0 else 0.0


def weighted_auroc(
    scores: ArrayLike, labels: ArrayLike, weights: ArrayLike, unweighted: AurocEstimate
) -> AurocEstimate:
    """AUROC with row weights (ties count one half), its variance scaled from the unweighted DeLong variance
    by the loss of effective sample size in each class.

    Args:
        scores: Higher means more likely positive.
        labels: 0/1 labels.
        weights: Non-negative row weights.
        unweighted: :func:`auroc_delong` of the same rows (for the variance).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    positive = y == 1.0
    if not positive.any() or positive.all():
        return unweighted
    order = np.argsort(s[~positive], kind="stable")
    neg_scores, neg_weights = s[~positive][order], w[~positive][order]
    cumulative = np.concatenate(([0.0], np.cumsum(neg_weights)))
    below = cumulative[np.searchsorted(neg_scores, s[positive], side="left")]
    upto = cumulative[np.searchsorted(neg_scores, s[positive], side="right")]
    beaten = below + 0.5 * (upto - below)
    value = float((w[positive] * beaten).sum() / (w[positive].sum() * neg_weights.sum()))
    m, n = unweighted.positives, unweighted.negatives
    scale = max(m / max(_kish(w[positive]), 1.0), n / max(_kish(w[~positive]), 1.0))
    return AurocEstimate(value, unweighted.variance * scale, m, n)
