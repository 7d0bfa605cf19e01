"""Calibration slope and intercept: logistic regression of the read on the logit of the served probability.

A calibrated model has slope 1 and intercept 0; slope < 1 means over-confident probabilities, intercept != 0
means probabilities too high or too low overall. Fitted by Newton–Raphson (two parameters, a handful of
iterations), with Wald intervals from the inverse Fisher information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from services.monitors.core.distributions import normal_quantile

_MAX_ITERATIONS = 50
_TOLERANCE = 1e-10
_LOGIT_CLIP = 1e-7


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    # The tanh form cannot overflow, whatever the linear predictor does during the iterations.
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


@dataclass(frozen=True)
class CalibrationLine:
    """Fitted ``logit P(read = 1) = intercept + slope * logit(p)`` with standard errors.

    Attributes:
        intercept: Fitted intercept (NaN when the fit is undefined, e.g. one class only).
        slope: Fitted slope.
        intercept_se: Standard error of the intercept.
        slope_se: Standard error of the slope.
        n: Observations.
        converged: Whether Newton's method converged (False also under separation).
    """

    intercept: float
    slope: float
    intercept_se: float
    slope_se: float
    n: int
    converged: bool

    def interval(self, parameter: str, level: float = 0.95) -> tuple[float, float]:
        """Wald interval of ``intercept`` or ``slope``."""
        value, se = (self.intercept, self.intercept_se) if parameter == "intercept" else (self.slope, self.slope_se)
        z = normal_quantile(0.5 + level / 2.0)
        return value - z * se, value + z * se


def fit_calibration_line(probabilities: ArrayLike, labels: ArrayLike) -> CalibrationLine:
    """Fit the calibration line of probabilities against 0/1 labels.

    Args:
        probabilities: Served probabilities (clipped away from 0 and 1 before the logit).
        labels: Reads, 0/1.

    Returns:
        The fit; NaN parameters when both classes are not present or the fit diverges.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    y = np.asarray(labels, dtype=np.float64)
    n = int(y.size)
    nan = CalibrationLine(math.nan, math.nan, math.nan, math.nan, n, False)
    if n < 3 or y.min() == y.max():
        return nan
    x = np.column_stack((np.ones(n), np.log(p / (1.0 - p))))
    beta = np.array([0.0, 1.0])
    converged = False
    for _ in range(_MAX_ITERATIONS):
        mu = _sigmoid(x @ beta)
        weight = mu * (1.0 - mu)
        hessian = x.T @ (x * weight[:, None])
        try:
            step = np.linalg.solve(hessian, x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return nan
        beta = beta + step
        if not np.isfinite(beta).all():
            return nan
        if float(np.abs(step).max()) < _TOLERANCE:
            converged = True
            break
    mu = _sigmoid(x @ beta)
    information = x.T @ (x * (mu * (1.0 - mu))[:, None])
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return nan
    return CalibrationLine(
        intercept=float(beta[0]),
        slope=float(beta[1]),
        intercept_se=float(math.sqrt(max(covariance[0, 0], 0.0))),
        slope_se=float(math.sqrt(max(covariance[1, 1], 0.0))),
        n=n,
        converged=converged,
    )
