"""Wiring of the ledger writer process: settings → pool, store, consumer → writer → health server."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg

from services.monitors.ledger.adapters.postgres_store import PostgresLedgerStore, prepare_connection
from services.monitors.ledger.consumer import LedgerDecoder
from services.monitors.ledger.settings import LedgerSettings
from services.monitors.ledger.writer import LedgerWriter, WriterTuning
from services.runtime.errors import Unavailable
from services.runtime.kafka import AsyncKafkaConsumer
from services.runtime.metrics import Metrics
from services.runtime.postgres import create_pool_from_settings, is_ready
from services.runtime.server import RadguardServer
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


@dataclass
class LedgerProcess:
    """The assembled writer: its health server, the writer and what it runs on."""

    server: RadguardServer
    writer: LedgerWriter
    consumer: AsyncKafkaConsumer
    pool: asyncpg.Pool
    task: asyncio.Task[None] | None = field(default=None)
    #: Set when the writer task ended with an error (the process then stops and should exit non-zero).
    failure: BaseException | None = field(default=None)
    _stopping_server: asyncio.Future[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start consuming in a background task (the consumer connects, retrying while Kafka is down)."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._consume(), name="ledger-writer")
            self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None or self.writer.stopping:
            return
        self.failure = task.exception()
        _log.error("ledger.writer_crashed", error=f"{type(self.failure).__name__}: {self.failure}")
        # A writer that stopped writing must not look alive: stop the process so it is restarted.
        self._stopping_server = asyncio.ensure_future(self.server.stop())

    async def _consume(self) -> None:
        backoff = self.writer.tuning.retry_initial_s
        while not self.writer.stopping:
            try:
                await self.consumer.start()
                break
            except Unavailable as error:
                _log.warning("ledger.kafka_unreachable", error=error.message, retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.writer.tuning.retry_max_s)
        await self.writer.run(self.consumer)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the batch in hand, leave the group, close the pool."""
        self.writer.stop()
        if self.task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.task, timeout_s)
        await self.consumer.close(timeout_s)
        await self.pool.close()


async def build_ledger_writer(settings: LedgerSettings, *, metrics: Metrics | None = None) -> LedgerProcess:
    """Open the pool and assemble (but do not start) the writer and its health server.

    Raises:
        Unavailable: PostgreSQL cannot be reached.
    """
    metrics = metrics if metrics is not None else Metrics()
    # application_name lets operators (and the fault tests) find the writer's sessions in pg_stat_activity.
    pool = await create_pool_from_settings(
        settings, init=prepare_connection, server_settings={"application_name": settings.service_name}
    )
    writer = LedgerWriter(
        PostgresLedgerStore(pool),
        LedgerDecoder(settings.predictions_topic, settings.reads_topic),
        settings.ledger_group,
        WriterTuning(
            poll_timeout_s=settings.ledger_poll_timeout_s,
            max_batch=settings.kafka_max_poll_records,
            retry_initial_s=settings.ledger_retry_initial_s,
            retry_max_s=settings.ledger_retry_max_s,
            refused_attempts=settings.ledger_refused_attempts,
        ),
        metrics=metrics,
    )
    consumer = AsyncKafkaConsumer.from_settings(
        settings,
        [settings.predictions_topic, settings.reads_topic],
        settings.ledger_group,
        on_assign=writer.on_assign,
        on_revoke=writer.on_revoke,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        partitions_wait_s=settings.ledger_partitions_wait_s,
        rejoin_unassigned_after_s=settings.ledger_rejoin_unassigned_after_s,
    )
    metrics.gauge(
        "ledger_lag_records", "records on Kafka's predictions and reads topics not yet taken by this writer"
    ).set_function(lambda: consumer.lag_records)
    server = RadguardServer(settings, metrics=metrics)
    process = LedgerProcess(server, writer, consumer, pool)

    async def postgres_ready() -> bool:
        return await is_ready(pool, settings.readiness_timeout_s)

    async def consuming() -> bool:
        # Ready once partitions are assigned and the last poll and write went through.
        return bool(writer.assignment) and writer.healthy

    server.add_readiness_check("postgres", postgres_ready)
    server.add_readiness_check("consumer", consuming)
    server.add_shutdown_hook(process.stop, "ledger-writer")
    return process
