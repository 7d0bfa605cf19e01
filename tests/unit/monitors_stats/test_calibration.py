"""Calibration monitor: statistics, false alarms under no change, detection of a 0.05 ECE increase, and
temperature recalibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from services.monitors.calibration import (
    BinTotals,
    CalibrationMonitor,
    CalibrationSpec,
    fit_temperature,
    propose_recalibration,
)
from services.monitors.core import Severity, Window
from tests.unit.monitors_stats.conftest import CALIBRATION_SEEDS
from tests.unit.monitors_stats.simulated import SimRows, served_probability, to_window

NULL_WINDOWS = 200
READS = 1000
#: Readers of the shipped scenarios, weighted: P(read positive | lesion) and P(read positive | none).
READ_SENSITIVITY = (0.92 + 0.88 + 0.5 * 0.85) / 2.5
READ_FALSE_POSITIVE = 1.0 - (0.95 + 0.97 + 0.5 * 0.93) / 2.5


def _population_ece(rows: SimRows, logit_shift: float, bins: int = 10) -> float:
    """ECE against reads with the reads' randomness integrated out (expected read per study)."""
    expected_read = rows.truth * READ_SENSITIVITY + (1.0 - rows.truth) * READ_FALSE_POSITIVE
    return BinTotals.of(served_probability(rows.scores(), logit_shift), expected_read, bins).ece


@pytest.fixture(scope="module")
def planted_shift(labelled_null_pool: SimRows, labelled_reference: SimRows) -> float:
    """Logit offset of the served probability that raises the population ECE by 0.05 (bisection)."""
    population = labelled_reference
    base = _population_ece(population, 0.0)
    low, high = 0.0, 3.0
    for _ in range(50):
        middle = (low + high) / 2.0
        if _population_ece(population, middle) - base < 0.05:
            low = middle
        else:
            high = middle
    increase = _population_ece(labelled_null_pool, high) - _population_ece(labelled_null_pool, 0.0)
    print(f"\n[calibration] planted logit shift {high:.3f}: population ECE {base:.4f} -> {base + 0.05:.4f}")
    assert increase == pytest.approx(0.05, abs=0.005)  # the same increase on other patients
    return high


@pytest.fixture(scope="module")
def monitor(labelled_reference: SimRows) -> CalibrationMonitor:
    reference = to_window(labelled_reference, arm="reference", features=False)
    return CalibrationMonitor(reference, CalibrationSpec(name="chest-calibration"))


def test_statistics_of_a_window(monitor: CalibrationMonitor, labelled_null_pool: SimRows) -> None:
    window = to_window(labelled_null_pool.take(slice(0, READS)), features=False)
    finding = monitor.evaluate(window)
    ece = finding.get("ece")
    assert ece.value == pytest.approx(BinTotals.of(window.probability, window.label, 10).ece)
    assert ece.ci_low is not None and ece.ci_high is not None and ece.ci_low <= ece.value <= ece.ci_high
    brier = finding.get("brier")
    assert brier.value == pytest.approx(np.mean((window.probability - window.label) ** 2))
    bins = finding.select("reliability_bin")
    assert sum(s.n or 0 for s in bins) == READS
    assert {s.test for s in bins} == {"wilson"}
    change = finding.get("ece_increase")
    assert change.test == "ece-resampling-vs-reference" and change.p_value is not None
    assert finding.get("calibration_slope").ci_low is not None
    assert finding.maturity.labelled == READS


def test_partial_labels_are_stated_and_small_windows_insufficient(
    monitor: CalibrationMonitor, labelled_null_pool: SimRows
) -> None:
    rows = labelled_null_pool.take(slice(0, READS))
    labelled = np.zeros(READS, dtype=bool)
    labelled[:150] = True
    finding = monitor.evaluate(to_window(rows, labelled=labelled, features=False))
    assert finding.severity is Severity.INFO
    assert finding.maturity.labelled == 150 and finding.maturity.total == READS
    assert "insufficient evidence" in finding.summary and "150/1000 labelled" in finding.summary


@pytest.mark.slow
def test_null_windows_rarely_breach(monitor: CalibrationMonitor, labelled_null_pool: SimRows) -> None:
    rng = np.random.default_rng(12)
    severities = []
    for _ in range(NULL_WINDOWS):
        rows = labelled_null_pool.take(rng.choice(len(labelled_null_pool), READS, replace=False))
        severities.append(monitor.evaluate(to_window(rows, features=False)).severity)
    breaches, warnings = severities.count(Severity.BREACH), severities.count(Severity.WARNING)
    print(f"\n[calibration null] {NULL_WINDOWS} windows of {READS} reads: {breaches} breaches, {warnings} warnings")
    assert breaches <= NULL_WINDOWS // 100


def test_ece_increase_of_005_breaches_within_1000_reads(
    monitor: CalibrationMonitor, calibration_streams: dict[int, SimRows], planted_shift: float
) -> None:
    first_breach = {}
    for seed in CALIBRATION_SEEDS:
        window = to_window(calibration_streams[seed], logit_shift=planted_shift, features=False)
        for reads in range(100, READS + 1, 100):
            if monitor.evaluate(window.select(slice(0, reads))).severity is Severity.BREACH:
                first_breach[seed] = reads
                break
        unchanged = monitor.evaluate(to_window(calibration_streams[seed], features=False))
        assert unchanged.severity is not Severity.BREACH
    print(f"\n[calibration power] reads until breach by seed: {first_breach}")
    assert set(first_breach) == set(CALIBRATION_SEEDS)
    assert max(first_breach.values()) <= READS


def test_perfect_null_model_needs_no_reference() -> None:
    rng = np.random.default_rng(3)
    probability = rng.beta(2, 5, size=2000)
    label = (rng.random(2000) < probability).astype(float)
    window = Window.from_columns(
        model_name="m", model_version="1", arm="canary", score=np.log(probability / (1 - probability)), label=label
    )
    monitor = CalibrationMonitor(None, CalibrationSpec(name="c", null_model="perfect"))
    calibrated = monitor.evaluate(window)
    assert calibrated.severity is Severity.INFO
    assert calibrated.get("ece_increase").test == "ece-resampling-vs-perfect"
    skewed = Window.from_columns(
        model_name="m", model_version="1", arm="canary", score=window.score, probability=probability**0.5, label=label
    )
    assert monitor.evaluate(skewed).severity is Severity.BREACH
    with pytest.raises(ValueError, match="needs a reference"):
        CalibrationMonitor(None, CalibrationSpec(name="c"))


def test_max_ece_limit_warns() -> None:
    rng = np.random.default_rng(4)
    probability = rng.beta(2, 5, size=1000)
    label = (rng.random(1000) < probability).astype(float)
    window = Window.from_columns(
        model_name="m", model_version="1", arm="canary", score=np.zeros(1000), probability=probability, label=label
    )
    finding = CalibrationMonitor(None, CalibrationSpec(name="c", null_model="perfect", max_ece=0.001)).evaluate(window)
    assert finding.get("ece").severity is Severity.WARNING
    assert finding.get("ece").limit == 0.001


def test_fit_temperature_matches_scipy_minimiser() -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(scale=3.0, size=4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-scores / 2.0))).astype(float)

    def nll(temperature: float) -> float:
        z = scores / temperature
        return float(np.mean(np.logaddexp(0, z) - labels * z))

    oracle = optimize.minimize_scalar(nll, bounds=(0.1, 10.0), method="bounded", options={"xatol": 1e-8})
    assert fit_temperature(scores, labels) == pytest.approx(oracle.x, abs=1e-4)


def test_recalibration_proposal_improves_held_out_ece() -> None:
    rng = np.random.default_rng(6)
    scores = rng.normal(scale=3.0, size=3000)
    labels = (rng.random(3000) < 1 / (1 + np.exp(-scores / 2.0))).astype(float)
    window = Window.from_columns(model_name="m", model_version="4", arm="canary", score=scores, label=labels)
    proposal = propose_recalibration(window, holdout_fraction=0.3, seed=1)
    assert proposal.temperature == pytest.approx(2.0, abs=0.25)
    assert proposal.ece_after < proposal.ece_before and proposal.improves
    assert (proposal.n_fit, proposal.n_holdout) == (2100, 900)
    assert proposal.model_version == "4"
    with pytest.raises(ValueError, match="at least 10 reads"):
        propose_recalibration(window.select(slice(0, 12)))
