"""Prevalence (label shift) and confidence-based estimates: what the reference predicts for a window.

Both use the reference's calibration. Under label shift — prevalence changes, the images of a diseased
(or healthy) patient do not — the reference reweighted by ``w(s) = (pi_w / pi_r) p(s) + ((1 - pi_w) /
(1 - pi_r)) (1 - p(s))`` (``p`` the reference's calibrated probability, ``pi`` the prevalences) is what the
unchanged model would have produced at the window's prevalence, reads and read errors included; the
window's prevalence comes from its unlabelled scores by the EM of Saerens, Latinne and Decaestecker (2002).
Judging read-labelled metrics against this reweighted reference keeps a prevalence change from looking
like a sensitivity loss (at lower prevalence a larger share of read-positives are the readers' false
alarms, which the model rightly calls negative).

Reads carry information about the truth that the score does not: a reference study read positive at a low
score is more likely a missed-by-the-model nodule than its score alone says. Weighting rows by ``p(s)``
ignores that and, for read-labelled metrics, under-weights the read-positives the model misses, which biases
the expected read sensitivity low when prevalence falls (about 3.5 points when it halves on chest_nodule v2's
reference). So the weights use the posterior ``P(truth | score, read)``, and the EM uses the window's reads
the same way, with the readers' error rates read off the reference (:func:`read_error`: reads regressed on
the calibrated probability, ``E[read | p] = fp + (se - fp) p``). Reads are assumed independent of the score
given the truth (the readers do not see the model's output).

The confidence-based estimate (CBPE, as NannyML names it) predicts the read-labelled confusion matrix of a
window whose reads are pending: each prediction is a read-positive with probability ``q(s)``, the
reference's read-positive rate at that score (binned on reference score quantiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

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


@dataclass(frozen=True)
class ReadError:
    """How readers' verdicts relate to the truth.

    Attributes:
        sensitivity: P(read positive | nodule).
        false_positive: P(read positive | no nodule), one minus the readers' specificity.
    """

    sensitivity: float = 1.0
    false_positive: float = 0.0

    def likelihoods(self, reads: FloatArray) -> tuple[FloatArray, FloatArray]:
        """P(read | nodule) and P(read | no nodule) of each read (1 for a missing read: no information)."""
        read = np.asarray(reads, dtype=np.float64)
        known = np.isfinite(read)
        positive = known & (read == 1.0)
        negative = known & (read != 1.0)
        given_one = np.where(positive, self.sensitivity, np.where(negative, 1.0 - self.sensitivity, 1.0))
        given_zero = np.where(positive, self.false_positive, np.where(negative, 1.0 - self.false_positive, 1.0))
        return given_one, given_zero

    def posterior(self, probabilities: FloatArray, reads: FloatArray) -> FloatArray:
        """P(nodule | score, read) from the calibrated probability and the read (the probability if unread)."""
        p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-9, 1.0 - 1e-9)
        given_one, given_zero = self.likelihoods(reads)
        up, down = p * given_one, (1.0 - p) * given_zero
        return np.asarray(up / np.maximum(up + down, 1e-300), dtype=np.float64)


#: Reads that are the truth (a reference labelled by ground truth, or no read error).
NO_READ_ERROR = ReadError()


def read_error(reference: Window) -> ReadError:
    """The readers' error rates implied by the reference's reads and calibrated probabilities.

    With calibrated probabilities and reads independent of the score given the truth,
    ``E[read | p] = fp + (se - fp) p``: the least-squares line of the reads on ``p`` estimates ``fp`` (its
    intercept) and ``se`` (its value at 1). Clipped to ``0 <= fp < se <= 1``; without reads, no error.
    """
    rows = reference.labelled
    if np.count_nonzero(rows) < 2:
        return NO_READ_ERROR
    p = np.clip(reference.probability[rows], 0.0, 1.0)
    if not np.ptp(p) > 0.0:
        return NO_READ_ERROR
    fit = stats.linregress(p, reference.label[rows])
    false_positive = min(max(float(fit.intercept), 0.0), 0.49)
    sensitivity = min(max(float(fit.intercept + fit.slope), false_positive + 0.01), 1.0)
    return ReadError(sensitivity, false_positive)


def estimate_prevalence(
    probabilities: FloatArray,
    reference_prevalence: float,
    reads: FloatArray | None = None,
    error: ReadError = NO_READ_ERROR,
) -> float:
    """EM estimate of the prevalence of a sample whose probabilities are calibrated at ``reference_prevalence``.

    With ``reads`` (NaN where a read is missing) each row's posterior also weighs its read by the readers'
    ``error`` rates.
    """
    p = np.clip(probabilities, 1e-9, 1.0 - 1e-9)
    r = min(max(reference_prevalence, 1e-6), 1.0 - 1e-6)
    given_one, given_zero = error.likelihoods(reads) if reads is not None else (np.ones_like(p), np.ones_like(p))
    p_one, p_zero = p * given_one, (1.0 - p) * given_zero
    prevalence = r
    for _ in range(_EM_ITERATIONS):
        up, down = prevalence / r * p_one, (1.0 - prevalence) / (1.0 - r) * p_zero
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
        read_error: The readers' error rates the posteriors used.
    """

    reference_prevalence: float
    window_prevalence: float
    weights: FloatArray
    read_error: ReadError = NO_READ_ERROR

    @property
    def ratio(self) -> float:
        """window / reference prevalence."""
        return self.window_prevalence / self.reference_prevalence if self.reference_prevalence else math.nan


def prevalence_shift(reference: Window, window: Window, error: ReadError | None = None) -> PrevalenceShift:
    """Estimate the window's prevalence and reweight the reference to it (label shift).

    Args:
        reference: The version's reference (its reads, where present, sharpen each row's posterior).
        window: The window (its scores, and its reads where they have arrived).
        error: The readers' error rates; None estimates them from the reference (:func:`read_error`).
    """
    error = read_error(reference) if error is None else error
    p_ref = np.clip(reference.probability, 1e-9, 1.0 - 1e-9)
    prior = float(p_ref.mean())
    current = estimate_prevalence(reference_probability(reference, window.score), prior, window.label, error)
    posterior = error.posterior(p_ref, reference.label)
    weights = current / prior * posterior + (1.0 - current) / (1.0 - prior) * (1.0 - posterior)
    return PrevalenceShift(prior, current, np.asarray(weights, dtype=np.float64), error)


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
