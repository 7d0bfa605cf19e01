"""Drift monitor: behaviour, false alarms under no change, and detection of a 0.25 SD scanner shift at one site."""

from __future__ import annotations

import numpy as np
import pytest

from services.monitors.core import Severity, Window
from services.monitors.drift import DriftMonitor, DriftSpec
from tests.unit.monitors_stats.conftest import DRIFT_SEEDS, SHIFT_START
from tests.unit.monitors_stats.simulated import SimRows, to_window

NULL_WINDOWS = 200
WINDOW = 500
STEP = 50


@pytest.fixture(scope="module")
def monitor(drift_reference: SimRows) -> DriftMonitor:
    return DriftMonitor(to_window(drift_reference, arm="reference"), DriftSpec(name="chest-drift"))


def test_tests_every_column_overall_and_per_site(monitor: DriftMonitor, drift_null_pool: SimRows) -> None:
    finding = monitor.evaluate(to_window(drift_null_pool.take(slice(0, WINDOW))))
    ks = finding.select("ks_statistic")
    features = {s.feature for s in ks}
    assert "intensity.p5" in features and "embedding.7" in features and "output.score" in features
    assert "acquisition.pixel_spacing" in features
    assert {s.subgroup for s in ks} == {"", "site=site-A", "site=site-B", "site=site-C"}
    assert len(ks) == 4 * len(features)
    chi = finding.select("cramers_v")
    acquisition = {"acquisition.site", "acquisition.manufacturer", "acquisition.manufacturer_model"}
    assert acquisition <= {s.feature for s in chi} <= acquisition | {"patient.sex", "patient.age_band"}
    assert all(s.test == "chi-square" for s in chi) and all(s.test == "kolmogorov-smirnov" for s in ks)
    assert all(s.adjustment.startswith("holm within ") and s.p_value_adjusted is not None for s in ks + chi)
    assert all(s.p_value_adjusted >= s.p_value for s in ks + chi)  # type: ignore[operator]
    assert finding.maturity.total == WINDOW
    # The output score is its own family: Holm over its 4 tests (overall + 3 sites), not over every column.
    output = [s for s in ks if s.feature == "output.score"]
    assert {s.adjustment for s in output} == {"holm within output"}
    smallest = min(s.p_value for s in output)  # type: ignore[type-var]
    assert min(s.p_value_adjusted for s in output) == pytest.approx(min(1.0, 4 * smallest))  # type: ignore[type-var]


def test_small_window_is_insufficient_evidence(monitor: DriftMonitor, drift_null_pool: SimRows) -> None:
    finding = monitor.evaluate(to_window(drift_null_pool.take(slice(0, 20))))
    assert finding.severity is Severity.INFO
    assert "insufficient evidence" in finding.summary
    assert finding.statistics[0].value == 20


def test_new_scanner_model_is_named(monitor: DriftMonitor, drift_null_pool: SimRows) -> None:
    window = to_window(drift_null_pool.take(slice(0, WINDOW)))
    models = np.array(window.attributes["manufacturer_model"])
    models[window.attributes["site"] == "site-B"] = "MX-9"
    relabelled = Window.from_columns(
        model_name=window.model_name,
        model_version=window.model_version,
        arm=window.arm,
        score=window.score,
        features=dict(window.features),
        attributes={**window.attributes, "manufacturer_model": models},
    )
    finding = monitor.evaluate(relabelled)
    statistic = finding.get("cramers_v", feature="acquisition.manufacturer_model")
    assert statistic.severity is Severity.BREACH
    assert statistic.note == "new: MX-9"
    assert finding.severity is Severity.BREACH


@pytest.mark.slow
def test_null_windows_rarely_breach(monitor: DriftMonitor, drift_null_pool: SimRows) -> None:
    """No change: windows drawn (without replacement) from baseline studies never seen by the reference.

    Each window is then marginally an i.i.d. sample of the baseline hospital, so its false-alarm chance
    is the per-window rate the policy controls (Holm, alpha_breach = 0.001 over about 70 tests).
    """
    rng = np.random.default_rng(11)
    severities = []
    for _ in range(NULL_WINDOWS):
        rows = drift_null_pool.take(rng.choice(len(drift_null_pool), WINDOW, replace=False))
        severities.append(monitor.evaluate(to_window(rows)).severity)
    breaches = severities.count(Severity.BREACH)
    warnings = severities.count(Severity.WARNING)
    print(f"\n[drift null] {NULL_WINDOWS} windows of {WINDOW}: {breaches} breaches, {warnings} warnings")
    assert breaches <= NULL_WINDOWS // 100


def _detection_delay(monitor: DriftMonitor, stream: SimRows) -> tuple[int | None, int]:
    """Predictions after the change until a sliding window of the last WINDOW predictions breaches, and
    how many windows breached before the change."""
    window = to_window(stream)
    early = 0
    for end in range(WINDOW, len(stream) + 1, STEP):
        finding = monitor.evaluate(window.select(slice(end - WINDOW, end)))
        if finding.severity is Severity.BREACH:
            if end <= SHIFT_START:
                early += 1
                continue
            return end - SHIFT_START, early
    return None, early


def test_scanner_shift_at_one_site_is_detected_within_1000_predictions(
    monitor: DriftMonitor, drift_streams: dict[int, SimRows]
) -> None:
    """Site B's scanner shifts intensity by 0.25 SD of the per-image mean (same model name, so no metadata
    changes): a breach must come within 1,000 predictions of the change, on every seed."""
    delays = {}
    for seed in DRIFT_SEEDS:
        delay, early = _detection_delay(monitor, drift_streams[seed])
        delays[seed] = delay
        assert early == 0, f"seed {seed}: {early} breaches before the change"
    print(f"\n[drift power] detection delay in predictions by seed: {delays}")
    assert all(delay is not None and delay <= 1000 for delay in delays.values())


def test_shift_is_localised_to_the_site_and_intensity(monitor: DriftMonitor, drift_streams: dict[int, SimRows]) -> None:
    stream = drift_streams[DRIFT_SEEDS[0]]
    finding = monitor.evaluate(to_window(stream.take(slice(SHIFT_START, SHIFT_START + 1000))))
    breached = [s for s in finding.statistics if s.severity is Severity.BREACH]
    assert breached
    assert {s.subgroup for s in breached} <= {"site=site-B", ""}
    assert all(s.feature.startswith(("intensity.", "embedding.")) or s.feature == "inputs" for s in breached)
    assert "site=site-B" in finding.summary
