"""Reference distributions the monitors' tests need, wrapped from scipy in one place.

Only tail probabilities and quantiles come from scipy; every test statistic is computed by the monitors
themselves (vectorised over columns and subgroups), so scipy's own test functions serve as oracles.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

FloatArray = NDArray[np.float64]


def kolmogorov_smirnov_sf(statistic: ArrayLike, n: ArrayLike, m: ArrayLike) -> FloatArray:
    """Asymptotic two-sided p-value of the two-sample Kolmogorov–Smirnov statistic.

    Uses the one-sample KS distribution at the effective size ``round(n m / (n + m))``, the same rule as
    ``scipy.stats.ks_2samp(method="asymp")``. With ties the test is conservative.

    Args:
        statistic: KS statistics D in [0, 1].
        n: First sample sizes.
        m: Second sample sizes.

    Returns:
        p-values, broadcast over the inputs.
    """
    d = np.asarray(statistic, dtype=np.float64)
    big = np.maximum(np.asarray(n, dtype=np.float64), np.asarray(m, dtype=np.float64))
    small = np.minimum(np.asarray(n, dtype=np.float64), np.asarray(m, dtype=np.float64))
    # At least 1: two single observations would otherwise round to an effective size of 0.
    effective = np.maximum(np.round(big * small / (big + small)), 1.0)
    return np.clip(np.asarray(stats.kstwo.sf(d, effective), dtype=np.float64), 0.0, 1.0)


def chi_square_sf(statistic: ArrayLike, dof: ArrayLike) -> FloatArray:
    """Upper tail of the chi-square distribution."""
    return np.asarray(stats.chi2.sf(statistic, dof), dtype=np.float64)


def normal_sf(z: ArrayLike) -> FloatArray:
    """Upper tail of the standard normal distribution."""
    # ndtr skips the generic distribution machinery: this is called per subgroup and metric.
    return np.asarray(special.ndtr(-np.asarray(z, dtype=np.float64)), dtype=np.float64)


@lru_cache(maxsize=256)
def normal_quantile(q: float) -> float:
    """Quantile of the standard normal distribution (cached: a handful of levels are used over and over)."""
    return float(special.ndtri(q))


def weighted_chi_square_sf(statistic: float, weights: ArrayLike) -> float:
    """Upper tail of ``sum_i w_i X_i`` with independent ``X_i ~ chi-square(1)`` and weights ``w_i > 0``.

    Liu, Tang and Zhang (2009): the standardised quadratic form is matched in its first four cumulants to a
    (noncentral) chi-square, whose tail scipy gives. Exact for equal weights (a scaled chi-square); for unequal
    weights it follows the far tail more closely than a two-moment (Satterthwaite) fit, which is too light
    there.

    Raises:
        ValueError: No positive weight, or a negative one.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or np.any(w < 0.0) or not np.any(w > 0.0):
        raise ValueError("weights must be non-negative with at least one positive")
    w = w[w > 0.0]
    c1, c2, c3, c4 = (float(np.sum(w**power)) for power in (1, 2, 3, 4))
    s1, s2 = c3 / c2**1.5, c4 / c2**2
    if s1 * s1 > s2:
        a = 1.0 / (s1 - np.sqrt(s1 * s1 - s2))
        noncentrality = s1 * a**3 - a * a
        dof = a * a - 2.0 * noncentrality
    else:
        a, noncentrality, dof = 1.0 / np.sqrt(s2), 0.0, 1.0 / s2
    standardised = (statistic - c1) / np.sqrt(2.0 * c2)
    x = standardised * np.sqrt(2.0) * a + dof + noncentrality
    if noncentrality > 0.0:
        return float(np.clip(stats.ncx2.sf(x, dof, noncentrality), 0.0, 1.0))
    return float(np.clip(stats.chi2.sf(x, dof), 0.0, 1.0))
