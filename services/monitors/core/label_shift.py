"""Prevalence (label shift) and confidence-based estimates: what the reference predicts for a window.

Both use the reference's calibration. Under label shift — prevalence changes, the images of a diseased
(or healthy) patient do not — the reference reweighted by ``w(s) = (pi_w / pi_r) p(s) + ((1 - pi_w) /
(1 - pi_r)) (1 - p(s))`` (``p`` the reference's calibrated probability, ``pi`` the prevalences) is what the
unchanged model would have produced at the window's prevalence, reads and read errors included; the
window's prevalence comes from its unlabelled scores by the EM of Saerens, Latinne and Decaestecker (2002).
Judging read-labelled metrics against this reweighted reference keeps a prevalence change from looking
like a sensitivity loss (at lower prevalence a larger share of read-positives are the readers' false
alarms, which the model rightly calls negative).

The confidence-based estimate (CBPE, as NannyML names it) predicts the read-labelled confusion matrix of a
window whose reads are pending: each prediction is a read-positive with probability ``q(s)``, the
reference's read-positive rate at that score (binned on reference score quantiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kernel.ranks import midranks
from services.monitors.core.window import Window

FloatArray = NDArray[np.float64]
_EM_ITERATIONS = 200
_EM_TOLERANCE = 1e-8
#: Quantile bins of the reference scores for the read-positive rate q(s).
READ_RATE_BINS = 40


def reference_probability(reference: Window, scores: FloatArray) -> FloatArray:
    """The reference's calibrated probability at ``scores`` (interpolated on the reference's score order),
    independent of what the window was served (a wrong temperature does not leak in)."""
    order = np.argsort(reference.score, kind="stable")
    return np.asarray(np.interp(scores, reference.score[order], reference.probability[order]), dtype=np.float64)


def estimate_prevalence(probabilities: FloatArray, reference_prevalence: float) -> float:
    """EM estimate of the prevalence of a sample whose probabilities are calibrated at ``reference_prevalence``."""
    p = np.clip(probabilities, 1e-9, 1.0 - 1e-9)
    r = min(max(reference_prevalence, 1e-6), 1.0 - 1e-6)
    prevalence = r
    for _ in range(_EM_ITERATIONS):
        up, down = prevalence / r * p, (1.0 - prevalence) / (1.0 - r) * (1.0 - p)
        updated = float(np.mean(up / (up + down)))
        if abs(updated - prevalence) < _EM_TOLERANCE:
            return updated
        prevalence = updated
    return prevalence


@dataclass(frozen=True)
class PrevalenceShift:
    """The window's prevalence as the reference's calibration sees it, and the reference's weights.

    Attributes:
        reference_prevalence: Mean calibrated probability over the reference.
        window_prevalence: EM estimate for the window (every prediction, read or not).
        weights: One weight per reference row (mean 1 over the reference when nothing moved).
    """

    reference_prevalence: float
    window_prevalence: float
    weights: FloatArray

    @property
    def ratio(self) -> float:
        """window / reference prevalence."""
        return self.window_prevalence / self.reference_prevalence if self.reference_prevalence else math.nan


def prevalence_shift(reference: Window, window: Window) -> PrevalenceShift:
    """Estimate the window's prevalence and reweight the reference to it (label shift)."""
    p_ref = np.clip(reference.probability, 1e-9, 1.0 - 1e-9)
    prior = float(p_ref.mean())
    current = estimate_prevalence(reference_probability(reference, window.score), prior)
    weights = current / prior * p_ref + (1.0 - current) / (1.0 - prior) * (1.0 - p_ref)
    return PrevalenceShift(prior, current, np.asarray(weights, dtype=np.float64))


@dataclass(frozen=True)
class ConfidenceEstimate:
    """A metric expected from calibrated probabilities before the reads arrive.

    Attributes:
        metric: ``sensitivity``, ``specificity`` or ``auroc`` (read-labelled, like realised metrics).
        value: Expected value.
        ci_low: Lower bound of the sampling interval (labels drawn from q).
        ci_high: Upper bound.
        n: Predictions it covers.
    """

    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int


def read_positive_rate(reference: Window, scores: FloatArray, bins: int = READ_RATE_BINS) -> FloatArray:
    """q(s): the reference's share of positive reads in the score bin (quantile bins) of each score."""
    rows = reference.labelled
    ref_scores, ref_labels = reference.score[rows], reference.label[rows]
    count = max(2, min(bins, ref_scores.size // 50))
    edges = np.quantile(ref_scores, np.linspace(0.0, 1.0, count + 1)[1:-1])
    ref_bin = np.searchsorted(edges, ref_scores, side="right")
    totals = np.bincount(ref_bin, minlength=count).astype(np.float64)
    positives = np.bincount(ref_bin, weights=ref_labels, minlength=count)
    # Jeffreys-smoothed rate: no bin is certain.
    rate = (positives + 0.5) / (totals + 1.0)
    return np.asarray(rate[np.searchsorted(edges, scores, side="right")], dtype=np.float64)


def confidence_estimates(
    reference: Window, window: Window, level: float = 0.95, draws: int = 200, seed: int = 0
) -> list[ConfidenceEstimate]:
    """Expected read-labelled sensitivity, specificity and AUROC of a whole window (CBPE).

    Each prediction is read-positive with probability q(s) from the reference; sensitivity is
    ``sum(q d) / sum(q)``, specificity ``sum((1 - q)(1 - d)) / sum(1 - q)``, AUROC the Mann–Whitney statistic
    with every prediction weighted q as a positive and 1 - q as a negative. The interval is the spread of
    the realised metrics over ``draws`` label sets drawn from q (the sampling error of a window this size).
    Valid while the reference's score→read relation holds (no concept shift, no prevalence change).
    """
    n = len(window)
    if n < 2 or not reference.labelled.any():
        return []
    q = read_positive_rate(reference, window.score)
    decision = np.nan_to_num(window.decision, nan=0.0)
    ranks = midranks(window.score)
    rng = np.random.default_rng(seed)
    drawn = (rng.random((draws, n)) < q).astype(np.float64)
    positives = drawn.sum(axis=1)
    negatives = n - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        sens = drawn @ decision / positives
        spec = (1.0 - drawn) @ (1.0 - decision) / negatives
        auroc = (drawn @ ranks - positives * (positives + 1.0) / 2.0) / (positives * negatives)
    order = np.argsort(window.score, kind="stable")
    sorted_q, sorted_s = q[order], window.score[order]
    negative_below = np.concatenate(([0.0], np.cumsum(1.0 - sorted_q)))
    lower = negative_below[np.searchsorted(sorted_s, sorted_s, side="left")]
    upper = negative_below[np.searchsorted(sorted_s, sorted_s, side="right")]
    # Pairs of a row with itself are left out of the expected AUROC (they cancel only in the limit).
    beaten = lower + 0.5 * (upper - lower - (1.0 - sorted_q))
    expected = {
        "sensitivity": float((q * decision).sum() / q.sum()),
        "specificity": float(((1.0 - q) * (1.0 - decision)).sum() / (1.0 - q).sum()),
        "auroc": float((sorted_q * beaten).sum() / (q.sum() * (1.0 - q).sum() - (q * (1.0 - q)).sum())),
    }
    low_q, high_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    result = []
    for metric, values in (("sensitivity", sens), ("specificity", spec), ("auroc", auroc)):
        finite = values[np.isfinite(values)]
        low, high = np.quantile(finite, [low_q, high_q]) if finite.size else (math.nan, math.nan)
        result.append(ConfidenceEstimate(metric, expected[metric], float(low), float(high), n))
    return result
