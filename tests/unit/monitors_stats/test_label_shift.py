"""Label shift, confidence-based estimates, weighted AUROC and the calibration line on read-labelled data,
each against an independent oracle (sklearn) or the simulation's known truth."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from kernel.calibration_line import fit_calibration_line
from kernel.ranks import auroc_delong, weighted_auroc
from services.monitors.calibration import CalibrationMonitor, CalibrationSpec
from services.monitors.core import Severity, Window
from services.monitors.core.label_shift import confidence_estimates, estimate_prevalence, prevalence_shift, read_error
from services.monitors.performance import PerformanceMonitor, PerformanceSpec

READER_SENSITIVITY, READER_SPECIFICITY = 0.89, 0.95
THRESHOLD = 0.25


def _window(n: int, prevalence: float, seed: int, *, temperature: float = 1.0, arm: str = "canary") -> Window:
    """A calibrated model (truth ~ Bernoulli(prevalence), logit ~ N(+-1.5, 1)) with imperfect reads."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < prevalence).astype(float)
    score = rng.normal(np.where(truth == 1, 1.5, -1.5), 1.0)
    # The reference's calibrated probability at prevalence 0.2 (Bayes with equal-variance normals).
    logit = 3.0 * score + np.log(0.2 / 0.8)
    probability = 1.0 / (1.0 + np.exp(-logit / temperature))
    right = rng.random(n) < np.where(truth == 1, READER_SENSITIVITY, READER_SPECIFICITY)
    read = np.where(right, truth, 1.0 - truth)
    return Window.from_columns(
        model_name="m", model_version="1", arm=arm, score=score, probability=probability, label=read,
        threshold=THRESHOLD,
    )  # fmt: skip


REFERENCE = _window(20_000, 0.2, 1, arm="reference")


def test_em_recovers_the_prevalence_of_a_label_shifted_window() -> None:
    for prevalence, seed in ((0.1, 2), (0.2, 3), (0.35, 4)):
        window = _window(5000, prevalence, seed)
        assert prevalence_shift(REFERENCE, window).window_prevalence == pytest.approx(prevalence, abs=0.02)
    assert estimate_prevalence(np.full(10, 0.3), 0.3) == pytest.approx(0.3)


def test_weighted_auroc_matches_sklearn_sample_weights() -> None:
    rng = np.random.default_rng(5)
    labels = (rng.random(800) < 0.3).astype(float)
    scores = np.round(rng.normal(labels, 1.0), 1)  # ties on purpose
    weights = rng.uniform(0.2, 3.0, 800)
    estimate = weighted_auroc(scores, labels, weights, auroc_delong(scores, labels))
    assert estimate.value == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)


def test_calibration_line_converges_on_read_labelled_windows_and_matches_sklearn() -> None:
    for seed in range(5):
        window = _window(1000, 0.2, 10 + seed)
        line = fit_calibration_line(window.probability, window.label)
        assert line.converged and np.isfinite([line.slope, line.intercept, line.slope_se]).all()
        x = np.log(window.probability / (1 - window.probability))[:, None]
        oracle = LogisticRegression(C=1e6, tol=1e-10, max_iter=10_000).fit(x, window.label)
        assert line.slope == pytest.approx(oracle.coef_[0, 0], abs=2e-3)
        assert line.intercept == pytest.approx(oracle.intercept_[0], abs=2e-3)


def test_confidence_estimates_track_realised_read_labelled_metrics() -> None:
    window = _window(2000, 0.2, 20)
    estimates = {e.metric: e for e in confidence_estimates(REFERENCE, window)}
    realised = {
        "sensitivity": float(window.decision[window.label == 1].mean()),
        "specificity": float(1 - window.decision[window.label == 0].mean()),
        "auroc": auroc_delong(window.score, window.label).value,
    }
    for metric, value in realised.items():
        estimate = estimates[metric]
        assert estimate.ci_low <= estimate.value <= estimate.ci_high
        assert estimate.value == pytest.approx(value, abs=0.03), metric


def test_pending_reads_give_marked_estimates() -> None:
    monitor = PerformanceMonitor(REFERENCE, PerformanceSpec(name="p"))
    window = _window(1000, 0.2, 21)
    pending = Window.from_columns(
        model_name="m", model_version="1", arm="canary", score=window.score, probability=window.probability,
        decision=window.decision,
    )  # fmt: skip
    finding = monitor.evaluate(pending)
    estimate = finding.get("sensitivity_estimate")
    assert estimate.test == "cbpe" and "estimate" in estimate.note and "CBPE" in finding.summary


def test_prevalence_change_is_a_prevalence_finding_not_a_sensitivity_breach() -> None:
    monitor = PerformanceMonitor(REFERENCE, PerformanceSpec(name="p"))
    finding = monitor.evaluate(_window(3000, 0.08, 30))
    assert finding.severity is not Severity.BREACH, finding.summary
    assert finding.get("prevalence_ratio").severity is Severity.WARNING
    assert "prevalence changed" in finding.summary


def test_calibration_catches_a_doubled_temperature_and_not_a_prevalence_change() -> None:
    monitor = CalibrationMonitor(REFERENCE, CalibrationSpec(name="c", null_resamples=1000))
    assert monitor.evaluate(_window(1000, 0.2, 40, temperature=2.0)).severity is Severity.BREACH
    assert monitor.evaluate(_window(1000, 0.2, 41)).severity is not Severity.BREACH
    assert monitor.evaluate(_window(2000, 0.08, 42)).severity is not Severity.BREACH


def test_the_readers_error_rates_are_read_off_the_reference() -> None:
    error = read_error(REFERENCE)
    assert error.sensitivity == pytest.approx(READER_SENSITIVITY, abs=0.02)
    assert error.false_positive == pytest.approx(1.0 - READER_SPECIFICITY, abs=0.01)
    # Posterior of a nodule given the read, by Bayes (the oracle is the textbook formula on one row).
    p, se, fp = 0.3, error.sensitivity, error.false_positive
    posterior = error.posterior(np.array([p, p, p]), np.array([1.0, 0.0, np.nan]))
    assert posterior[0] == pytest.approx(se * p / (se * p + fp * (1 - p)))
    assert posterior[1] == pytest.approx((1 - se) * p / ((1 - se) * p + (1 - fp) * (1 - p)))
    assert posterior[2] == pytest.approx(p)


@pytest.mark.parametrize("prevalence", [0.1, 0.35])
def test_the_reweighted_reference_expects_the_read_sensitivity_of_a_label_shifted_window(prevalence: float) -> None:
    """Oracle: the realised read-labelled sensitivity of a very large window drawn at the new prevalence."""
    large = _window(400_000, prevalence, 21)
    realised = float(large.decision[large.label == 1].mean())
    window = _window(2000, prevalence, 22)
    shift = prevalence_shift(REFERENCE, window)
    assert shift.window_prevalence == pytest.approx(prevalence, abs=0.015)
    positives = REFERENCE.label == 1
    expected = float(np.sum(shift.weights[positives] * REFERENCE.decision[positives]) / shift.weights[positives].sum())
    assert expected == pytest.approx(realised, abs=0.01)
