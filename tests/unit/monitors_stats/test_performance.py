"""Performance monitor: realised metrics with maturity, false alarms under no change, planted degradation."""

from __future__ import annotations

import numpy as np
import pytest

from services.monitors.core import Severity, Window
from services.monitors.performance import PerformanceMonitor, PerformanceSpec
from tests.unit.monitors_stats.simulated import SimRows, to_window

NULL_WINDOWS = 200
READS = 1000


@pytest.fixture(scope="module")
def monitor(labelled_reference: SimRows) -> PerformanceMonitor:
    return PerformanceMonitor(
        to_window(labelled_reference, arm="reference", features=False), PerformanceSpec(name="chest-performance")
    )


def _degraded(window: Window, noise: float, seed: int) -> Window:
    """The same studies scored by a worse model: extra score noise, same operating point."""
    score = window.score + np.random.default_rng(seed).normal(scale=noise, size=len(window))
    probability = 1.0 / (1.0 + np.exp(-(-1.93 + 2.46 * score)))
    return Window.from_columns(
        model_name=window.model_name,
        model_version="2",
        arm="canary",
        score=score,
        probability=probability,
        decision=(probability >= 0.31).astype(float),
        label=window.label,
    )


def test_realised_metrics_and_maturity(monitor: PerformanceMonitor, labelled_null_pool: SimRows) -> None:
    labelled = np.arange(READS) % 4 != 0
    window = to_window(labelled_null_pool.take(slice(0, READS)), labelled=labelled, features=False)
    finding = monitor.evaluate(window)
    maturity = finding.get("label_maturity")
    assert maturity.value == pytest.approx(0.75) and maturity.note == "750/1000 labelled (75%)"
    assert finding.maturity.labelled == 750
    reads = window.labelled
    positives = reads & (window.label == 1)
    sensitivity = finding.get("sensitivity")
    assert sensitivity.value == pytest.approx(np.mean(window.decision[positives] == 1))
    assert sensitivity.n == int(positives.sum())
    override = finding.get("override_rate")
    assert override.value == pytest.approx(np.mean(window.decision[reads] != window.label[reads]))
    auroc = finding.get("auroc")
    assert auroc.test == "delong-logit" and auroc.ci_low < auroc.value < auroc.ci_high  # type: ignore[operator]
    assert {s.name for s in finding.statistics} >= {"auroc_change", "override_rate_change", "specificity_change"}
    assert "labels 75% mature" in finding.summary


def test_too_few_reads_is_insufficient(monitor: PerformanceMonitor, labelled_null_pool: SimRows) -> None:
    labelled = np.zeros(READS, dtype=bool)
    labelled[:40] = True
    finding = monitor.evaluate(to_window(labelled_null_pool.take(slice(0, READS)), labelled=labelled, features=False))
    assert finding.severity is Severity.INFO and "insufficient evidence" in finding.summary


def test_null_windows_rarely_breach(monitor: PerformanceMonitor, labelled_null_pool: SimRows) -> None:
    rng = np.random.default_rng(14)
    severities = []
    for _ in range(NULL_WINDOWS):
        rows = labelled_null_pool.take(rng.choice(len(labelled_null_pool), READS, replace=False))
        severities.append(monitor.evaluate(to_window(rows, features=False)).severity)
    breaches, warnings = severities.count(Severity.BREACH), severities.count(Severity.WARNING)
    print(f"\n[performance null] {NULL_WINDOWS} windows of {READS} reads: {breaches} breaches, {warnings} warnings")
    assert breaches <= NULL_WINDOWS // 100


def test_degraded_model_breaches_and_override_rate_moves(
    monitor: PerformanceMonitor, labelled_null_pool: SimRows
) -> None:
    window = _degraded(to_window(labelled_null_pool.take(slice(0, READS)), features=False), noise=1.0, seed=1)
    finding = monitor.evaluate(window)
    assert finding.severity is Severity.BREACH
    assert finding.get("auroc_change").severity is Severity.BREACH
    override = finding.get("override_rate_change")
    assert override.value > 0.03 and override.p_value is not None and override.p_value < 0.001


def test_comparator_replaces_the_reference(monitor: PerformanceMonitor, labelled_null_pool: SimRows) -> None:
    stable = to_window(labelled_null_pool.take(slice(0, READS)), arm="stable", features=False)
    canary = _degraded(stable, noise=1.0, seed=2)
    finding = monitor.evaluate(canary, comparator=stable)
    change = finding.get("auroc_change")
    assert change.note.startswith("vs stable")
    assert change.value == pytest.approx(finding.get("auroc").value - monitor.evaluate(stable).get("auroc").value)


def test_policy_floor_breaches_only_with_confidence(labelled_reference: SimRows, labelled_null_pool: SimRows) -> None:
    reference = to_window(labelled_reference, arm="reference", features=False)
    window = to_window(labelled_null_pool.take(slice(0, READS)), features=False)
    auroc = PerformanceMonitor(reference, PerformanceSpec(name="p")).evaluate(window).get("auroc").value
    above = PerformanceMonitor(reference, PerformanceSpec(name="p", minimum={"auroc": auroc + 0.002}))
    far = PerformanceMonitor(reference, PerformanceSpec(name="p", minimum={"auroc": 0.999}))
    assert above.evaluate(window).get("auroc").severity is Severity.WARNING
    assert far.evaluate(window).get("auroc").severity is Severity.BREACH
