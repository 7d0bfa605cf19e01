"""Temperature scaling, expected calibration error and the operating threshold, against independent oracles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from modeling.calibration import (
    calibrated_probability,
    expected_calibration_error,
    fit_temperature,
    sigmoid,
    threshold_for_sensitivity,
)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    rng = np.random.default_rng(42)
    logits = rng.normal(0.0, 3.0, size=40_000)
    # Labels drawn from sigmoid(logit / T): the logits are over- or under-confident by exactly T.
    labels = (rng.random(logits.size) < sigmoid(logits / true_temperature)).astype(np.int64)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_fit_temperature_minimises_the_nll() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.5, 2.0, size=5_000)
    labels = (rng.random(logits.size) < sigmoid(logits / 1.7)).astype(np.int64)
    fitted = fit_temperature(logits, labels)

    def nll(t: float) -> float:
        p = np.clip(calibrated_probability(logits, t), 1e-12, 1 - 1e-12)
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

    assert nll(fitted) <= nll(fitted * 1.02) + 1e-9
    assert nll(fitted) <= nll(fitted / 1.02) + 1e-9


def test_fit_temperature_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature([0.1, 2.0], [1, 1])


def test_sigmoid_is_stable_at_extremes() -> None:
    values = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(values, [0.0, 0.5, 1.0])


def _ece_oracle(p: NDArray[Any], y: NDArray[Any], bins: int) -> float:
    total = 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for b in range(bins):
        upper = p <= edges[b + 1] if b == bins - 1 else p < edges[b + 1]
        mask = (p >= edges[b]) & upper
        if mask.any():
            total += mask.sum() / p.size * abs(y[mask].mean() - p[mask].mean())
    return total


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 1)), min_size=1, max_size=200),
    st.integers(1, 20),
)
def test_ece_matches_a_loop_oracle(pairs: list[tuple[float, int]], bins: int) -> None:
    p = np.array([a for a, _ in pairs])
    y = np.array([b for _, b in pairs])
    assert expected_calibration_error(p, y, bins) == pytest.approx(_ece_oracle(p, y, bins), abs=1e-9)


def test_ece_of_perfectly_calibrated_bins_is_zero_and_of_a_constant_is_its_gap() -> None:
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(10, 0.9), np.zeros(10)) == pytest.approx(0.9)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 1)), min_size=1, max_size=120),
    st.floats(0.05, 1.0),
)
def test_threshold_meets_the_target_and_no_higher_threshold_does(pairs: list[tuple[float, int]], target: float) -> None:
    scores = np.array([s for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    if labels.sum() == 0:
        labels[0] = 1
    threshold = threshold_for_sensitivity(scores, labels, target)
    positives = scores[labels == 1]
    sensitivity = float((positives >= threshold).mean())
    assert sensitivity >= target - 1e-12
    higher = positives[positives > threshold]
    if higher.size:
        next_threshold = float(higher.min())
        assert float((positives >= next_threshold).mean()) < target


def test_threshold_on_an_exact_fraction() -> None:
    # 10 positives, target 0.9: the 9th highest positive score.
    scores = np.concatenate([np.linspace(0.1, 1.0, 10), np.zeros(5)])
    labels = np.array([1] * 10 + [0] * 5)
    assert threshold_for_sensitivity(scores, labels, 0.9) == pytest.approx(0.2)
    assert math.isclose(threshold_for_sensitivity(scores, labels, 1.0), 0.1)


@pytest.mark.parametrize("target", [0.0, 1.5])
def test_threshold_rejects_targets_out_of_range(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        threshold_for_sensitivity([0.5], [1], target)


def test_threshold_needs_positives_and_labels_must_be_binary() -> None:
    with pytest.raises(ValueError, match="positive"):
        threshold_for_sensitivity([0.5, 0.2], [0, 0], 0.9)
    with pytest.raises(ValueError, match="0 or 1"):
        threshold_for_sensitivity([0.5, 0.2], [2, 0], 0.9)
