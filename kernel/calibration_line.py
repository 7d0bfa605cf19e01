"""Calibration slope and intercept: logistic regression of the read on the logit of the served probability.

A calibrated model has slope 1 and intercept 0; slope < 1 means over-confident probabilities, intercept != 0
means probabilities too high or too low overall. Fitted by a bounded, damped Newton–Raphson on the
log-likelihood with a very weak ridge towards (0, 1) (two parameters, a handful of iterations; it converges
on read-labelled windows, where label noise flattens the line), with Wald intervals from the inverse Fisher
information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kernel.distributions import normal_quantile

_MAX_ITERATIONS = 100
_TOLERANCE = 1e-9
_LOGIT_CLIP = 1e-7
#: Largest change of either parameter in one Newton step.
_MAX_STEP = 2.0
_HALVINGS = 30
#: A very weak ridge towards (intercept 0, slope 1): it keeps the fit finite under separation and changes
#: nothing measurable on windows of tens of reads or more.
_RIDGE = 1e-4
_RIDGE_CENTRE = np.array([0.0, 1.0])


def _penalised_nll(x: NDArray[np.float64], y: NDArray[np.float64], beta: NDArray[np.float64]) -> float:
    eta = x @ beta
    # log(1 + e^eta) - y eta, written to stay finite for any eta.
    loss = np.logaddexp(0.0, eta) - y * eta
    return float(loss.sum() + 0.5 * _RIDGE * np.sum((beta - _RIDGE_CENTRE) ** 2))


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
    penalty = _RIDGE * np.eye(2)
    objective = _penalised_nll(x, y, beta)
    converged = False
    for _ in range(_MAX_ITERATIONS):
        mu = _sigmoid(x @ beta)
        weight = mu * (1.0 - mu)
        hessian = x.T @ (x * weight[:, None]) + penalty
        gradient = x.T @ (y - mu) - _RIDGE * (beta - _RIDGE_CENTRE)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return nan
        # Bounded, damped Newton: a step never exceeds _MAX_STEP and is halved until the penalised
        # likelihood improves, so the iterations cannot run away on noisy (read-labelled) data.
        size = float(np.abs(step).max())
        if size > _MAX_STEP:
            step = step * (_MAX_STEP / size)
        for _ in range(_HALVINGS):
            candidate: NDArray[np.float64] = np.asarray(beta + step, dtype=np.float64)
            value = _penalised_nll(x, y, candidate)
            if value <= objective + 1e-12:
                break
            step = step / 2.0
        else:
            converged = float(np.abs(step).max()) < 1e-6
            break
        beta, objective = candidate, value
        if float(np.abs(step).max()) < _TOLERANCE:
            converged = True
            break
    if not np.isfinite(beta).all():
        return nan
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
