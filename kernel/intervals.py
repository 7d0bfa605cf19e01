"""Intervals and tests for proportions: Wilson score intervals, Newcombe differences, one-sided z-tests and
Fisher's exact test.

All functions are vectorised: pass arrays of counts to get arrays back. A proportion with no trials has
a NaN estimate and interval.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from kernel.distributions import normal_quantile, normal_sf

FloatArray = NDArray[np.float64]


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return normal_quantile(0.5 + level / 2.0)


def wilson_interval(successes: ArrayLike, trials: ArrayLike, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion.

    Args:
        successes: Success counts.
        trials: Trial counts (same shape).
        level: Two-sided confidence level.

    Returns:
        (low, high), NaN where there are no trials.
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = _z(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denominator = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def newcombe_interval(
    x1: ArrayLike, n1: ArrayLike, x0: ArrayLike, n0: ArrayLike, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Newcombe's hybrid score interval for a difference of independent proportions ``x1/n1 - x0/n0``.

    Built from the two Wilson intervals, so it stays inside [-1, 1] and behaves near 0 and 1.
    """
    a1, b1 = np.asarray(x1, dtype=np.float64), np.asarray(n1, dtype=np.float64)
    a0, b0 = np.asarray(x0, dtype=np.float64), np.asarray(n0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p0 = a1 / b1, a0 / b0
    low1, high1 = wilson_interval(a1, b1, level)
    low0, high0 = wilson_interval(a0, b0, level)
    difference = p1 - p0
    low = difference - np.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2)
    high = difference + np.sqrt((high1 - p1) ** 2 + (p0 - low0) ** 2)
    return low, high


def proportion_decrease_pvalue(x1: ArrayLike, n1: ArrayLike, x0: ArrayLike, n0: ArrayLike) -> FloatArray:
    """One-sided pooled two-proportion z-test of H1: ``x1/n1 < x0/n0``.

    Returns:
        p-values; 1.0 where either sample is empty or the pooled proportion is 0 or 1 (no evidence).
    """
    a1, b1 = np.asarray(x1, dtype=np.float64), np.asarray(n1, dtype=np.float64)
    a0, b0 = np.asarray(x0, dtype=np.float64), np.asarray(n0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (a1 + a0) / (b1 + b0)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / b1 + 1.0 / b0))
        z = (a0 / b0 - a1 / b1) / se
    valid = (b1 > 0) & (b0 > 0) & (se > 0)
    return np.where(valid, normal_sf(np.where(valid, z, 0.0)), 1.0)


def fisher_greater_pvalue(hits_a: int, total_a: int, hits_b: int, total_b: int) -> float:
    """One-sided Fisher exact test of H1 "proportion a (hits_a/total_a) is greater than proportion b"."""
    table = [[hits_a, total_a - hits_a], [hits_b, total_b - hits_b]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)
