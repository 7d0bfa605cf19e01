"""Two-sample tests of the streaming drift path: Kolmogorov–Smirnov for numbers, chi-square for categories.

The reference side is prepared once (sorted values, category counts) and reused for every window, so a
window costs one sort per column plus binary searches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kernel.distributions import chi_square_sf, kolmogorov_smirnov_sf

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SortedSample:
    """A sample prepared for repeated KS tests: finite values sorted, and its ECDF at its own points."""

    values: FloatArray
    ecdf: FloatArray

    @classmethod
    def of(cls, values: ArrayLike) -> SortedSample:
        """Prepare ``values`` (NaNs dropped)."""
        x = np.asarray(values, dtype=np.float64)
        ordered = np.sort(x[np.isfinite(x)])
        # side="right" counts ties fully, so the ECDF is right-continuous at tied points.
        return cls(ordered, np.searchsorted(ordered, ordered, side="right") / max(ordered.size, 1))

    def __len__(self) -> int:
        return int(self.values.size)


@dataclass(frozen=True)
class KsResult:
    """Two-sample KS statistic and asymptotic two-sided p-value."""

    statistic: float
    p_value: float
    n_current: int
    n_reference: int


def ks_statistic(reference: SortedSample, current: ArrayLike) -> tuple[float, int, int]:
    """Two-sample Kolmogorov–Smirnov statistic of ``current`` against a prepared reference.

    D = sup |F_ref - F_cur|, evaluated at every point of both samples (the supremum of two step functions
    is reached at a jump).

    Returns:
        (D, current size, reference size); D = 0 when either sample is empty.
    """
    cur = SortedSample.of(current)
    n, m = len(cur), len(reference)
    if n == 0 or m == 0:
        return 0.0, n, m
    at_reference = np.abs(reference.ecdf - np.searchsorted(cur.values, reference.values, side="right") / n)
    at_current = np.abs(np.searchsorted(reference.values, cur.values, side="right") / m - cur.ecdf)
    return float(max(at_reference.max(), at_current.max())), n, m


def ks_test(reference: SortedSample, current: ArrayLike) -> KsResult:
    """Two-sample Kolmogorov–Smirnov test with its asymptotic two-sided p-value (see
    :func:`kernel.distributions.kolmogorov_smirnov_sf`); p = 1 for an empty sample."""
    statistic, n, m = ks_statistic(reference, current)
    p_value = float(kolmogorov_smirnov_sf(statistic, n, m)) if n and m else 1.0
    return KsResult(statistic, p_value, n, m)


@dataclass(frozen=True)
class ChiSquareResult:
    """Chi-square test of homogeneity between reference and current category counts.

    Attributes:
        statistic: Pearson's chi-square (no continuity correction).
        dof: Degrees of freedom (categories seen in either sample, minus one).
        p_value: Upper-tail p-value (1.0 with fewer than two categories).
        cramers_v: Effect size sqrt(chi2 / N) in [0, 1] (two samples, so min(rows, cols) - 1 = 1).
        new_categories: Categories in the current sample that the reference never saw.
        n_current: Current observations.
        n_reference: Reference observations.
    """

    statistic: float
    dof: int
    p_value: float
    cramers_v: float
    new_categories: tuple[str, ...]
    n_current: int
    n_reference: int


@dataclass(frozen=True)
class CategoryCounts:
    """Category counts of a sample, prepared once."""

    counts: dict[str, int]

    @classmethod
    def of(cls, values: ArrayLike) -> CategoryCounts:
        """Count the categories of ``values``."""
        names, counts = np.unique(np.asarray(values, dtype=np.str_), return_counts=True)
        return cls({str(name): int(count) for name, count in zip(names, counts, strict=True)})

    @property
    def total(self) -> int:
        """Number of observations."""
        return sum(self.counts.values())


def chi_square_test(reference: CategoryCounts, current: ArrayLike) -> ChiSquareResult:
    """Pearson chi-square test on the 2 x k table of reference and current category counts."""
    cur = CategoryCounts.of(current)
    categories = sorted(set(reference.counts) | set(cur.counts))
    table = np.array(
        [[reference.counts.get(c, 0) for c in categories], [cur.counts.get(c, 0) for c in categories]],
        dtype=np.float64,
    )
    total = table.sum()
    new = tuple(c for c in categories if c not in reference.counts)
    n_cur, n_ref = int(table[1].sum()), int(table[0].sum())
    if len(categories) < 2 or n_cur == 0 or n_ref == 0:
        return ChiSquareResult(0.0, max(len(categories) - 1, 0), 1.0, 0.0, new, n_cur, n_ref)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = len(categories) - 1
    return ChiSquareResult(
        statistic=statistic,
        dof=dof,
        p_value=float(chi_square_sf(statistic, dof)),
        cramers_v=math.sqrt(statistic / total),
        new_categories=new,
        n_current=n_cur,
        n_reference=n_ref,
    )
