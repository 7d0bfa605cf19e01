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
