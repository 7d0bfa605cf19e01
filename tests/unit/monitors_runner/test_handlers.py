"""The run use case with fakes: new blocks → calculators → CUSUM → findings stored with their charts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kernel.serving import ServedVersion
from services.monitors.alerting.sequential import CusumParameters, CusumState, probit_evidence, scoped_parameters
from services.monitors.bias.spec import BiasSpec
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.calibration.temperature import propose_recalibration
from services.monitors.core.findings import Finding, LabelMaturity, MonitorKind, Severity, Statistic
from services.monitors.drift.spec import DriftSpec
from services.monitors.ledger.domain import Arm, Sex
from services.monitors.ledger.queries import LabelledPrediction, LedgerWindow, WindowSpec
from services.monitors.performance.spec import PerformanceSpec
from services.monitors.runner.app import MonitorRunner
from services.monitors.runner.handlers import RunMonitors, build_calculator, chart_evidence, judge_block
from services.monitors.runner.ports import Chart, IssuedFinding, MonitorTarget
from services.monitors.runner.targets import FixedTargets
from services.monitors.runner.windows import to_window
from services.runtime.ids import uuid7
from tests.unit.monitors_runner.fakes import FakeLedger, FakeReferences, FakeReports, FakeStore, rows

NOW = datetime(2025, 1, 7, tzinfo=UTC)
DRIFT = DriftSpec(name="chest-drift", stratify_by=())
PERFORMANCE = PerformanceSpec(name="chest-performance", min_reads=30)
CUSUM = CusumParameters(k=0.5, h=4.0)
#: A chart that alarms on one block with p below ~0.003 (for the tests of what a breach carries).
STRICT = CusumParameters(k=0.5, h=2.2)
STABLE = MonitorTarget("chest_nodule", "3", "stable")
CANARY = MonitorTarget("chest_nodule", "3", "canary")


def _reference() -> FakeReferences:
    ledger_rows = rows(600, seed=1)
    window = to_window(LedgerWindow(WindowSpec("chest_nodule"), ledger_rows), model_version="3", arm="reference")
    return FakeReferences({"3": window})


def _use_case(
    ledger: FakeLedger, references: FakeReferences, reports: FakeReports | None = None, store: FakeStore | None = None
) -> tuple[RunMonitors, FakeStore]:
    store = store if store is not None else FakeStore()
    use_case = RunMonitors(
        ledger,
        references,
        store,
        {MonitorKind.DRIFT: DRIFT, MonitorKind.PERFORMANCE: PERFORMANCE},
        block_size=100,
        cusum=CUSUM,
        max_blocks_per_pass=3,
        reports=reports,
        clock=lambda: NOW,
    )
    return use_case, store


@pytest.mark.asyncio
async def test_a_shifted_stream_alarms_on_its_first_block_and_only_the_alarm_is_a_breach() -> None:
    ledger = FakeLedger({("3", "stable"): rows(350, shift=0.1, seed=2), ("3", "canary"): rows(350, seed=3)})
    reports = FakeReports()
    use_case, store = _use_case(ledger, _reference(), reports)

    issued = await use_case.run_once([STABLE, CANARY])

    # A first pass takes the newest complete blocks (3 of 100; the oldest 50 predictions are never judged).
    stable = [i.finding for i in issued if i.finding.arm == "stable"]
    assert [(f.kind, f.maturity.total) for f in stable] == [
        (MonitorKind.DRIFT, 100),
        (MonitorKind.PERFORMANCE, 100),
    ] * 3
    assert stable[0].start == ledger.by_version[("3", "stable")][50].event_time
    drift = [f for f in stable if f.kind is MonitorKind.DRIFT]
    # A 2-SD intensity shift: one block's evidence is far beyond h, so every block alarms and restarts the chart.
    assert [f.severity for f in drift] == [Severity.BREACH] * 3
    cusum = drift[0].chart
    assert cusum.value > CUSUM.h and cusum.limit == CUSUM.h and cusum.test.startswith("cusum")
    assert store.charts_held[(STABLE, MonitorKind.DRIFT)].state == CusumState(0.0, 3, 3, 0, (("", 0.0),))
    assert drift[0].report_uri == f"/reports/{reports.stems[0]}.html" and len(reports.stems) == 3
    canary = [i.finding for i in issued if i.finding.arm == "canary"]
    assert all(f.severity is not Severity.BREACH for f in canary)
    assert all(f.report_uri == "" for f in canary)
    # One transaction per block, the cursor at the newest judged prediction.
    assert store.commits == 6
    assert store.cursors[STABLE].last_prediction_id == "p349"
    assert len({i.finding_id for i in issued}) == len(issued) == len(store.saved) == 12


@pytest.mark.asyncio
async def test_blocks_do_not_overlap_and_an_incomplete_block_waits() -> None:
    held = rows(450, seed=8)
    ledger = FakeLedger({("3", "stable"): held[:250]})
    use_case, store = _use_case(ledger, _reference())

    first = await use_case.run_once([STABLE])  # 2 blocks: p50..p249
    again = await use_case.run_once([STABLE])  # nothing new
    ledger.by_version[("3", "stable")] = held[:320]
    partial = await use_case.run_once([STABLE])  # 70 new: waits
    ledger.by_version[("3", "stable")] = held
    after = await use_case.run_once([STABLE])  # 200 new: two blocks p250..p449

    assert (len(first), len(again), len(partial), len(after)) == (4, 0, 0, 4)
    starts = [f.finding.start for f in first + after if f.finding.kind is MonitorKind.DRIFT]
    assert starts == [held[i].event_time for i in (50, 150, 250, 350)]
    # After the first pass the query starts at the cursor and has no count limit.
    assert ledger.specs[-1].start == held[249].event_time and ledger.specs[-1].last is None
    assert store.charts_held[(STABLE, MonitorKind.PERFORMANCE)].state.steps == 4


@pytest.mark.asyncio
async def test_a_restarted_runner_continues_its_charts_from_the_store() -> None:
    held = rows(400, shift=0.01, seed=9)
    ledger = FakeLedger({("3", "stable"): held[:200]})
    store = FakeStore()
    first, _ = _use_case(ledger, _reference(), store=store)
    await first.run_once([STABLE])
    before = store.charts_held[(STABLE, MonitorKind.DRIFT)].state

    ledger.by_version[("3", "stable")] = held
    restarted, _ = _use_case(ledger, _reference(), store=store)
    issued = await restarted.run_once([STABLE])

    drift = [i.finding for i in issued if i.finding.kind is MonitorKind.DRIFT]
    assert len(drift) == 2
    after = store.charts_held[(STABLE, MonitorKind.DRIFT)].state
    assert after.steps == before.steps + 2
    # The chart continued: its value is the recursion from the stored state over the two new blocks.
    expected = before
    for finding in drift:
        p = finding.chart.p_value
        assert p is not None
        peak = max(0.0, expected.statistic + probit_evidence(p) - CUSUM.k)
        expected = CusumState(0.0 if peak > CUSUM.h else peak, expected.steps + 1)
    assert after.statistic == pytest.approx(expected.statistic)


@pytest.mark.asyncio
async def test_a_renewed_reference_restarts_the_charts_and_a_restart_keeps_them() -> None:
    """Evidence gathered against the old reference does not carry over to the renewed one; a runner restarted
    with the same reference continues where it stopped."""
    held = rows(600, shift=0.01, seed=9)
    ledger = FakeLedger({("3", "stable"): held[:200]})
    store = FakeStore()
    first, _ = _use_case(ledger, _reference(), store=store)
    await first.run_once([STABLE])
    old = store.charts_held[(STABLE, MonitorKind.DRIFT)]
    assert (old.state.steps, old.reference) == (2, "")

    renewed = dataclasses.replace(
        STABLE, served=ServedVersion("3", "chest_nodule", 3, "file:///refs/ref-2026-11.npz", "ab" * 32)
    )
    ledger.by_version[("3", "stable")] = held[:400]
    use_case, _ = _use_case(ledger, _reference(), store=store)
    issued = await use_case.run_once([renewed])
    assert len([i for i in issued if i.finding.kind is MonitorKind.DRIFT]) == 2
    chart = store.charts_held[(STABLE, MonitorKind.DRIFT)]
    assert (chart.state.steps, chart.reference) == (2, "ab" * 32)  # started again from zero, not 2 + 2

    ledger.by_version[("3", "stable")] = held
    again, _ = _use_case(ledger, _reference(), store=store)
    await again.run_once([renewed])
    chart = store.charts_held[(STABLE, MonitorKind.DRIFT)]
    assert (chart.state.steps, chart.reference) == (4, "ab" * 32)


def _finding(p_values: list[float | None], severity: Severity = Severity.BREACH) -> Finding:
    statistics = tuple(Statistic(name="ks_statistic", value=0.2, p_value=p, severity=severity) for p in p_values)
    return Finding(
        kind=MonitorKind.DRIFT,
        model_name="chest_nodule",
        model_version="3",
        arm="stable",
        start=None,
        end=None,
        maturity=LabelMaturity(total=100, labelled=0),
        severity=severity,
        summary="drift",
        statistics=statistics,
        spec_ref="chest-drift@1",
    )


def test_a_significant_block_without_an_alarm_is_at_most_a_warning() -> None:
    chart = Chart(CusumState(), CUSUM)
    judged, state = judge_block(_finding([0.002, 0.5]), chart)  # Bonferroni p = 0.004, z = 2.65
    assert judged.severity is Severity.WARNING
    assert state.statistic == pytest.approx(probit_evidence(0.004) - 0.5)
    assert judged.chart.p_value == pytest.approx(0.004)
    alarm, after = judge_block(_finding([1e-9, 0.5]), Chart(state, CUSUM))
    assert alarm.severity is Severity.BREACH and after.alarms == 1 and after.statistic == 0.0
    assert "sequential alarm" in alarm.summary


def test_a_block_without_evidence_leaves_the_chart_where_it_was() -> None:
    chart = Chart(CusumState(statistic=2.0, steps=5), CUSUM)
    judged, state = judge_block(_finding([None, float("nan")], Severity.INFO), chart)
    assert state == chart.state
    assert judged.severity is Severity.INFO and judged.chart.value == 2.0


def test_secondary_statistics_are_reported_but_never_feed_the_chart() -> None:
    # Calibration-in-the-large moves with prevalence: a p of 1e-12 there is not evidence of a model failure.
    base = _finding([0.5])
    secondary = Statistic(name="calibration_in_the_large", value=0.1, p_value=1e-12, secondary=True)
    finding = dataclasses.replace(base, statistics=(*base.statistics, secondary))
    chart = Chart(CusumState(), CUSUM)
    judged, state = judge_block(finding, chart)
    assert judged.chart.p_value == pytest.approx(0.5)  # the primary statistic alone
    assert state.statistic == 0.0 and state.alarms == 0
    assert judged.get("calibration_in_the_large").p_value == 1e-12  # still reported


def test_each_scope_gets_its_own_chart_and_sequential_evidence_replaces_the_rest() -> None:
    base = _finding([])
    site = [Statistic(name="ks_statistic", value=0.2, p_value=p, subgroup="site=site-C") for p in (1e-4, 0.3)]
    overall = [Statistic(name="ks_statistic", value=0.1, p_value=p) for p in (0.2, 0.6)]
    finding = dataclasses.replace(base, statistics=(*overall, *site))
    assert chart_evidence(finding) == pytest.approx({"": 0.4, "site=site-C": 2e-4})
    judged, state = judge_block(finding, Chart(CusumState(), CUSUM))
    assert judged.chart is not None and judged.chart.subgroup == "site=site-C"
    assert judged.chart.limit == pytest.approx(scoped_parameters(CUSUM, 2).h)
    assert [scope for scope, _ in state.scopes] == ["", "site=site-C"]
    # A bias finding: its window tests (not prevalence-adjusted) are reported, its sequential evidence is judged.
    window_test = Statistic(name="sensitivity_change", value=-0.1, p_value=1e-9, subgroup="sex=male")
    evidence = Statistic(name="sensitivity_evidence", value=-0.02, p_value=0.3, subgroup="sex=male", sequential=True)
    bias = dataclasses.replace(base, kind=MonitorKind.BIAS, statistics=(window_test, evidence))
    assert chart_evidence(bias) == {"sex=male": 0.3}


@pytest.mark.asyncio
async def test_targets_without_a_reference_or_without_a_block_are_skipped() -> None:
    ledger = FakeLedger({("3", "stable"): rows(120, seed=4)})
    use_case, store = _use_case(ledger, _reference())
    issued = await use_case.run_once(
        [MonitorTarget("chest_nodule", "9", "stable"), CANARY, STABLE]  # no reference; no traffic; one block
    )
    assert [(i.finding.model_version, i.finding.arm) for i in issued] == [("3", "stable"), ("3", "stable")]
    assert store.commits == 1


@pytest.mark.asyncio
async def test_the_reference_is_prepared_once_per_version_across_runs() -> None:
    ledger = FakeLedger({("3", "stable"): rows(200, seed=5), ("3", "canary"): rows(200, seed=6)})
    references = _reference()
    use_case, _ = _use_case(ledger, references)
    await use_case.run_once([STABLE, CANARY])
    await use_case.run_once([STABLE, CANARY], end=NOW)
    assert references.loads == 1


def test_a_spec_of_another_kind_is_refused() -> None:
    reference = _reference().reference(MonitorTarget("chest_nodule", "3", "reference"))
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
        {MonitorKind.CALIBRATION: CALIBRATION},
        block_size=n,
        cusum=STRICT,
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
    issued, _ = await _calibration_run(570)  # 190 reads

    (calibration,) = issued
    finding = calibration.finding
    assert finding.severity is Severity.BREACH
    assert finding.select("recalibration_temperature") == []
    reads = finding.get("recalibration_reads")
    assert reads.value == 190 and "200 needed" in reads.note


@pytest.mark.asyncio
async def test_a_canary_bias_finding_compares_each_subgroup_with_the_stable_arm_over_the_same_period() -> None:
    canary_rows = rows(900, seed=5, version="4", arm=Arm.CANARY)
    stable_rows = rows(1500, seed=6)  # starts with the canary, runs on after it: only the shared period counts
    ledger = FakeLedger({("4", "canary"): canary_rows, ("3", "stable"): stable_rows})
    reference = _reference().reference(MonitorTarget("chest_nodule", "3", "reference"))
    spec = BiasSpec(
        name="chest-bias", attributes=("sex",), intersections=(), min_positives=20, min_negatives=20, min_reference=20
    )
    store = FakeStore()
    use_case = RunMonitors(
        ledger,
        FakeReferences({"3": reference, "4": reference}),
        store,
        {MonitorKind.BIAS: spec},
        block_size=900,
        cusum=CUSUM,
        clock=lambda: NOW,
    )

    canary, stable = await use_case.run_once(
        [MonitorTarget("chest_nodule", "4", "canary"), MonitorTarget("chest_nodule", "3", "stable")]
    )

    stable_query = ledger.specs[1]
    assert (stable_query.model_version, stable_query.arm) == (None, Arm.STABLE)
    # The block's period: from its first prediction to just after its last.
    assert (stable_query.start, stable_query.end) == (
        canary_rows[0].event_time,
        canary_rows[-1].event_time + timedelta(microseconds=1),
    )

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
async def test_the_runner_loop_records_each_pass_for_the_stack_status(tmp_path: Path) -> None:
    ledger = FakeLedger({("3", "stable"): rows(100, shift=0.1, seed=2)})
    use_case, _ = _use_case(ledger, _reference())

    class Relay:
        notified = 0

        def notify(self) -> None:
            Relay.notified += 1

    status_file = tmp_path / "monitor" / "last_pass.json"
    runner = MonitorRunner(
        use_case,
        FixedTargets([STABLE]),
        3600.0,
        pool=None,  # type: ignore[arg-type]  # the loop never touches the connections
        producer=None,  # type: ignore[arg-type]
        relay=Relay(),  # type: ignore[arg-type]
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
    assert (status["findings"], status["breach"]) == (2, 1)  # drift alarm, performance
    assert Relay.notified == 1
    assert datetime.fromisoformat(status["finished_at"]).tzinfo is not None
