"""Bias monitor: subgroups, insufficient evidence, gaps, false alarms under no change, and a subgroup's
sensitivity drop (simulator scenario ``subgroup_degradation``: women aged 70+ from study 2000).

The monitor under test has a 40,000-study reference (about 1,400 read-positives in the affected subgroup):
the degradation test compares the window's subgroup with the reference's, so a small reference adds its own
noise to every comparison (with 12,000 studies, 430 positives, the raw p-values of the same drops are about
ten times larger)."""

from __future__ import annotations

import numpy as np
import pytest

from services.monitors.bias import BiasMonitor, BiasSpec, enumerate_subgroups
from services.monitors.core import Severity
from tests.unit.monitors_stats.conftest import BIAS_POWER_SEEDS, BIAS_POWER_SIZES, BIAS_SEEDS
from tests.unit.monitors_stats.simulated import (
    THRESHOLD,
    SimRows,
    served_probability,
    to_window,
    without_subgroup_degradation,
)

NULL_WINDOWS = 200
WINDOW = 5000
AFFECTED = "sex=female,age_band=70+"
#: Subgroups that hold the affected one (their sensitivity drops too, diluted).
CONTAINING = (AFFECTED, "sex=female", "age_band=70+")


@pytest.fixture(scope="module")
def monitor(large_labelled_reference: SimRows) -> BiasMonitor:
    reference = to_window(large_labelled_reference, arm="reference", features=False)
    return BiasMonitor(reference, BiasSpec(name="chest-bias"))


def test_subgroups_include_attributes_and_intersections(labelled_null_pool: SimRows) -> None:
    window = to_window(labelled_null_pool.take(slice(0, WINDOW)), features=False)
    names = [s.name for s in enumerate_subgroups(window, ("sex", "site"), (("sex", "age_band"),))]
    assert names[:2] == ["sex=female", "sex=male"]
    assert {"site=site-A", "site=site-B", "site=site-C", AFFECTED, "sex=male,age_band=<50"} <= set(names)
    assert len(names) == 2 + 3 + 6


def test_small_subgroups_are_insufficient_evidence_not_alarms(
    monitor: BiasMonitor, labelled_null_pool: SimRows
) -> None:
    finding = monitor.evaluate(to_window(labelled_null_pool.take(slice(0, 600)), features=False))
    insufficient = [s for s in finding.statistics if s.name == "subgroup_size"]
    assert AFFECTED in {s.subgroup for s in insufficient}
    assert all(s.severity is Severity.INFO and "insufficient evidence" in s.note for s in insufficient)
    assert finding.select("sensitivity", subgroup=AFFECTED) == []
    assert finding.severity is Severity.INFO


def test_metrics_gaps_and_stable_differences(monitor: BiasMonitor, labelled_null_pool: SimRows) -> None:
    canary = to_window(labelled_null_pool.take(slice(0, WINDOW)), features=False)
    stable = to_window(labelled_null_pool.take(slice(WINDOW, 2 * WINDOW)), arm="stable", features=False)
    finding = monitor.evaluate(canary, stable=stable)
    subgroup = "site=site-B"
    sensitivity = finding.get("sensitivity", subgroup=subgroup)
    assert sensitivity.test == "wilson" and sensitivity.ci_low < sensitivity.value < sensitivity.ci_high  # type: ignore[operator]
    gap = finding.get("sensitivity_gap", subgroup=subgroup)
    assert gap.value == pytest.approx(sensitivity.value - finding.get("sensitivity").value)
    assert gap.ci_low is not None and gap.ci_low < gap.value < gap.ci_high  # type: ignore[operator]
    versus = finding.get("sensitivity_vs_stable", subgroup=subgroup)
    site_b = stable.attributes["site"] == "site-B"
    positives = site_b & (stable.label == 1)
    stable_sensitivity = float(np.mean(stable.decision[positives] == 1))
    assert versus.value == pytest.approx(sensitivity.value - stable_sensitivity)
    assert versus.test == "newcombe"
    assert finding.get("auroc_vs_stable", subgroup=subgroup).test == "delong"
    changes = finding.select("sensitivity_change")
    assert len(changes) == len(finding.select("specificity_change")) == 17
    assert all(s.adjustment == "holm" for s in changes)


@pytest.mark.slow
def test_null_windows_rarely_breach(monitor: BiasMonitor, labelled_null_pool: SimRows) -> None:
    rng = np.random.default_rng(13)
    severities = []
    for _ in range(NULL_WINDOWS):
        rows = labelled_null_pool.take(rng.choice(len(labelled_null_pool), WINDOW, replace=False))
        severities.append(monitor.evaluate(to_window(rows, features=False)).severity)
    breaches, warnings = severities.count(Severity.BREACH), severities.count(Severity.WARNING)
    print(
        f"\n[bias null] {NULL_WINDOWS} windows of {WINDOW}: {breaches} breaches ({breaches / NULL_WINDOWS:.1%}), "
        f"{warnings} warnings"
    )
    assert breaches <= NULL_WINDOWS // 100


def _truth_sensitivity(rows: SimRows) -> float:
    affected = (rows.sex == "F") & (rows.age >= 70) & (rows.truth == 1)
    return float(np.mean(served_probability(rows.scores()[affected]) >= THRESHOLD))


def test_subgroup_sensitivity_drop_is_measured_at_150_positives(
    monitor: BiasMonitor, degraded: dict[int, tuple[SimRows, SimRows]]
) -> None:
    """5,000 predictions after the change hold >= 150 read-positives in the affected subgroup. The drop
    (about 10 points against the truth, on the same patients without the change) is measured there with
    its interval and test; the same patients without the change do not breach."""
    outcomes = {}
    for seed in BIAS_SEEDS:
        unchanged, changed = degraded[seed]
        planted = _truth_sensitivity(unchanged) - _truth_sensitivity(changed)
        finding = monitor.evaluate(to_window(changed, features=False))
        change = finding.get("sensitivity_change", subgroup=AFFECTED)
        positives = finding.get("sensitivity", subgroup=AFFECTED).n
        outcomes[seed] = (round(planted, 3), positives, round(change.value, 3), change.p_value, finding.severity.value)
        assert positives is not None and positives >= 150
        assert change.value <= -0.05
        assert change.p_value is not None and change.p_value < 0.01
        baseline = monitor.evaluate(to_window(unchanged, features=False))
        assert baseline.severity is not Severity.BREACH
        assert baseline.get("sensitivity_change", subgroup=AFFECTED).value > change.value
    print(f"\n[bias power] seed: (truth drop, read-positives, change vs reference, raw p, severity) {outcomes}")
    assert np.mean([o[0] for o in outcomes.values()]) == pytest.approx(0.10, abs=0.03)


def test_gap_limit_flags_the_affected_subgroup(
    labelled_reference: SimRows, degraded: dict[int, tuple[SimRows, SimRows]]
) -> None:
    spec = BiasSpec(name="chest-bias", max_gap={"sensitivity": 0.0}, intersections=(("sex", "age_band"),))
    monitor = BiasMonitor(to_window(labelled_reference, arm="reference", features=False), spec)
    _, changed = degraded[BIAS_SEEDS[0]]
    finding = monitor.evaluate(to_window(changed, features=False))
    gap = finding.get("sensitivity_gap", subgroup=AFFECTED)
    assert gap.limit == 0.0 and gap.value < -0.03
    assert gap.severity in (Severity.WARNING, Severity.BREACH)


@pytest.mark.slow
# Its fixture simulates ten hospitals of 10,000 studies: minutes on a busy 2-core machine, past the suite's
# default 600 s per test.
@pytest.mark.timeout(1800)
def test_detection_rate_of_a_subgroup_sensitivity_drop_at_150_and_300_positives(
    monitor: BiasMonitor, degraded_streams: dict[int, SimRows]
) -> None:
    """Ten hospitals (seeds), each judged after 5,000 and 10,000 studies of ``subgroup_degradation``.

    Only the primary family (sensitivity per subgroup, Holm at 0.01) can breach. What limits the power is
    not the family but hospital-to-hospital variation: each seed is a different hospital, whose subgroup sits
    a few points above or below the reference before any change, and reads are noisy labels (read-based
    sensitivity is about 8 points below truth-based); the same variation lets a large subgroup of another
    hospital (a site, a manufacturer) differ from the reference's by a few points, printed as "also
    breached". Asserted: what these seeds reliably give, and that only the primary family breaches.
    """
    detected: dict[int, list[int]] = {size: [] for size in BIAS_POWER_SIZES}
    rows_out = []
    for seed in BIAS_POWER_SEEDS:
        stream = degraded_streams[seed]
        planted = _truth_sensitivity(without_subgroup_degradation(stream)) - _truth_sensitivity(stream)
        for size in BIAS_POWER_SIZES:
            finding = monitor.evaluate(to_window(stream.take(slice(0, size)), features=False))
            change = finding.get("sensitivity_change", subgroup=AFFECTED)
            positives = finding.get("sensitivity", subgroup=AFFECTED).n
            breached = {s.subgroup for s in finding.statistics if s.severity is Severity.BREACH}
            assert all(s.name == "sensitivity_change" for s in finding.statistics if s.severity is Severity.BREACH)
            if AFFECTED in breached:
                detected[size].append(seed)
            elsewhere = sorted(breached - set(CONTAINING))
            rows_out.append(
                f"  seed {seed:2d} n={size:5d}: truth drop {planted:.3f}, {positives} read-positives, change "
                f"{change.value:+.3f}, p={change.p_value:.2g}, p_holm={change.p_value_adjusted:.2g}, "
                f"{finding.severity.value}" + (f"; also breached: {elsewhere}" if elsewhere else "")
            )
    rates = {size: len(seeds) / len(BIAS_POWER_SEEDS) for size, seeds in detected.items()}
    print("\n[bias power] per seed and window size:\n" + "\n".join(rows_out))
    print(f"[bias power] detection rate: {rates} (seeds detected: {detected})")
    assert rates[BIAS_POWER_SIZES[0]] >= 0.3
    assert rates[BIAS_POWER_SIZES[1]] >= 0.5
