"""The run use case with fakes: windows → calculators → stored, then published findings, drift reports."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.monitors.bias.spec import BiasSpec
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.calibration.temperature import propose_recalibration
from services.monitors.core.findings import MonitorKind, Severity
from services.monitors.drift.spec import DriftSpec
from services.monitors.ledger.domain import Arm, Sex
from services.monitors.ledger.queries import LabelledPrediction, LedgerWindow, WindowSpec
from services.monitors.performance.spec import PerformanceSpec
from services.monitors.runner.app import MonitorRunner
from services.monitors.runner.handlers import MonitorTarget, RunMonitors, build_calculator
from services.monitors.runner.ports import IssuedFinding
from services.monitors.runner.windows import to_window
from services.runtime.ids import uuid7
from tests.unit.monitors_runner.fakes import FakeLedger, FakePublisher, FakeReferences, FakeReports, FakeStore, rows

NOW = datetime(2025, 1, 7, tzinfo=UTC)
DRIFT = DriftSpec(name="chest-drift", stratify_by=())
PERFORMANCE = PerformanceSpec(name="chest-performance", min_reads=50)


def _reference() -> FakeReferences:
    ledger_rows = rows(600, seed=1)
    window = to_window(LedgerWindow(WindowSpec("chest_nodule"), ledger_rows), model_version="3", arm="reference")
    return FakeReferences({"3": window})


def _use_case(
    ledger: FakeLedger, references: FakeReferences, reports: FakeReports | None = None
) -> tuple[RunMonitors, FakeStore, FakePublisher]:
    store = FakeStore()
    publisher = FakePublisher(store)
    use_case = RunMonitors(
        ledger,
        references,
        store,
        publisher,
        {MonitorKind.DRIFT: DRIFT, MonitorKind.PERFORMANCE: PERFORMANCE},
        window_size=300,
        reports=reports,
        clock=lambda: NOW,
    )
    return use_case, store, publisher


@pytest.mark.asyncio
async def test_a_shifted_window_gives_a_stored_then_published_drift_breach_with_its_report() -> None:
    ledger = FakeLedger({("3", "stable"): rows(500, shift=0.1, seed=2), ("3", "canary"): rows(400, seed=3)})
    reports = FakeReports()
    use_case, store, publisher = _use_case(ledger, _reference(), reports)

    issued = await use_case.run_once(
        [MonitorTarget("chest_nodule", "3", "stable"), MonitorTarget("chest_nodule", "3", "canary")]
    )

    assert [(i.finding.kind, i.finding.arm) for i in issued] == [
        (MonitorKind.DRIFT, "stable"),
        (MonitorKind.PERFORMANCE, "stable"),
        (MonitorKind.DRIFT, "canary"),
        (MonitorKind.PERFORMANCE, "canary"),
    ]
    stable_drift, canary_drift = issued[0].finding, issued[2].finding
    assert stable_drift.severity is Severity.BREACH
    assert stable_drift.get("ks_statistic", feature="intensity.mean").breached
    assert canary_drift.severity is not Severity.BREACH
    # A count window of the latest 300 predictions, ending now, with features only because drift runs.
    assert [(s.model_version, s.arm, s.last, s.end, s.include_features) for s in ledger.specs] == [
        ("3", Arm.STABLE, 300, NOW, True),
        ("3", Arm.CANARY, 300, NOW, True),
    ]
    assert stable_drift.maturity.total == 300 and stable_drift.maturity.labelled == 100
    # Drift findings carry their report; the others do not.
    assert len(reports.stems) == 2
    assert reports.stems[0].startswith("chest_nodule-3-stable-drift-20250107T000000-")
    assert stable_drift.report_uri == f"/reports/{reports.stems[0]}.html"
    assert issued[1].finding.report_uri == ""
    # Every finding is stored before it is published, under one id and issue time.
    assert [i.finding_id for i in store.saved] == [i.finding_id for i in publisher.published]
    assert publisher.stored_first == [True] * 4
    assert all(i.issued_at == NOW for i in issued)
    assert len({i.finding_id for i in issued}) == 4


@pytest.mark.asyncio
async def test_targets_without_a_reference_or_without_predictions_are_skipped() -> None:
    ledger = FakeLedger({("3", "stable"): rows(200, seed=4)})
    references = _reference()
    use_case, store, publisher = _use_case(ledger, references)

    issued = await use_case.run_once(
        [
            MonitorTarget("chest_nodule", "9", "stable"),  # no reference profile
            MonitorTarget("chest_nodule", "3", "canary"),  # no traffic
            MonitorTarget("chest_nodule", "3", "stable"),
        ]
    )

    assert [(i.finding.model_version, i.finding.arm) for i in issued] == [("3", "stable"), ("3", "stable")]
    assert len(store.saved) == len(publisher.published) == 2
    assert issued[0].finding.report_uri == ""  # no report writer configured


@pytest.mark.asyncio
async def test_the_reference_is_prepared_once_per_version_across_runs() -> None:
    ledger = FakeLedger({("3", "stable"): rows(200, seed=5), ("3", "canary"): rows(200, seed=6)})
    references = _reference()
    use_case, _, _ = _use_case(ledger, references)
    targets = [MonitorTarget("chest_nodule", "3", "stable"), MonitorTarget("chest_nodule", "3", "canary")]
    await use_case.run_once(targets)
    await use_case.run_once(targets, end=NOW)
    assert references.loads == 1


@pytest.mark.asyncio
async def test_a_time_span_bounds_the_window_start() -> None:
    ledger = FakeLedger({("3", "stable"): rows(200, seed=7)})
    store = FakeStore()
    use_case = RunMonitors(
        ledger,
        _reference(),
        store,
        FakePublisher(store),
        {MonitorKind.PERFORMANCE: PERFORMANCE},
        window_size=150,
        window_span=timedelta(hours=6),
    )
    await use_case.run_once([MonitorTarget("chest_nodule", "3", "stable")], end=NOW)
    (spec,) = ledger.specs
    assert (spec.start, spec.end, spec.last, spec.include_features) == (NOW - timedelta(hours=6), NOW, 150, False)


def test_a_spec_of_another_kind_is_refused() -> None:
    reference = _reference().reference("chest_nodule", "3")
    with pytest.raises(TypeError, match="drift monitor"):
        build_calculator(MonitorKind.DRIFT, PERFORMANCE, reference)


def test_finding_ids_are_time_ordered_version_7_uuids() -> None:
    first, second = uuid7(now_ms=1_700_000_000_000), uuid7(now_ms=1_700_000_000_001)
    parsed = uuid.UUID(first)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.int >> 80 == 1_700_000_000_000
    assert first < second


CALIBRATION = CalibrationSpec(
    name="chest-calibration",
    min_reads=100,
    recalibrate_min_reads=200,
    null_resamples=3000,
    bootstrap_resamples=40,
    inner_resamples=10,
)


async def _calibration_run(n: int) -> tuple[list[IssuedFinding], FakeStore]:
    ledger = FakeLedger({("3", "stable"): rows(n, seed=4, probability_shift=0.4)})
    store = FakeStore()
    use_case = RunMonitors(
        ledger,
        _reference(),
        store,
        FakePublisher(store),
        {MonitorKind.CALIBRATION: CALIBRATION},
        window_size=n,
        clock=lambda: NOW,
    )
    return await use_case.run_once([MonitorTarget("chest_nodule", "3", "stable")]), store


@pytest.mark.asyncio
async def test_a_calibration_breach_with_enough_reads_carries_a_recalibration_proposal() -> None:
    issued, store = await _calibration_run(900)  # 300 reads

    (calibration,) = issued
    finding = calibration.finding
    assert finding.severity is Severity.BREACH
    temperature = finding.get("recalibration_temperature")
    before, after = finding.get("recalibration_ece_before"), finding.get("recalibration_ece_after")
    # The same seeded split, recomputed: the proposal is reproducible from the window and the spec.
    window = to_window(
        LedgerWindow(WindowSpec("chest_nodule"), rows(900, seed=4, probability_shift=0.4)),
        model_version="3",
        arm="stable",
    )
    expected = propose_recalibration(window, bins=CALIBRATION.bins, holdout_fraction=0.3, seed=CALIBRATION.seed)
    assert temperature.value == pytest.approx(expected.temperature)
    assert (before.value, after.value) == (pytest.approx(expected.ece_before), pytest.approx(expected.ece_after))
    assert (temperature.n, before.n) == (210, 90)
    assert all(s.severity is Severity.INFO for s in finding.statistics if s.name.startswith("recalibration_"))
    assert "recalibration proposal T=" in finding.summary
    assert store.saved[0].finding.get("recalibration_ece_after").value == after.value


@pytest.mark.asyncio
async def test_a_calibration_breach_with_few_reads_says_why_there_is_no_proposal() -> None:
    issued, _ = await _calibration_run(450)  # 150 reads

    (calibration,) = issued
    finding = calibration.finding
    assert finding.severity is Severity.BREACH
    assert finding.select("recalibration_temperature") == []
    reads = finding.get("recalibration_reads")
    assert reads.value == 150 and "200 needed" in reads.note


@pytest.mark.asyncio
async def test_a_canary_bias_finding_compares_each_subgroup_with_the_stable_arm_over_the_same_period() -> None:
    canary_rows = rows(900, seed=5, version="4", arm=Arm.CANARY)
    stable_rows = rows(1500, seed=6)  # starts with the canary, runs on after it: only the shared period counts
    ledger = FakeLedger({("4", "canary"): canary_rows, ("3", "stable"): stable_rows})
    reference = _reference().reference("chest_nodule", "3")
    spec = BiasSpec(
        name="chest-bias", attributes=("sex",), intersections=(), min_positives=20, min_negatives=20, min_reference=20
    )
    store = FakeStore()
    use_case = RunMonitors(
        ledger,
        FakeReferences({"3": reference, "4": reference}),
        store,
        FakePublisher(store),
        {MonitorKind.BIAS: spec},
        window_size=900,
        clock=lambda: NOW,
    )

    canary, stable = await use_case.run_once(
        [MonitorTarget("chest_nodule", "4", "canary"), MonitorTarget("chest_nodule", "3", "stable")]
    )

    stable_query = ledger.specs[1]
    assert (stable_query.model_version, stable_query.arm) == (None, Arm.STABLE)
    assert (stable_query.start, stable_query.end) == (canary_rows[0].event_time, NOW)

    def sensitivity(held: tuple[LabelledPrediction, ...], sex: Sex) -> float:
        positives = [r for r in held if r.sex is sex and r.label == 1 and r.event_time <= canary_rows[-1].event_time]
        return sum(r.decision == 1 for r in positives) / len(positives)

    for sex in (Sex.FEMALE, Sex.MALE):
        versus = canary.finding.get("sensitivity_vs_stable", subgroup=f"sex={sex.value}")
        assert versus.value == pytest.approx(sensitivity(canary_rows, sex) - sensitivity(stable_rows, sex))
        assert versus.test == "newcombe" and versus.ci_low is not None
        assert versus.note == "vs stable version 3 over the same period"
    assert canary.finding.get("auroc_vs_stable").test == "delong"
    assert "largest sensitivity gap vs stable" in canary.finding.summary
    assert stable.finding.select("sensitivity_vs_stable") == []


@pytest.mark.asyncio
async def test_with_skip_unchanged_a_window_is_judged_again_only_after_new_predictions_or_reads() -> None:
    held = rows(300, seed=8)
    ledger = FakeLedger({("3", "stable"): held[:200]})
    store = FakeStore()

    def runner() -> RunMonitors:
        return RunMonitors(
            ledger,
            _reference(),
            store,
            FakePublisher(store),
            {MonitorKind.PERFORMANCE: PERFORMANCE},
            window_size=300,
            clock=lambda: NOW,
            skip_unchanged=True,
        )

    use_case = runner()
    target = [MonitorTarget("chest_nodule", "3", "stable")]

    first = await use_case.run_once(target)
    again = await use_case.run_once(target)
    ledger.by_version[("3", "stable")] = held  # 100 more predictions
    after_new = await use_case.run_once(target)

    assert (len(first), len(again), len(after_new)) == (1, 0, 1)
    assert [item.finding.maturity.total for item in store.saved] == [200, 300]

    # A runner restarted on the same store continues from the saved mark: nothing new, nothing issued.
    restarted = runner()
    assert await restarted.run_once(target) == []
    ledger.by_version[("3", "stable")] = held[:250] + held[251:]  # the window changed: judged again
    assert len(await restarted.run_once(target)) == 1
    assert store.marks[("chest_nodule", "3", "stable")].count == 299


@pytest.mark.asyncio
async def test_the_runner_loop_records_each_pass_for_the_stack_status(tmp_path: Path) -> None:
    ledger = FakeLedger({("3", "stable"): rows(500, shift=0.1, seed=2)})
    use_case, _, _ = _use_case(ledger, _reference())
    status_file = tmp_path / "monitor" / "last_pass.json"
    runner = MonitorRunner(
        use_case,
        [MonitorTarget("chest_nodule", "3", "stable")],
        3600.0,
        pool=None,  # type: ignore[arg-type]  # the loop never touches the connections
        producer=None,  # type: ignore[arg-type]
        status_file=status_file,
    )
    task = asyncio.ensure_future(runner.run_forever())
    for _ in range(200):
        if status_file.exists():
            break
        await asyncio.sleep(0.05)
    runner.stop()
    await task

    status = json.loads(status_file.read_text())
    assert (status["findings"], status["breach"], status["warning"]) == (2, 1, 0)  # drift breach, performance
    assert datetime.fromisoformat(status["finished_at"]).tzinfo is not None
