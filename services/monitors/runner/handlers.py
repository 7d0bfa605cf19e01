"""The monitor run use case: for each served version and arm, new blocks → calculators → CUSUM → findings.

Each pass cuts the predictions that arrived since the target's last judged block into consecutive,
non-overlapping blocks of ``block_size`` (an incomplete block waits for the next pass). Every monitor judges
each block against the version's reference; each scope's p-value for "nothing changed" (Bonferroni over the
scope's tests: the whole window, a site, a subgroup) feeds that scope's CUSUM in the monitor's chart
(:mod:`services.monitors.alerting.sequential`). Only a CUSUM alarm
makes a breach; a block's own significant result is at most a warning. Findings, their outbox rows, the
charts and the block cursor are written in one transaction, and the outbox relay publishes the findings, so
a finding stored while Kafka is down is published when it returns. A drift breach also gets the Evidently
report of its block (HTML and JSON); its path is the finding's ``report_uri``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from kernel.serving import ServedVersion
from services.monitors.alerting.sequential import (
    CusumParameters,
    CusumState,
    bonferroni_global,
    scoped_parameters,
    step_scopes,
)
from services.monitors.bias.calculator import BiasMonitor
from services.monitors.bias.spec import BiasSpec
from services.monitors.calibration.calculator import CalibrationMonitor
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.calibration.temperature import with_recalibration_proposal
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.specs import MonitorSpec
from services.monitors.core.window import Window
from services.monitors.drift.calculator import DriftMonitor
from services.monitors.drift.spec import DriftSpec
from services.monitors.ledger.domain import Arm
from services.monitors.ledger.queries import LabelledPrediction, LedgerQueries, LedgerWindow, WindowSpec
from services.monitors.performance.calculator import PerformanceMonitor
from services.monitors.performance.spec import PerformanceSpec
from services.monitors.runner.ports import (
    BlockCursor,
    Chart,
    DriftReportWriter,
    IssuedFinding,
    MonitorTarget,
    ReferenceSource,
    ReferenceUnusable,
    SequentialStore,
    reference_identity,
)
from services.monitors.runner.windows import to_window
from services.runtime.ids import uuid7
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)

__all__ = ["Calculator", "MonitorTarget", "RunMonitors", "build_calculator", "chart_evidence", "judge_block"]

CUSUM_TEST = "cusum of probit block evidence"


class Calculator(Protocol):
    """What the runner needs of a monitor calculator."""

    def evaluate(self, window: Window) -> Finding:
        """The finding about ``window``."""
        ...


def build_calculator(kind: MonitorKind, spec: MonitorSpec, reference: Window) -> Calculator:
    """The calculator of ``kind`` with ``spec`` against ``reference``.

    Raises:
        TypeError: ``spec`` is not the spec type of ``kind``.
    """
    if kind is MonitorKind.DRIFT and isinstance(spec, DriftSpec):
        return DriftMonitor(reference, spec)
    if kind is MonitorKind.CALIBRATION and isinstance(spec, CalibrationSpec):
        return CalibrationMonitor(reference, spec)
    if kind is MonitorKind.BIAS and isinstance(spec, BiasSpec):
        return BiasMonitor(reference, spec)
    if kind is MonitorKind.PERFORMANCE and isinstance(spec, PerformanceSpec):
        return PerformanceMonitor(reference, spec)
    raise TypeError(f"{type(spec).__name__} is not a spec of the {kind.value} monitor")


def chart_evidence(finding: Finding) -> dict[str, float]:
    """Each scope's p-value for "nothing changed" in one block: Bonferroni over the scope's chart evidence.

    The evidence is the finding's ``sequential`` statistics when it has any, otherwise every statistic with a
    p-value. Secondary statistics (capped at warning, e.g. calibration-in-the-large that a prevalence change
    moves) are reported, never evidence. A scope is the statistic's ``subgroup`` (empty: the whole window).
    """
    tested = [s for s in finding.statistics if s.p_value is not None and not s.secondary]
    if any(s.sequential for s in tested):
        tested = [s for s in tested if s.sequential]
    by_scope: dict[str, list[float]] = {}
    for statistic in tested:
        assert statistic.p_value is not None
        by_scope.setdefault(statistic.subgroup, []).append(statistic.p_value)
    evidence = {scope: bonferroni_global(values) for scope, values in by_scope.items()}
    return {scope: p for scope, p in evidence.items() if p is not None}


def judge_block(finding: Finding, chart: Chart) -> tuple[Finding, CusumState]:
    """One block's finding after its monitor's CUSUM has seen it.

    Args:
        finding: What the calculator concluded about the block alone.
        chart: The monitor's chart before the block.

    Returns:
        The finding with a ``cusum`` statistic added (the scope with the largest value, or the alarmed one)
        and its severity set by the chart (breach only on an alarm, otherwise at most warning), and the chart's
        new state. A block without any finite p-value (not enough evidence) leaves the chart where it was.
    """
    evidence = chart_evidence(finding)
    parameters = chart.parameters
    if not evidence:
        cusum = Statistic(
            name="cusum",
            value=chart.state.statistic,
            test=CUSUM_TEST,
            limit=scoped_parameters(parameters, max(len(chart.state.scopes), 1)).h,
            note=f"block without evidence; k={parameters.k:g}",
        )
        return _capped(finding, cusum, alarm=False), chart.state
    moved = step_scopes(chart.state, evidence, parameters)
    top = moved.top
    assert top is not None
    scopes = len(moved.state.scopes)
    cusum = Statistic(
        name="cusum",
        value=moved.peaks[top],
        test=CUSUM_TEST,
        p_value=evidence[top],
        adjustment="bonferroni within scope",
        subgroup=top,
        limit=moved.parameters.h,
        severity=Severity.BREACH if moved.alarm else Severity.INFO,
        n=moved.state.steps,
        note=(
            f"z={moved.z[top]:.3f}; k={moved.parameters.k:g}, h={moved.parameters.h:.3f} per scope over {scopes} "
            f"scope{'s' if scopes != 1 else ''}; alarms={moved.state.alarms}"
            + (f"; alarmed: {', '.join(s or 'overall' for s in moved.alarmed)}" if moved.alarm else "")
        ),
    )
    return _capped(finding, cusum, alarm=moved.alarm), moved.state


def _capped(finding: Finding, cusum: Statistic, *, alarm: bool) -> Finding:
    if alarm:
        severity = Severity.BREACH
        where = f" in {cusum.subgroup}" if cusum.subgroup else ""
        summary = f"{finding.summary} [sequential alarm{where}: CUSUM {cusum.value:.2f} > {cusum.limit:.2f}]"
    else:
        severity = Severity.WARNING if finding.severity is not Severity.INFO else Severity.INFO
        summary = f"{finding.summary} [CUSUM {cusum.value:.2f} of {cusum.limit:.2f}]"
    return replace(finding, severity=severity, summary=summary, statistics=(*finding.statistics, cusum))


def _after(row: LabelledPrediction, cursor: BlockCursor | None) -> bool:
    # The ledger orders by (event_time, prediction_id); uuid order is the order of their lowercase hex text.
    if cursor is None:
        return True
    return (row.event_time, row.prediction_id) > (cursor.last_event_time, cursor.last_prediction_id)


class RunMonitors:
    """Judges every new block of each target with every configured monitor and its CUSUM."""

    def __init__(
        self,
        queries: LedgerQueries,
        references: ReferenceSource,
        store: SequentialStore,
        specs: Mapping[MonitorKind, MonitorSpec],
        *,
        block_size: int,
        cusum: CusumParameters,
        max_blocks_per_pass: int = 8,
        reports: DriftReportWriter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        settle: timedelta = timedelta(0),
    ) -> None:
        """Assemble the use case.

        Args:
            queries: The ledger's read side.
            references: Reference profiles by version.
            store: Charts, findings and their outbox.
            specs: The monitors to run, by kind.
            block_size: Predictions per block (one chart step each).
            cusum: Allowance and threshold of every chart (see ``FalseAlarmBudget``).
            max_blocks_per_pass: Blocks judged per target and pass at most (a backlog is worked off over passes;
                a target with no judged block yet starts from its latest ``max_blocks_per_pass`` blocks).
            reports: Writes drift reports of breaches; None skips them.
            clock: Current time (UTC), injectable for tests.
            settle: A block is judged only once its newest prediction is this old (time for reads to arrive).
        """
        self._queries = queries
        self._references = references
        self._store = store
        self._specs = dict(specs)
        self._block_size = block_size
        self._cusum = cusum
        self._max_blocks = max_blocks_per_pass
        self._reports = reports
        self._clock = clock
        self._settle = settle
        #: Per (model, version): what the route said serves and judges it, its reference, its calculators.
        self._calculators: dict[
            tuple[str, str], tuple[ServedVersion | None, Window, dict[MonitorKind, Calculator]]
        ] = {}

    @property
    def cusum(self) -> CusumParameters:
        """The charts' allowance and threshold."""
        return self._cusum

    def _prepared(self, target: MonitorTarget) -> tuple[Window, dict[MonitorKind, Calculator]]:
        # A reference is prepared once per version: sorting and counting it is the expensive part. It is
        # prepared again when the route table names another reference (or Triton target) for the version.
        key = (target.model_name, target.model_version)
        held = self._calculators.get(key)
        if held is None or held[0] != target.served:
            self._calculators.pop(key, None)
            reference = self._references.reference(target)
            calculators = {kind: build_calculator(kind, spec, reference) for kind, spec in self._specs.items()}
            held = (target.served, reference, calculators)
            self._calculators[key] = held
            if target.served is not None and target.served.reference_uri:
                _log.info("monitors.reference_loaded", target=str(target), uri=target.served.reference_uri)
        return held[1], held[2]

    async def run_once(self, targets: Iterable[MonitorTarget], *, end: datetime | None = None) -> list[IssuedFinding]:
        """Judge each target's complete new blocks; store the findings (the outbox publishes them).

        Args:
            targets: Versions and arms to judge.
            end: Only predictions before this time (exclusive); the current time when None.

        Returns:
            The findings issued, in target, block, then monitor order. Targets without a (usable) reference
            profile or without a complete new block issue nothing (logged; a profile whose hash differs from
            the route table's is logged as an error).

        Raises:
            Unavailable: The ledger or the findings tables cannot be reached.
        """
        until = end if end is not None else self._clock()
        issued: list[IssuedFinding] = []
        for target in targets:
            try:
                reference, calculators = self._prepared(target)
            except FileNotFoundError as error:
                _log.warning("monitors.no_reference", target=str(target), error=str(error))
                continue
            except ReferenceUnusable as error:
                _log.error("monitors.reference_unusable", target=str(target), error=str(error))
                continue
            issued.extend(await self._judge_new_blocks(target, reference, calculators, until))
        return issued

    async def _new_blocks(
        self, target: MonitorTarget, cursor: BlockCursor | None, until: datetime, features: bool
    ) -> list[tuple[LabelledPrediction, ...]]:
        spec = WindowSpec(
            model_name=target.model_name,
            model_version=target.model_version,
            arm=Arm(target.arm),
            start=cursor.last_event_time if cursor is not None else None,
            end=until - self._settle,
            last=None if cursor is not None else self._block_size * self._max_blocks,
            include_features=features,
        )
        ledger_window = await self._queries.window(spec)
        fresh = [row for row in ledger_window.rows if _after(row, cursor)]
        complete = len(fresh) // self._block_size
        if cursor is None:
            fresh = fresh[len(fresh) - complete * self._block_size :]  # the newest complete blocks
        blocks = [
            tuple(fresh[i * self._block_size : (i + 1) * self._block_size])
            for i in range(min(complete, self._max_blocks))
        ]
        if not blocks:
            _log.info("monitors.no_complete_block", target=str(target), waiting=len(fresh))
        return blocks

    async def _judge_new_blocks(
        self, target: MonitorTarget, reference: Window, calculators: dict[MonitorKind, Calculator], until: datetime
    ) -> list[IssuedFinding]:
        cursor, stored = await self._store.charts(target)
        reference_id = reference_identity(target)
        states: dict[MonitorKind, CusumState] = {}
        for kind, held in stored.items():
            if held.reference == reference_id:
                states[kind] = held.state
            else:
                # The version's reference was renewed: evidence gathered against the old one no longer counts.
                _log.info(
                    "monitors.chart_restarted",
                    target=str(target),
                    kind=kind.value,
                    reason="the reference profile changed",
                    statistic=held.state.statistic,
                )
        blocks = await self._new_blocks(target, cursor, until, MonitorKind.DRIFT in calculators)
        issued: list[IssuedFinding] = []
        for rows in blocks:
            block = LedgerWindow(
                WindowSpec(
                    model_name=target.model_name,
                    start=rows[0].event_time,
                    end=rows[-1].event_time + timedelta(microseconds=1),
                ),
                rows,
            )
            window = to_window(block, model_version=target.model_version, arm=target.arm)
            charts: dict[MonitorKind, Chart] = {}
            findings: list[IssuedFinding] = []
            for kind, calculator in calculators.items():
                if isinstance(calculator, BiasMonitor) and target.arm == Arm.CANARY.value:
                    stable = await self._stable_window(target, window)
                    finding = await asyncio.to_thread(calculator.evaluate, window, stable)
                else:
                    finding = await asyncio.to_thread(calculator.evaluate, window)
                chart = Chart(states.get(kind, CusumState()), self._cusum, reference_id)
                finding, state = judge_block(finding, chart)
                charts[kind] = Chart(state, self._cusum, reference_id)
                states[kind] = state
                spec = self._specs[kind]
                if isinstance(spec, CalibrationSpec) and finding.severity is Severity.BREACH:
                    # A breach with enough reads comes with a proposed fix, judged on reads it was not fitted on.
                    finding = await asyncio.to_thread(with_recalibration_proposal, finding, window, spec)
                findings.append(await self._issued(finding, reference, window, until))
            last = rows[-1]
            await self._store.commit_block(target, BlockCursor(last.event_time, last.prediction_id), findings, charts)
            for item in findings:
                _log.info(
                    "monitors.finding",
                    finding_id=item.finding_id,
                    kind=item.finding.kind.value,
                    model=item.finding.model_name,
                    version=item.finding.model_version,
                    arm=item.finding.arm,
                    severity=item.finding.severity.value,
                )
            issued.extend(findings)
        return issued

    async def _stable_window(self, target: MonitorTarget, canary: Window) -> Window | None:
        """The stable arm's predictions over the canary window's period (whatever version is stable), or None."""
        ledger_window = await self._queries.window(
            WindowSpec(model_name=target.model_name, arm=Arm.STABLE, start=canary.start, end=canary.end)
        )
        if not ledger_window.rows:
            _log.info("monitors.no_stable_window", target=str(target))
            return None
        versions = sorted({row.model_version for row in ledger_window.rows})
        return to_window(ledger_window, model_version="+".join(versions), arm=Arm.STABLE.value)

    async def _issued(self, finding: Finding, reference: Window, window: Window, until: datetime) -> IssuedFinding:
        finding_id = uuid7()
        spec = self._specs[finding.kind]
        if (
            finding.kind is MonitorKind.DRIFT
            and finding.severity is Severity.BREACH
            and self._reports is not None
            and isinstance(spec, DriftSpec)
            and len(window) >= spec.min_window
        ):
            stem = f"{finding.model_name}-{finding.model_version}-{finding.arm}-drift-{until:%Y%m%dT%H%M%S}"
            uri = await asyncio.to_thread(self._reports.write, reference, window, spec, f"{stem}-{finding_id[-12:]}")
            finding = finding.with_report(uri)
        return IssuedFinding(finding_id, self._clock(), finding)
