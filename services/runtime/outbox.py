"""The loop every transactional-outbox relay shares: rounds, wake-ups, back-off, pruning, draining on stop.

A service writes outbox rows in the same PostgreSQL transaction as the state they announce; a relay moves
them to Kafka. What differs per service is one round (which rows, how they become records, what a failure
means for ordering): subclasses implement :meth:`OutboxRelayLoop.publish_round`. The rest is here.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord, RecordMetadata
from services.runtime.postgres import DATABASE_DOWN
from services.runtime.telemetry import get_logger

#: Publishes records in order; returns, per record, its acknowledgement or the exception it failed with.
SendMany = Callable[[Sequence[OutgoingRecord]], Awaitable[Sequence[RecordMetadata | Exception]]]


# Failures a later round may not meet again: logged as a warning, then back off.
_RETRIABLE: tuple[type[BaseException], ...] = (Unavailable, *DATABASE_DOWN)

_log = get_logger(__name__)


@dataclass(frozen=True)
class RelayTuning:
    """Batching, polling and back-off of a relay.

    Attributes:
        batch: Rows published per round.
        poll_s: Wait between rounds when idle (a local ``notify`` cuts it short).
        retry_initial_s: First back-off after a failed round.
        retry_max_s: Longest back-off.
        retention_s: Published rows older than this are deleted.
        prune_every_s: How often old published rows are pruned.
    """

    batch: int = 500
    poll_s: float = 0.5
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    retention_s: float = 7 * 24 * 3600.0
    prune_every_s: float = 600.0


class OutboxRelayLoop(ABC):
    """Background task publishing one outbox table's rows to Kafka, round after round.

    The table needs ``published_at timestamptz`` (null while pending).
    """

    def __init__(self, pool: asyncpg.Pool, table: str, tuning: RelayTuning, *, name: str) -> None:
        """Args:
        pool: Connections to the service's database.
        table: The outbox table (a trusted identifier, never user input).
        tuning: Batching and timing.
        name: Names the task and the log events, e.g. ``feedback.outbox``.
        """
        self._pool = pool
        self.tuning = tuning
        self._name = name
        self._pending_sql = f"select count(*) from {table} where published_at is null"  # noqa: S608 - trusted
        self._prune_sql = f"delete from {table} where published_at < now() - make_interval(secs => $1)"  # noqa: S608
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        #: Rows acknowledged by Kafka and marked published by this relay.
        self.published = 0
        #: Rounds that failed (Kafka or PostgreSQL unreachable); each is retried.
        self.failed_rounds = 0
        #: Whether the last round reached Kafka and PostgreSQL.
        self.healthy = True

    @abstractmethod
    async def publish_round(self) -> int:
        """Claim, publish and mark one batch; returns the rows published (0 when nothing was pending).

        Raises:
            Unavailable: PostgreSQL or Kafka could not be used.
        """

    def notify(self) -> None:
        """New rows committed: run a round now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the relay task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._name}-relay")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop the task, then publish what is pending (up to ``drain_timeout_s``); the rest stays in the outbox."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(TimeoutError, Unavailable):
            async with asyncio.timeout(drain_timeout_s):
                while await self.publish_round() > 0:
                    pass

    async def pending(self) -> int:
        """Rows not yet published (all instances together)."""
        value: int = await self._pool.fetchval(self._pending_sql)
        return value

    async def _prune_if_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_prune < self.tuning.prune_every_s:
            return
        self._last_prune = now
        status = await self._pool.execute(self._prune_sql, self.tuning.retention_s)
        _log.debug(f"{self._name}_pruned", status=status)

    async def _run(self) -> None:
        backoff = self.tuning.retry_initial_s
        while True:
            # Cleared before the round: a notify() that arrives during it makes the wait below return at once.
            self._wake.clear()
            try:
                count = await self.publish_round()
                await self._prune_if_due()
            except _RETRIABLE as error:
                self._round_failed(backoff, error)
            except Exception as error:  # a bug must not end the relay silently: log it and keep going
                _log.exception(f"{self._name}_round_crashed")
                self._round_failed(backoff, error)
            else:
                self.healthy = True
                backoff = self.tuning.retry_initial_s
                if count >= self.tuning.batch:
                    continue  # more may be waiting: no pause between full batches
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tuning.poll_s)
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.tuning.retry_max_s)

    def _round_failed(self, backoff: float, error: BaseException) -> None:
        self.failed_rounds += 1
        self.healthy = False
        _log.warning(f"{self._name}_round_failed", error=str(error), retry_in_s=backoff)
