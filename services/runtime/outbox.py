"""The loop every transactional-outbox relay shares: rounds, wake-ups, back-off, pruning, draining on stop.

A service writes outbox rows in the same PostgreSQL transaction as the state they announce; a relay moves
them to Kafka. What differs per service is one round (which rows, how they become records): subclasses
implement :meth:`OutboxRelayLoop.publish_round`. The rest is here, including what a round does with each
row's outcome (:func:`settle`):

* acknowledged → marked published;
* refused for good (the broker or the producer will never take it, e.g. larger than the message limit)
  → dead-lettered: marked quarantined with the reason, counted, logged without identifiers, and the
  round goes on with the next rows. A quarantined row stays in the table until an operator replays it
  (``radguard deadletter``);
* refused for now (Kafka unreachable, timed out) → the round stops there: that row and every later
  failed row stay pending. Later rows Kafka acknowledged in the same batch are marked published, so
  nothing is ever sent twice by a healthy relay; and until the stuck row goes through, the following
  rounds offer only that oldest pending row, alone, so no later row overtakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import kafka.errors

from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord, RecordMetadata
from services.runtime.metrics import Metrics
from services.runtime.postgres import DATABASE_DOWN
from services.runtime.telemetry import get_logger

#: Publishes records in order; returns, per record, its acknowledgement or the exception it failed with.
SendMany = Callable[[Sequence[OutgoingRecord]], Awaitable[Sequence[RecordMetadata | Exception]]]


# Failures a later round may not meet again: logged as a warning, then back off.
_RETRIABLE: tuple[type[BaseException], ...] = (Unavailable, *DATABASE_DOWN)

#: Kafka failures that a later attempt cannot cure: the record itself is wrong for the broker.
REFUSED_FOR_GOOD: tuple[type[BaseException], ...] = (
    kafka.errors.MessageSizeTooLargeError,
    kafka.errors.RecordListTooLargeError,
    kafka.errors.InvalidRecordError,
    kafka.errors.CorruptRecordError,
    kafka.errors.InvalidTimestampError,
    kafka.errors.InvalidTopicError,
)

#: Longest quarantine reason stored and logged.
MAX_REASON_CHARS = 200

_log = get_logger(__name__)


class UnpublishableRow(ValueError):
    """An outbox row that cannot become a Kafka record at all (dead-lettered like a refused record)."""


def refused_for_good(outcome: object) -> bool:
    """Whether a send outcome means the record can never be published as it is."""
    return isinstance(outcome, (*REFUSED_FOR_GOOD, UnpublishableRow))


def describe_refusal(error: BaseException) -> str:
    """The reason stored with a dead letter: the error's kind and text, bounded in length."""
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


@dataclass(frozen=True)
class Settlement:
    """What one round does with each row it offered to Kafka.

    Attributes:
        published: Ids of acknowledged rows.
        quarantined: ``(id, reason)`` of rows refused for good.
        stuck: The first row refused for now (it and later failed rows stay pending), or None.
        stuck_error: What that row failed with.
    """

    published: tuple[int, ...]
    quarantined: tuple[tuple[int, str], ...]
    stuck: int | None = None
    stuck_error: BaseException | None = None


def settle(ids: Sequence[int], outcomes: Sequence[object]) -> Settlement:
    """Sort a batch's outcomes (in outbox order) into published, quarantined and stuck.

    Args:
        ids: Row ids in the order they were sent.
        outcomes: Per row, its acknowledgement or the exception it failed with.

    Returns:
        The settlement; rows after the first retriable failure are only ever marked published (they are
        in Kafka already), never quarantined, so a dead letter is always decided in order.
    """
    published: list[int] = []
    quarantined: list[tuple[int, str]] = []
    stuck: int | None = None
    stuck_error: BaseException | None = None
    for row_id, outcome in zip(ids, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            published.append(row_id)
        elif stuck is not None:
            continue
        elif refused_for_good(outcome):
            quarantined.append((row_id, describe_refusal(outcome)))
        else:
            stuck, stuck_error = row_id, outcome
    return Settlement(tuple(published), tuple(quarantined), stuck, stuck_error)


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


def prune_statement(table: str) -> str:
    """The SQL that deletes ``table``'s rows published more than ``$1`` seconds ago (a trusted identifier)."""
    return f"delete from {table} where published_at < now() - make_interval(secs => $1)"  # noqa: S608


class OutboxRelayLoop(ABC):
    """Background task publishing one outbox table's rows to Kafka, round after round.

    The table needs ``published_at timestamptz`` (null while pending) and the dead-letter columns
    ``quarantined_at timestamptz``, ``quarantine_reason text`` and ``replayed_at timestamptz``.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        table: str,
        tuning: RelayTuning,
        *,
        name: str,
        metrics: Metrics | None = None,
    ) -> None:
        """Args:
        pool: Connections to the service's database.
        table: The outbox table (a trusted identifier, never user input).
        tuning: Batching and timing.
        name: Names the task, the log events and the metrics' ``outbox`` label, e.g. ``feedback.outbox``.
        metrics: Where the dead-letter counter goes; a private registry when None.
        """
        self._pool = pool
        self.tuning = tuning
        self._name = name
        self._pending_sql = f"select count(*) from {table} where published_at is null and quarantined_at is null"  # noqa: S608
        self._prune_sql = prune_statement(table)
        self._quarantine_sql = (
            f"update {table} set quarantined_at = now(), quarantine_reason = $2"  # noqa: S608 - trusted
            " where id = $1 and published_at is null"
        )
        registry = metrics if metrics is not None else Metrics(process_metrics=False)
        self._quarantined_counter = registry.counter(
            "outbox_quarantined", "Outbox rows Kafka refused for good, set aside as dead letters", ("outbox",)
        ).labels(name)
        self._probing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        #: Rows acknowledged by Kafka and marked published by this relay.
        self.published = 0
        #: Rounds that failed (Kafka or PostgreSQL unreachable); each is retried.
        self.failed_rounds = 0
        #: Rows dead-lettered by this relay.
        self.quarantined = 0
        #: Whether the last round reached Kafka and PostgreSQL.
        self.healthy = True

    def claim_limit(self) -> int:
        """Rows the next round may claim: one while the oldest pending row is stuck, else a batch."""
        return 1 if self._probing else self.tuning.batch

    async def apply_settlement(
        self, connection: asyncpg.Connection, settlement: Settlement, mark_published: str
    ) -> None:
        """Mark a round's rows inside its transaction, and remember whether the next round must probe.

        Args:
            connection: The round's connection, in its transaction.
            settlement: What :func:`settle` decided.
            mark_published: SQL marking the rows ``$1::bigint[]`` published.
        """
        if settlement.published:
            await connection.execute(mark_published, list(settlement.published))
        for row_id, reason in settlement.quarantined:
            await connection.execute(self._quarantine_sql, row_id, reason)
        self._probing = settlement.stuck is not None

    def record_settlement(self, settlement: Settlement) -> None:
        """Count and log a committed round's outcome (no ids or payloads: only counts and reasons)."""
        self.published += len(settlement.published)
        if settlement.quarantined:
            self.quarantined += len(settlement.quarantined)
            self._quarantined_counter.inc(len(settlement.quarantined))
            _log.error(
                f"{self._name}_dead_lettered",
                rows=len(settlement.quarantined),
                reason=settlement.quarantined[0][1],
            )

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
        _log.warning(f"{self._name}_round_failed", error=describe_refusal(error), retry_in_s=backoff)
