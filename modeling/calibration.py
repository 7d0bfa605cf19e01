"""Post-hoc calibration of the nodule score: temperature scaling, calibration error, operating threshold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

#: Equal-width probability bins used for the expected calibration error.
ECE_BINS = 15
_LBFGS_STEPS = 100


def sigmoid(logits: ArrayLike) -> NDArray[np.float64]:
    """Numerically stable logistic function, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1.0 + exp_z)
    return out


def calibrated_probability(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """P(nodule) after temperature scaling: ``sigmoid(logit / temperature)``."""
    return sigmoid(np.asarray(logits, dtype=np.float64) / temperature)


def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """Fit the temperature that minimises the binary negative log-likelihood of ``sigmoid(logit / T)``.

    The optimiser works on ``log T`` so the temperature stays positive.

    Args:
        logits: Raw model logits, shape (n,).
        labels: Ground truth 0/1, shape (n,).

    Returns:
        The fitted temperature (> 0).

    Raises:
        ValueError: If the inputs are empty, of different lengths, or hold a single class.
    """
    z, y = _check_pair(logits, labels)
    if y.min() == y.max():
        raise ValueError("temperature fitting needs both classes in the labels")
    z_t = torch.from_numpy(z)
    y_t = torch.from_numpy(y.astype(np.float64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=_LBFGS_STEPS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z_t / torch.exp(log_t), y_t)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    return float(torch.exp(log_t).item())


def expected_calibration_error(probabilities: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(positive) over equal-width bins.

    ``sum_b (n_b / n) * |mean(label in b) - mean(probability in b)|``; the last bin includes 1.0.

    Args:
        probabilities: Predicted probability of the positive class, shape (n,).
        labels: Ground truth 0/1, shape (n,).
        bins: Number of equal-width bins over [0, 1].

    Returns:
        The ECE, in [0, 1].
    """
    p, y = _check_pair(probabilities, labels)
    index = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    return float(np.abs(sum_y - sum_p).sum() / len(p))


def threshold_for_sensitivity(probabilities: ArrayLike, labels: ArrayLike, target: float) -> float:
    """The highest threshold whose rule ``probability >= threshold`` reaches ``target`` sensitivity.

    The highest such threshold gives the best specificity among the thresholds meeting the target.

    Args:
        probabilities: Scores (any monotone scale works; the threshold is on the same scale).
        labels: Ground truth 0/1.
        target: Required sensitivity, in (0, 1].

    Returns:
        The threshold: the k-th highest positive score with ``k = ceil(target * positives)``.

    Raises:
        ValueError: If the target is out of range or there are no positives.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    p, y = _check_pair(probabilities, labels)
    positive_scores = np.sort(p[y == 1])[::-1]
    if positive_scores.size == 0:
        raise ValueError("threshold selection needs at least one positive")
    # The small tolerance keeps a target like 0.9 x 200 positives from rounding up to 181 in floating point.
    needed = max(1, math.ceil(target * positive_scores.size - 1e-9))
    return float(positive_scores[needed - 1])


def _check_pair(values: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    y: NDArray[Any] = np.asarray(labels).reshape(-1)
    if v.size == 0 or v.size != y.size:
        raise ValueError(f"need non-empty arrays of equal length, got {v.size} values and {y.size} labels")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return v, y.astype(np.int64)
