"""Wiring of the monitor runner: settings → pool, producer, routes follower, outbox relay → the run use case."""

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

from services.monitors.alerting.sequential import FalseAlarmBudget
from services.monitors.ledger.adapters.postgres_queries import PostgresLedgerQueries
from services.monitors.query.servicer import register_query_service
from services.monitors.runner.adapters.findings_pg import PostgresFindingStore
from services.monitors.runner.adapters.outbox import FindingsOutboxRelay
from services.monitors.runner.adapters.reports import EvidentlyReportFolder, ModelRepoReferences
from services.monitors.runner.adapters.routes import route_follower
from services.monitors.runner.handlers import RunMonitors
from services.monitors.runner.metrics import MonitorPassMetrics
from services.monitors.runner.ports import IssuedFinding, MonitorTarget, TargetSource
from services.monitors.runner.settings import MonitorRunnerSettings
from services.monitors.runner.specs import load_specs
from services.monitors.runner.targets import FixedTargets, RoutedTargets
from services.runtime.errors import Unavailable
from services.runtime.kafka import AsyncKafkaConsumer, AsyncKafkaProducer
from services.runtime.metrics import Metrics
from services.runtime.outbox import RelayTuning
from services.runtime.postgres import DATABASE_DOWN, create_pool_from_settings, is_ready
from services.runtime.routes_follower import FollowTuning, TopicFollower
from services.runtime.server import RadguardServer, serve
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


def targets_of(settings: MonitorRunnerSettings) -> list[MonitorTarget]:
    """Every (model, version, arm) the settings ask to watch when routes are not followed."""
    return [
        MonitorTarget(settings.monitor_model, version, arm)
        for version in settings.monitor_versions
        for arm in settings.monitor_arms
    ]


@dataclass
class MonitorRunner:
    """The assembled runner: the use case, its targets and the connections it owns."""

    use_case: RunMonitors
    targets: TargetSource
    interval_s: float
    pool: asyncpg.Pool
    producer: AsyncKafkaProducer
    relay: FindingsOutboxRelay
    #: Keeps ``targets`` current from the routes topic, or None for a fixed list.
    follower: TopicFollower | None = None
    #: Where each pass's outcome goes as JSON (for ``radguard stack status``), or None.
    status_file: Path | None = None
    #: Longest wait at stop for pending findings to reach Kafka.
    drain_timeout_s: float = 5.0
    #: Where each pass is counted for Prometheus, or None.
    pass_metrics: MonitorPassMetrics | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def run_once(self) -> list[IssuedFinding]:
        """One pass over every target served now (see :meth:`RunMonitors.run_once`); wakes the relay."""
        issued = await self.use_case.run_once(self.targets.targets())
        if issued:
            self.relay.notify()
        return issued

    async def run_forever(self) -> None:
        """Run a pass every ``interval_s`` until :meth:`stop`; an unreachable dependency skips one pass."""
        while not self._stop.is_set():
            try:
                findings = await self.run_once()
                _log.info("monitors.pass", findings=len(findings))
                self._record({"findings": len(findings), **_by_severity(findings)})
                if self.pass_metrics is not None:
                    self.pass_metrics.completed(findings)
            except Unavailable as error:
                _log.warning("monitors.pass_skipped", error=error.message)
                self._record({"skipped": error.message})
                if self.pass_metrics is not None:
                    self.pass_metrics.skipped()
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
        """Stop following routes, publish what the outbox holds (bounded), close the producer and the pool."""
        if self.follower is not None:
            await self.follower.stop()
        # Let the running relay publish what is pending before stopping it: cancelling a round while Kafka is
        # acknowledging it leaves a send in flight that the drain below would repeat.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout_s
        pending = 1
        with contextlib.suppress(Unavailable, *DATABASE_DOWN):
            while loop.time() < deadline and (pending := await self.relay.pending()) > 0:
                self.relay.notify()
                await asyncio.sleep(0.05)
        # Nothing left: stop without the relay's own drain rounds.
        await self.relay.stop(self.drain_timeout_s if pending else 0.0)
        await self.producer.close()
        await self.pool.close()


async def build_monitor_runner(settings: MonitorRunnerSettings, *, wait_for_routes_s: float = 10.0) -> MonitorRunner:
    """Open the pool and the producer, start the outbox relay and the routes follower, assemble the runner.

    Args:
        settings: The runner's settings.
        wait_for_routes_s: With route following, how long to wait for the routes topic's backlog before the
            first pass (a runner that judged nothing yet must not run its first pass on no targets).

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
    budget = FalseAlarmBudget(
        days=settings.monitor_false_alarm_days,
        studies_per_day=settings.monitor_studies_per_day,
        block_size=settings.monitor_block_size,
        monitors=len(specs),
    )
    store = PostgresFindingStore(
        pool, topic=settings.findings_topic, producer=f"{settings.service_name}/{socket.gethostname()}"
    )
    use_case = RunMonitors(
        PostgresLedgerQueries(pool),
        ModelRepoReferences(settings.monitor_model_repo),
        store,
        specs,
        block_size=settings.monitor_block_size,
        cusum=budget.parameters(settings.monitor_cusum_k),
        max_blocks_per_pass=settings.monitor_max_blocks_per_pass,
        reports=EvidentlyReportFolder(settings.monitor_reports_dir),
        settle=timedelta(seconds=settings.monitor_block_settle_s),
    )
    relay = FindingsOutboxRelay(
        pool,
        producer.send_many,
        RelayTuning(
            batch=settings.outbox_batch, poll_s=settings.outbox_poll_s, retry_max_s=settings.outbox_retry_max_s
        ),
    )
    relay.start()
    targets: TargetSource = FixedTargets(targets_of(settings))
    follower: TopicFollower | None = None
    if settings.monitor_follow_routes:
        routed = RoutedTargets()
        consumer = AsyncKafkaConsumer(
            [settings.routes_topic],
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            client_id=f"{settings.service_name}-routes",
            auto_offset_reset="earliest",
            bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
            security=settings,
        )
        follower = route_follower(consumer, routed, FollowTuning(poll_timeout_s=settings.routes_poll_s))
        await follower.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(follower.caught_up.wait(), wait_for_routes_s)
        targets = routed
    _log.info("monitors.cusum", k=use_case.cusum.k, h=use_case.cusum.h, arl0_blocks=budget.arl0_per_chart)
    return MonitorRunner(
        use_case,
        targets,
        settings.monitor_interval_s,
        pool,
        producer,
        relay,
        follower,
        settings.monitor_status_file,
        settings.outbox_drain_timeout_s,
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
    metrics = Metrics()
    runner.pass_metrics = MonitorPassMetrics(metrics)
    server = RadguardServer(settings, metrics=metrics)
    register_query_service(server, runner.pool, settings.monitor_reports_dir)
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
