"""Wiring of the monitor runner: settings → pool, producer, adapters → the run use case, once or in a loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from services.monitors.ledger.adapters.postgres_queries import PostgresLedgerQueries
from services.monitors.runner.adapters.findings_kafka import KafkaFindingPublisher
from services.monitors.runner.adapters.findings_pg import PostgresFindingStore
from services.monitors.runner.adapters.reports import EvidentlyReportFolder, ModelRepoReferences
from services.monitors.runner.handlers import MonitorTarget, RunMonitors
from services.monitors.runner.ports import IssuedFinding
from services.monitors.runner.settings import MonitorRunnerSettings
from services.monitors.runner.specs import load_specs
from services.runtime.errors import Unavailable
from services.runtime.kafka import AsyncKafkaProducer
from services.runtime.postgres import create_pool_from_settings, is_ready
from services.runtime.server import RadguardServer, serve
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


def targets_of(settings: MonitorRunnerSettings) -> list[MonitorTarget]:
    """Every (model, version, arm) the settings ask to watch."""
    return [
        MonitorTarget(settings.monitor_model, version, arm)
        for version in settings.monitor_versions
        for arm in settings.monitor_arms
    ]


@dataclass
class MonitorRunner:
    """The assembled runner: the use case, its targets and the connections it owns."""

    use_case: RunMonitors
    targets: list[MonitorTarget]
    interval_s: float
    pool: asyncpg.Pool
    producer: AsyncKafkaProducer
    #: Where each pass's outcome goes as JSON (for ``radguard stack status``), or None.
    status_file: Path | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def run_once(self) -> list[IssuedFinding]:
        """One pass over every target (see :meth:`RunMonitors.run_once`)."""
        return await self.use_case.run_once(self.targets)

    async def run_forever(self) -> None:
        """Run a pass every ``interval_s`` until :meth:`stop`; an unreachable dependency skips one pass."""
        while not self._stop.is_set():
            try:
                findings = await self.run_once()
                _log.info("monitors.pass", findings=len(findings))
                self._record({"findings": len(findings), **_by_severity(findings)})
            except Unavailable as error:
                _log.warning("monitors.pass_skipped", error=error.message)
                self._record({"skipped": error.message})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def _record(self, outcome: dict[str, object]) -> None:
        if self.status_file is None:
            return
        status = {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **outcome}
        try:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.status_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(status), encoding="utf-8")
            os.replace(temporary, self.status_file)  # readers never see half a file
        except OSError as error:
            _log.warning("monitors.status_unwritable", path=str(self.status_file), error=str(error))

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return after the pass in hand."""
        self._stop.set()

    async def close(self) -> None:
        """Flush and close the producer, close the pool."""
        await self.producer.close()
        await self.pool.close()


async def build_monitor_runner(settings: MonitorRunnerSettings) -> MonitorRunner:
    """Open the pool and the producer and assemble the runner.

    Raises:
        Unavailable: PostgreSQL or Kafka cannot be reached.
        ValueError: A spec file is invalid.
    """
    specs = load_specs(settings.monitor_kinds, settings.monitor_model, settings.monitor_specs_dir)
    pool = await create_pool_from_settings(settings, server_settings={"application_name": settings.service_name})
    producer = AsyncKafkaProducer.from_settings(settings)
    try:
        await producer.start()
    except BaseException:
        await pool.close()
        raise
    use_case = RunMonitors(
        PostgresLedgerQueries(pool),
        ModelRepoReferences(settings.monitor_model_repo),
        PostgresFindingStore(pool),
        KafkaFindingPublisher(producer, settings.findings_topic, f"{settings.service_name}/{socket.gethostname()}"),
        specs,
        window_size=settings.monitor_window_size,
        window_span=None if settings.monitor_window_hours is None else timedelta(hours=settings.monitor_window_hours),
        reports=EvidentlyReportFolder(settings.monitor_reports_dir),
        skip_unchanged=settings.monitor_skip_unchanged,
    )
    return MonitorRunner(
        use_case, targets_of(settings), settings.monitor_interval_s, pool, producer, settings.monitor_status_file
    )


def _by_severity(findings: list[IssuedFinding]) -> dict[str, int]:
    severities = [item.finding.severity.value for item in findings]
    return {name: severities.count(name) for name in ("breach", "warning")}


async def run_monitor_process(settings: MonitorRunnerSettings, *, once: bool) -> int:
    """Run the monitors as a process.

    With ``once``, one pass and exit; otherwise passes every ``monitor_interval_s`` behind a health server
    (readiness follows PostgreSQL) until SIGTERM/SIGINT, which finishes the pass in hand.

    Returns:
        The number of findings issued by the single pass (0 in loop mode).

    Raises:
        Unavailable: PostgreSQL or Kafka cannot be reached at start.
    """
    runner = await build_monitor_runner(settings)
    if once:
        try:
            return len(await runner.run_once())
        finally:
            await runner.close()
    server = RadguardServer(settings)
    task = asyncio.get_running_loop().create_task(runner.run_forever(), name="monitor-runner")
    stopping: list[asyncio.Future[None]] = []

    def ended(finished: asyncio.Task[None]) -> None:
        if finished.cancelled() or finished.exception() is None:
            return
        error = finished.exception()
        _log.error("monitors.runner_crashed", error=f"{type(error).__name__}: {error}")
        # A runner that stopped judging must not look alive: stop the process so it is restarted.
        stopping.append(asyncio.ensure_future(server.stop()))

    task.add_done_callback(ended)

    async def postgres_ready() -> bool:
        return await is_ready(runner.pool, settings.readiness_timeout_s)

    async def stop_runner() -> None:
        runner.stop()
        # wait() rather than awaiting the task: a crashed runner was already logged, the pool still closes.
        await asyncio.wait({task}, timeout=settings.shutdown_hook_timeout_s)
        await runner.close()

    server.add_readiness_check("postgres", postgres_ready)
    server.add_shutdown_hook(stop_runner, "monitor-runner")
    await serve(server)
    return 0
