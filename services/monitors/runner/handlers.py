"""The monitor run use case: for each watched version and arm, window → calculators → stored, published findings.

A finding is stored in PostgreSQL before it is published, under one id, so a crash between the two leaves a
row whose event can be republished without creating a second finding. Drift findings also get the Evidently
report of their window (HTML and JSON); its path is the finding's ``report_uri``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.monitors.bias.calculator import BiasMonitor
from services.monitors.bias.spec import BiasSpec
from services.monitors.calibration.calculator import CalibrationMonitor
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.calibration.temperature import with_recalibration_proposal
from services.monitors.core.findings import Finding, MonitorKind, Severity
from services.monitors.core.specs import MonitorSpec
from services.monitors.core.window import Window
from services.monitors.drift.calculator import DriftMonitor
from services.monitors.drift.spec import DriftSpec
from services.monitors.ledger.domain import Arm
from services.monitors.ledger.queries import LedgerQueries, WindowSpec
from services.monitors.performance.calculator import PerformanceMonitor
from services.monitors.performance.spec import PerformanceSpec
from services.monitors.runner.ports import (
    DriftReportWriter,
    FindingPublisher,
    FindingStore,
    IssuedFinding,
    ReferenceSource,
    WindowMark,
)
from services.monitors.runner.windows import to_window
from services.runtime.ids import uuid7
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True)
class MonitorTarget:
    """One model version and arm whose traffic the monitors judge."""

    model_name: str
    model_version: str
    arm: str

    def __str__(self) -> str:
        return f"{self.model_name}/{self.model_version}/{self.arm}"


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


class RunMonitors:
    """Runs every configured monitor over the latest window of each target."""

    def __init__(
        self,
        queries: LedgerQueries,
        references: ReferenceSource,
        store: FindingStore,
        publisher: FindingPublisher,
        specs: Mapping[MonitorKind, MonitorSpec],
        *,
        window_size: int,
        window_span: timedelta | None = None,
        reports: DriftReportWriter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        skip_unchanged: bool = False,
    ) -> None:
        """Assemble the use case.

        Args:
            queries: The ledger's read side.
            references: Reference profiles by version.
            store: The findings table.
            publisher: The findings topic.
            specs: The monitors to run, by kind.
            window_size: Latest predictions per window (a count window ending at the run's time).
            window_span: Also bound the window by time: only predictions of the last ``window_span``.
            reports: Writes drift reports; None skips them.
            clock: Current time (UTC), injectable for tests.
            skip_unchanged: Issue nothing for a target whose window holds the same predictions and reads as at
                the previous pass (a quiet stack must not repeat its findings every interval). The marks are
                kept in the store, so this holds across restarts of the runner too.
        """
        self._queries = queries
        self._references = references
        self._store = store
        self._publisher = publisher
        self._specs = dict(specs)
        self._window_size = window_size
        self._window_span = window_span
        self._reports = reports
        self._clock = clock
        self._skip_unchanged = skip_unchanged
        self._marks: dict[MonitorTarget, WindowMark | None] = {}
        self._calculators: dict[tuple[str, str], tuple[Window, dict[MonitorKind, Calculator]]] = {}

    def _prepared(self, target: MonitorTarget) -> tuple[Window, dict[MonitorKind, Calculator]]:
        # A reference is prepared once per version: sorting and counting it is the expensive part.
        key = (target.model_name, target.model_version)
        if key not in self._calculators:
            reference = self._references.reference(target.model_name, target.model_version)
            calculators = {kind: build_calculator(kind, spec, reference) for kind, spec in self._specs.items()}
            self._calculators[key] = (reference, calculators)
        return self._calculators[key]

    async def run_once(self, targets: Iterable[MonitorTarget], *, end: datetime | None = None) -> list[IssuedFinding]:
        """Evaluate every monitor on each target's latest window, store and publish the findings.

        Args:
            targets: Versions and arms to judge.
            end: Window end (exclusive); the current time when None.

        Returns:
            The findings issued, in target then monitor order. Targets without a reference profile or
            without predictions are skipped (logged).

        Raises:
            Unavailable: The ledger, the findings table or Kafka cannot be reached.
        """
        until = end if end is not None else self._clock()
        issued: list[IssuedFinding] = []
        for target in targets:
            try:
                reference, calculators = self._prepared(target)
            except FileNotFoundError as error:
                _log.warning("monitors.no_reference", target=str(target), error=str(error))
                continue
            ledger_window = await self._queries.window(
                WindowSpec(
                    model_name=target.model_name,
                    model_version=target.model_version,
                    arm=Arm(target.arm),
                    start=until - self._window_span if self._window_span is not None else None,
                    end=until,
                    last=self._window_size,
                    include_features=MonitorKind.DRIFT in calculators,
                )
            )
            if not ledger_window.rows:
                _log.info("monitors.empty_window", target=str(target))
                continue
            maturity = ledger_window.maturity
            last = ledger_window.rows[-1]
            mark = WindowMark(maturity.count, maturity.labelled_count, last.event_time, last.prediction_id)
            if self._skip_unchanged and await self._last_mark(target) == mark:
                _log.info("monitors.unchanged_window", target=str(target), predictions=maturity.count)
                continue
            window = to_window(ledger_window, model_version=target.model_version, arm=target.arm)
            for kind, calculator in calculators.items():
                if isinstance(calculator, BiasMonitor) and target.arm == Arm.CANARY.value:
                    stable = await self._stable_window(target, window)
                    finding = await asyncio.to_thread(calculator.evaluate, window, stable)
                else:
                    finding = await asyncio.to_thread(calculator.evaluate, window)
                spec = self._specs[kind]
                if isinstance(spec, CalibrationSpec) and finding.severity is Severity.BREACH:
                    # A breach with enough reads comes with a proposed fix, judged on reads it was not fitted on.
                    finding = await asyncio.to_thread(with_recalibration_proposal, finding, window, spec)
                issued.append(await self._issue(finding, reference, window, until))
            if self._skip_unchanged:
                # After the findings: a crash in between judges the window again rather than never.
                await self._store.save_window_mark(target.model_name, target.model_version, target.arm, mark)
                self._marks[target] = mark
        return issued

    async def _last_mark(self, target: MonitorTarget) -> WindowMark | None:
        # Read from the store once per target and process, then kept here: a restarted runner
        # continues from the marks its predecessor saved instead of repeating its last findings.
        if target not in self._marks:
            self._marks[target] = await self._store.window_mark(target.model_name, target.model_version, target.arm)
        return self._marks[target]

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

    async def _issue(self, finding: Finding, reference: Window, window: Window, until: datetime) -> IssuedFinding:
        finding_id = uuid7()
        spec = self._specs[finding.kind]
        if (
            finding.kind is MonitorKind.DRIFT
            and self._reports is not None
            and isinstance(spec, DriftSpec)
            and len(window) >= spec.min_window
        ):
            stem = f"{finding.model_name}-{finding.model_version}-{finding.arm}-drift-{until:%Y%m%dT%H%M%S}"
            uri = await asyncio.to_thread(self._reports.write, reference, window, spec, f"{stem}-{finding_id[-12:]}")
            finding = finding.with_report(uri)
        issued = IssuedFinding(finding_id, self._clock(), finding)
        await self._store.save(issued)
        await self._publisher.publish(issued)
        _log.info(
            "monitors.finding",
            finding_id=finding_id,
            kind=finding.kind.value,
            model=finding.model_name,
            version=finding.model_version,
            arm=finding.arm,
            severity=finding.severity.value,
        )
        return issued
