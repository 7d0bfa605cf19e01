"""The outbox relay: publishes pending ``feedback_outbox`` rows to Kafka and marks them published.

Each round claims the oldest pending rows with ``FOR UPDATE SKIP LOCKED`` (so several feedback
instances share the work without publishing the same row at the same time), sends them in one batch,
and in the same transaction marks the acknowledged rows published and counts an attempt on the others.
A crash after Kafka acknowledged but before the commit publishes those rows again on the next round:
delivery is at least once, and the event id (the read id) lets consumers drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from services.feedback.adapters.postgres import DATABASE_DOWN
from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord, RecordMetadata
from services.runtime.telemetry import get_logger

#: Publishes records in order; returns, per record, its acknowledgement or the exception it failed with.
SendMany = Callable[[Sequence[OutgoingRecord]], Awaitable[Sequence[RecordMetadata | Exception]]]

_CLAIM = """
select id, topic, key, payload, headers from feedback_outbox
where published_at is null
order by id
limit $1
for update skip locked
"""
_MARK_PUBLISHED = (
    "update feedback_outbox set published_at = now(), attempts = attempts + 1 where id = any($1::bigint[])"
)
_MARK_FAILED = "update feedback_outbox set attempts = attempts + 1 where id = any($1::bigint[])"
_PENDING = "select count(*) from feedback_outbox where published_at is null"
_PRUNE = "delete from feedback_outbox where published_at < now() - make_interval(secs => $1)"

_log = get_logger(__name__)

# Failures a later round may not meet again: keep the relay going and back off.
_RETRIABLE: tuple[type[BaseException], ...] = (Unavailable, *DATABASE_DOWN)


@dataclass(frozen=True)
class RelayTuning:
    """Batching, polling and back-off of the relay.

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


class OutboxRelay:
    """Background task moving outbox rows to Kafka."""

    def __init__(self, pool: asyncpg.Pool, send_many: SendMany, tuning: RelayTuning | None = None) -> None:
        """Create the relay (it does nothing until :meth:`start`).

        Args:
            pool: Connections to the feedback database.
            send_many: Publishes a batch (``AsyncKafkaProducer.send_many``, started lazily by the caller).
            tuning: Batching and timing.
        """
        self._pool = pool
        self._send_many = send_many
        self.tuning = tuning or RelayTuning()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        #: Rows acknowledged by Kafka and marked published by this relay.
        self.published = 0
        #: Rounds that failed (Kafka or PostgreSQL unreachable); each is retried.
        self.failed_rounds = 0
        #: Whether the last round reached Kafka and PostgreSQL.
        self.healthy = True

    def notify(self) -> None:
        """A new row committed: run a round now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the relay task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="feedback-outbox-relay")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Publish what is pending (up to ``drain_timeout_s``), then stop; the rest stays in the outbox."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError, Unavailable):
            async with asyncio.timeout(drain_timeout_s):
                while await self.publish_round() > 0:
                    pass
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def pending(self) -> int:
        """Rows not yet published (all instances together)."""
        value: int = await self._pool.fetchval(_PENDING)
        return value

    async def publish_round(self) -> int:
        """Claim, publish and mark one batch.

        Returns:
            Rows published in this round (0 when nothing was pending).

        Raises:
            Unavailable: PostgreSQL or Kafka could not be used; nothing was marked published that was not.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(_CLAIM, self.tuning.batch)
                if not rows:
                    return 0
                records = [
                    OutgoingRecord(
                        row["topic"],
                        row["payload"],
                        row["key"],
                        tuple((name, value.encode("ascii")) for name, value in json.loads(row["headers"])),
                    )
                    for row in rows
                ]
                try:
                    outcomes = list(await self._send_many(records))
                except Exception as error:
                    outcomes = [error] * len(rows)
                published = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if not _failed(outcome)]
                failed = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if _failed(outcome)]
                if published:
                    await connection.execute(_MARK_PUBLISHED, published)
                if failed:
                    await connection.execute(_MARK_FAILED, failed)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        self.published += len(published)
        if failed:
            first = next(outcome for outcome in outcomes if _failed(outcome))
            raise Unavailable("kafka", f"{len(failed)} of {len(rows)} outbox events not acknowledged: {first}")
        return len(published)

    async def _prune_if_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_prune < self.tuning.prune_every_s:
            return
        self._last_prune = now
        status = await self._pool.execute(_PRUNE, self.tuning.retention_s)
        _log.debug("feedback.outbox_pruned", status=status)

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
                _log.exception("feedback.outbox_round_crashed")
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
        _log.warning("feedback.outbox_round_failed", error=str(error), retry_in_s=backoff)


def _failed(outcome: object) -> bool:
    return isinstance(outcome, BaseException)
