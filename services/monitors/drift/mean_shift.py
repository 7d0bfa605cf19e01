"""A multivariate location-shift test of a window's numeric inputs against the reference (Hotelling's T²).

A scanner change (a gain, a blur, more noise) moves several image descriptors and embedding components at once,
each by a fraction of its spread, and often against the way they usually move together. One KS test per
column sees each move alone and pays for the many columns in its multiple-testing correction; the mean vector
seen through the reference's covariance sees them together in one test.

With ``Z`` the columns standardised by the reference (mean and SD), ``d`` the window's mean of ``Z`` and
``Sigma`` the reference's covariance of ``Z``, shrunk by Ledoit and Wolf (stable for small reference strata and
near-collinear descriptors)::

    T² = d' Sigma^-1 d / (1/n + 1/m)

(``n`` window rows, ``m`` reference rows: the reference's own sampling error is part of the variance). With no
change, ``d ~ N(0, S (1/n + 1/m))`` for the reference's unshrunk covariance ``S``, so in the eigenbasis of
``S`` (which the shrinkage keeps) ``T²`` is a weighted sum of independent chi-square(1) variables with weights
``lambda_i / lambda_shrunk_i``; its tail comes from :func:`kernel.distributions.weighted_chi_square_sf`. The
weights are near 1 except for the near-degenerate directions the shrinkage damps, so the test stays exact
where the covariance is well estimated and conservative where it is not.

The effect size reported is the Mahalanobis distance ``sqrt(d' Sigma^-1 d)``: the shift of the mean in units
of the reference's spread, all columns together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg
from sklearn.covariance import LedoitWolf, empirical_covariance

from kernel.distributions import weighted_chi_square_sf

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class MeanShiftResult:
    """Hotelling's T² of one window against a prepared reference.

    Attributes:
        statistic: T².
        p_value: Upper-tail p-value under no change.
        distance: Mahalanobis distance of the window's mean from the reference's (reference SD units).
        n_current: Window rows with every column finite.
        n_reference: Reference rows behind the mean and covariance.
        dof: Columns tested (constant columns of the reference are left out).
    """

    statistic: float
    p_value: float
    distance: float
    n_current: int
    n_reference: int
    dof: int


@dataclass(frozen=True)
class MeanShiftReference:
    """The reference side of the test, prepared once: standardisation, shrunk covariance, its eigenbasis.

    Attributes:
        columns: Indices (into the matrix the reference was prepared from) of the tested columns.
        mean: Reference mean of each tested column.
        scale: Reference SD of each tested column.
        basis: Eigenvectors of the standardised covariance (columns).
        shrunk: Eigenvalues of the Ledoit–Wolf covariance in that basis.
        weights: ``lambda_i / lambda_shrunk_i``, the chi-square(1) weights of T² under no change.
        n_reference: Reference rows used.
        shrinkage: Ledoit–Wolf shrinkage intensity.
    """

    columns: NDArray[np.intp]
    mean: FloatArray
    scale: FloatArray
    basis: FloatArray
    shrunk: FloatArray
    weights: FloatArray
    n_reference: int
    shrinkage: float

    @classmethod
    def of(cls, matrix: NDArray[np.floating[Any]], min_rows: int = 2) -> MeanShiftReference | None:
        """Prepare from an (m, p) matrix of reference rows; rows with a non-finite value are dropped.

        Returns:
            None when fewer than ``min_rows`` complete rows remain or no column varies.
        """
        x = np.asarray(matrix, dtype=np.float64)
        x = x[np.all(np.isfinite(x), axis=1)]
        if x.shape[0] < max(min_rows, 2):
            return None
        mean, scale = x.mean(axis=0), x.std(axis=0)
        columns = np.flatnonzero(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))
        if columns.size == 0:
            return None
        z = (x[:, columns] - mean[columns]) / scale[columns]
        fitted = LedoitWolf().fit(z)
        sample = empirical_covariance(z)
        eigenvalues, basis = linalg.eigh(sample)
        eigenvalues = np.maximum(eigenvalues, 0.0)
        shrinkage = float(fitted.shrinkage_)
        shrunk = (1.0 - shrinkage) * eigenvalues + shrinkage * float(np.trace(sample)) / columns.size
        return cls(
            columns=columns,
            mean=mean[columns],
            scale=scale[columns],
            basis=np.asarray(basis, dtype=np.float64),
            shrunk=shrunk,
            weights=eigenvalues / shrunk,
            n_reference=int(x.shape[0]),
            shrinkage=shrinkage,
        )

    @property
    def covariance(self) -> FloatArray:
        """The shrunk covariance of the standardised columns."""
        return np.asarray((self.basis * self.shrunk) @ self.basis.T, dtype=np.float64)

    def test(self, matrix: NDArray[np.floating[Any]]) -> MeanShiftResult:
        """T² of the window rows ``matrix`` (same columns as the reference's matrix) against the reference.

        Rows with a non-finite tested value are dropped; an empty window gives p = 1.
        """
        x = np.asarray(matrix, dtype=np.float64)[:, self.columns]
        x = x[np.all(np.isfinite(x), axis=1)]
        n, dof = int(x.shape[0]), int(self.columns.size)
        if n == 0:
            return MeanShiftResult(0.0, 1.0, 0.0, 0, self.n_reference, dof)
        d = ((x - self.mean) / self.scale).mean(axis=0)
        projected = self.basis.T @ d
        distance_squared = float(np.sum(projected * projected / self.shrunk))
        statistic = distance_squared / (1.0 / n + 1.0 / self.n_reference)
        p_value = weighted_chi_square_sf(statistic, self.weights)
        return MeanShiftResult(statistic, p_value, math.sqrt(distance_squared), n, self.n_reference, dof)
