"""Realised classification performance of a set of predictions that have reads, each metric with its CI.

Shared by the performance monitor (whole window) and the bias monitor (one call per subgroup), and the
one-sided tests both use to ask "is this worse than the baseline?".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from kernel.intervals import proportion_decrease_pvalue, wilson_interval
from kernel.ranks import AurocEstimate, auroc_decrease_pvalue, auroc_delong, score_shift_test, weighted_auroc
from services.monitors.core.findings import Statistic
from services.monitors.core.window import BoolArray, Window

#: Metrics every group reports, in report order.
METRICS = ("sensitivity", "specificity", "ppv", "auroc", "override_rate")

#: Metrics where a higher value is worse.
HIGHER_IS_WORSE = frozenset({"override_rate"})

DegradationTest = Literal["rank", "proportion"]


@dataclass(frozen=True)
class Estimate:
    """A metric's point estimate with its confidence interval.

    Attributes:
        value: Point estimate (NaN when undefined, e.g. no positives).
        ci_low: Lower bound.
        ci_high: Upper bound.
        n: Observations behind it (the denominator for proportions).
        method: Interval method (``wilson``, ``delong-logit``).
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    method: str


@dataclass(frozen=True)
class GroupPerformance:
    """Performance of one group of predictions against their reads.

    Attributes:
        estimates: Metric name (see :data:`METRICS`) → estimate.
        positives: Read-positive predictions with a decision.
        negatives: Read-negative predictions with a decision.
        auroc: The AUROC with its DeLong variance (for tests).
        counts: ``tp``, ``fn``, ``tn``, ``fp``, ``overrides``, ``reads`` (for tests); weighted groups
            hold effective counts (each class's weights scaled to its Kish effective size).
    """

    estimates: dict[str, Estimate]
    positives: int
    negatives: int
    auroc: AurocEstimate
    counts: dict[str, float]

    def __getitem__(self, metric: str) -> Estimate:
        return self.estimates[metric]


def _proportion(successes: float, trials: float, level: float) -> Estimate:
    low, high = wilson_interval(successes, trials, level)
    value = successes / trials if trials else math.nan
    return Estimate(value, float(low), float(high), round(trials), "wilson")


def _effective(weights: NDArray[np.float64], mask: BoolArray) -> NDArray[np.float64]:
    """Weights of the masked rows scaled so they sum to their Kish effective sample size."""
    w = np.where(mask, weights, 0.0)
    total, squares = float(w.sum()), float((w * w).sum())
    return w * (total / squares) if squares > 0.0 else w


def group_performance(
    window: Window,
    rows: BoolArray | None = None,
    level: float = 0.95,
    weights: NDArray[np.float64] | None = None,
) -> GroupPerformance:
    """Sensitivity, specificity, PPV, AUROC and override rate of some rows of a window.

    Only rows with a read count; sensitivity, specificity and PPV also need a decision. Reads are the
    labels: a radiologist's final read stands in for the truth.

    Args:
        window: The predictions.
        rows: Mask of the rows to evaluate (all when None).
        level: Confidence level of every interval.
        weights: Row weights (e.g. a reference reweighted to a window's prevalence, see
            :mod:`services.monitors.core.label_shift`); counts become effective counts.
    """
    mask = np.ones(len(window), dtype=bool) if rows is None else rows
    labelled = mask & window.labelled
    decided = labelled & ~np.isnan(window.decision)
    label, decision = window.label, window.decision
    if weights is None:
        w_pos = w_neg = w_read = np.ones(len(window))
    else:
        w_pos = _effective(weights, decided & (label == 1.0))
        w_neg = _effective(weights, decided & (label == 0.0))
        w_read = _effective(weights, mask & ~np.isnan(window.override))
    tp = float(w_pos[decided & (label == 1.0) & (decision == 1.0)].sum())
    fn = float(w_pos[decided & (label == 1.0) & (decision == 0.0)].sum())
    tn = float(w_neg[decided & (label == 0.0) & (decision == 0.0)].sum())
    fp = float(w_neg[decided & (label == 0.0) & (decision == 1.0)].sum())
    has_override = mask & ~np.isnan(window.override)
    overrides = float(w_read[has_override & (window.override == 1.0)].sum())
    reads = float(w_read[has_override].sum())
    auroc = auroc_delong(window.score[labelled], label[labelled])
    if weights is not None:
        auroc = weighted_auroc(window.score[labelled], label[labelled], weights[labelled], auroc)
    low, high = auroc.interval(level)
    estimates = {
        "sensitivity": _proportion(tp, tp + fn, level),
        "specificity": _proportion(tn, tn + fp, level),
        "ppv": _proportion(tp, tp + fp, level),
        "auroc": Estimate(auroc.value, low, high, auroc.positives + auroc.negatives, "delong-logit"),
        "override_rate": _proportion(overrides, reads, level),
    }
    counts = {"tp": tp, "fn": fn, "tn": tn, "fp": fp, "overrides": overrides, "reads": reads}
    return GroupPerformance(estimates, round(tp + fn), round(tn + fp), auroc, counts)


@dataclass(frozen=True)
class Degradation:
    """Whether a metric got worse than its baseline.

    Attributes:
        metric: The metric.
        change: Current minus baseline value (NaN when either is undefined).
        worsening: The change in the "worse" direction (positive = worse), NaN when undefined.
        p_value: One-sided p-value of H1 "worse than baseline".
        test: The test's name.
    """

    metric: str
    change: float
    worsening: float
    p_value: float
    test: str


def _scores(window: Window, rows: BoolArray, label: float) -> NDArray[np.float64]:
    scores: NDArray[np.float64] = window.score[rows & (window.label == label)]
    return scores


def degradation(
    metric: str,
    current: GroupPerformance,
    baseline: GroupPerformance,
    *,
    current_scores: Callable[[float], NDArray[np.float64]],
    baseline_sorted_scores: Callable[[float], NDArray[np.float64]],
    method: DegradationTest,
) -> Degradation:
    """One-sided test that ``metric`` is worse in ``current`` than in ``baseline`` (independent samples).

    Tests, by metric: sensitivity/specificity — with ``rank``, a Mann–Whitney test that read-positive
    scores moved down (read-negative scores moved up), which uses the whole score distribution and so
    detects a degradation with fewer reads; with ``proportion``, a pooled z-test on the proportion.
    PPV — z-test on the proportion. AUROC — DeLong z-test. Override rate — z-test for an increase.

    Args:
        metric: One of :data:`METRICS`.
        current: Current group's performance.
        baseline: Baseline group's performance.
        current_scores: Label value → the current group's scores with that read.
        baseline_sorted_scores: Label value → the baseline group's scores with that read, sorted.
        method: How sensitivity and specificity are tested.
    """
    change = current[metric].value - baseline[metric].value
    worsening = change if metric in HIGHER_IS_WORSE else -change
    c, b = current.counts, baseline.counts
    if metric in ("sensitivity", "specificity") and method == "rank":
        label = 1.0 if metric == "sensitivity" else 0.0
        shift = score_shift_test(current_scores(label), baseline_sorted_scores(label), lower=label == 1.0)
        return Degradation(metric, change, worsening, shift.p_value, "mann-whitney-one-sided")
    if metric == "sensitivity":
        p = proportion_decrease_pvalue(c["tp"], c["tp"] + c["fn"], b["tp"], b["tp"] + b["fn"])
    elif metric == "specificity":
        p = proportion_decrease_pvalue(c["tn"], c["tn"] + c["fp"], b["tn"], b["tn"] + b["fp"])
    elif metric == "ppv":
        p = proportion_decrease_pvalue(c["tp"], c["tp"] + c["fp"], b["tp"], b["tp"] + b["fp"])
    elif metric == "override_rate":
        # An increase in overrides is a decrease in agreements.
        p = proportion_decrease_pvalue(c["reads"] - c["overrides"], c["reads"], b["reads"] - b["overrides"], b["reads"])
    elif metric == "auroc":
        return Degradation(metric, change, worsening, auroc_decrease_pvalue(current.auroc, baseline.auroc), "delong")
    else:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    return Degradation(metric, change, worsening, float(p), "two-proportion-z-one-sided")


def scores_by_label(window: Window, rows: BoolArray, *, sort: bool) -> Callable[[float], NDArray[np.float64]]:
    """A label → scores lookup over some rows of a window (sorted when ``sort``), for :func:`degradation`."""
    cache: dict[float, NDArray[np.float64]] = {}

    def lookup(label: float) -> NDArray[np.float64]:
        if label not in cache:
            values = _scores(window, rows, label)
            cache[label] = np.sort(values) if sort else values
        return cache[label]

    return lookup


def metric_statistics(performance: GroupPerformance, subgroup: str, level: float) -> list[Statistic]:
    """One statistic per metric of :data:`METRICS` for a group."""
    return [
        Statistic(
            name=metric,
            value=performance[metric].value,
            test=performance[metric].method,
            ci_low=performance[metric].ci_low,
            ci_high=performance[metric].ci_high,
            ci_level=level,
            subgroup=subgroup,
            n=performance[metric].n,
        )
        for metric in METRICS
    ]
