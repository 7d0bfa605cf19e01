"""The governance outbox relay: ``gov_outbox`` rows → Kafka, then marked published.

Commands write their outbox rows in the same transaction as the state change and its audit entry;
this relay publishes them: ``route`` rows as ``RouteTableEvent`` on the compacted routes topic keyed by
model name, ``audit`` rows as ``AuditEvent`` on the audit topic keyed by seq. Each round claims the
oldest pending rows with ``FOR UPDATE SKIP LOCKED`` (several governance instances share the work),
publishes them in one batch in id order, and in the same transaction marks the acknowledged rows.
Delivery is at least once; the route revision (gateways apply only newer ones) and the audit seq make
repeats harmless. :meth:`GovernanceOutboxRelay.notify` — called when a command commits — runs a
round at once, so a route change reaches Kafka in milliseconds rather than at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from governance.domain.codec import from_jsonable
from governance.domain.model import AuditRecord, RouteState
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.governance_api.adapters.convert import audit_to_proto, route_to_proto
from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord, RecordMetadata
from services.runtime.telemetry import get_logger

#: Publishes records in order; returns, per record, its acknowledgement or the exception it failed with.
SendMany = Callable[[Sequence[OutgoingRecord]], Awaitable[Sequence[RecordMetadata | Exception]]]

_CLAIM = """
select id, kind, key, payload::text as payload from gov_outbox
where published_at is null
order by id
limit $1
for update skip locked
"""
_MARK_PUBLISHED = "update gov_outbox set published_at = now() where id = any($1::bigint[])"
_PENDING = "select count(*) from gov_outbox where published_at is null"
_PRUNE = "delete from gov_outbox where published_at < now() - make_interval(secs => $1)"

_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
)

_log = get_logger(__name__)


class MalformedOutboxRow(ValueError):
    """An outbox row whose payload cannot be turned into its event (a bug, never retried)."""


def _meta(producer: str, event_time: Timestamp, request_id: str = "") -> common_pb2.EventMeta:
    meta = common_pb2.EventMeta(schema_version=1, event_id=str(uuid.uuid4()), producer=producer, request_id=request_id)
    meta.event_time.CopyFrom(event_time)
    return meta


def route_event(payload: Mapping[str, Any], producer: str) -> events_pb2.RouteTableEvent:
    """The RouteTableEvent of a ``route`` outbox payload (a RouteState in codec JSON form)."""
    try:
        table = route_to_proto(from_jsonable(RouteState, dict(payload)))
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedOutboxRow(f"route payload: {type(error).__name__}: {error}") from error
    return events_pb2.RouteTableEvent(meta=_meta(producer, table.updated_at), table=table)


def audit_event(payload: Mapping[str, Any], producer: str) -> events_pb2.AuditEvent:
    """The AuditEvent of an ``audit`` outbox payload (an AuditRecord in codec JSON form)."""
    try:
        entry = audit_to_proto(from_jsonable(AuditRecord, dict(payload)))
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedOutboxRow(f"audit payload: {type(error).__name__}: {error}") from error
    return events_pb2.AuditEvent(meta=_meta(producer, entry.time, entry.request_id), entry=entry)


@dataclass(frozen=True)
class RelayTopics:
    """Where each kind of outbox row goes."""

    routes: str = "radguard.routes.v1"
    audit: str = "radguard.audit.v1"


@dataclass(frozen=True)
class RelayTuning:
    """Batching, polling and back-off of the relay."""

    batch: int = 200
    poll_s: float = 0.5
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    retention_s: float = 7 * 24 * 3600.0
    prune_every_s: float = 600.0


def outgoing_record(
    kind: str, key: str, payload: Mapping[str, Any], topics: RelayTopics, producer: str
) -> OutgoingRecord:
    """The Kafka record of one outbox row.

    Raises:
        MalformedOutboxRow: Unknown kind or a payload that does not fit it.
    """
    if kind == "route":
        value = route_event(payload, producer).SerializeToString()
        return OutgoingRecord(topics.routes, value, key.encode("utf-8"))
    if kind == "audit":
        value = audit_event(payload, producer).SerializeToString()
        return OutgoingRecord(topics.audit, value, key.encode("utf-8"))
    raise MalformedOutboxRow(f"unknown outbox kind {kind!r}")


class GovernanceOutboxRelay:
    """Background task moving governance outbox rows to Kafka."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        send_many: SendMany,
        *,
        producer: str,
        topics: RelayTopics | None = None,
        tuning: RelayTuning | None = None,
    ) -> None:
        """Create the relay (it does nothing until :meth:`start`).

        Args:
            pool: Connections to the governance database.
            send_many: Publishes a batch (``AsyncKafkaProducer.send_many``).
            producer: ``<service>/<instance>`` written into each event's envelope.
            topics: Destination topics.
            tuning: Batching and timing.
        """
        self._pool = pool
        self._send_many = send_many
        self._producer = producer
        self.topics = topics or RelayTopics()
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
        """A command committed outbox rows: run a round now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the relay task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="governance-outbox-relay")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Publish what is pending (up to ``drain_timeout_s``), then stop; the rest stays in the outbox."""
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
        value: int = await self._pool.fetchval(_PENDING)
        return value

    async def publish_round(self) -> int:
        """Claim, publish and mark one batch, in outbox order.

        Publishing stops at the first row Kafka does not acknowledge, so later rows (e.g. a newer
        route of the same model) never overtake it.

        Returns:
            Rows published in this round (0 when nothing was pending).

        Raises:
            Unavailable: PostgreSQL or Kafka could not be used.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(_CLAIM, self.tuning.batch)
                if not rows:
                    return 0
                records: list[OutgoingRecord] = []
                ids: list[int] = []
                for row in rows:
                    try:
                        payload = json.loads(row["payload"])
                        records.append(outgoing_record(row["kind"], row["key"], payload, self.topics, self._producer))
                        ids.append(row["id"])
                    except (MalformedOutboxRow, json.JSONDecodeError) as error:
                        # Never publishable: set it aside (marked published) so it cannot block the rest.
                        _log.error("governance.outbox_row_malformed", id=row["id"], kind=row["kind"], error=str(error))
                        await connection.execute(_MARK_PUBLISHED, [row["id"]])
                if not records:
                    return 0
                try:
                    outcomes = list(await self._send_many(records))
                except Exception as error:
                    outcomes = [error] * len(records)
                published: list[int] = []
                first_failure: BaseException | None = None
                for row_id, outcome in zip(ids, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        first_failure = outcome
                        break
                    published.append(row_id)
                if published:
                    await connection.execute(_MARK_PUBLISHED, published)
        except _DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        self.published += len(published)
        if first_failure is not None:
            raise Unavailable(
                "kafka",
                f"{len(records) - len(published)} of {len(records)} outbox events not acknowledged: {first_failure}",
            )
        return len(published)

    async def _prune_if_due(self) -> None:
        # Published rows are kept a while for inspection; the audit table, not the outbox, is the record.
        now = asyncio.get_running_loop().time()
        if now - self._last_prune < self.tuning.prune_every_s:
            return
        self._last_prune = now
        await self._pool.execute(_PRUNE, self.tuning.retention_s)

    async def _run(self) -> None:
        backoff = self.tuning.retry_initial_s
        while True:
            # Cleared before the round: a notify() during it makes the wait below return at once.
            self._wake.clear()
            try:
                count = await self.publish_round()
                await self._prune_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep going whatever happened; log and back off
                self.failed_rounds += 1
                self.healthy = False
                _log.warning("governance.outbox_round_failed", error=str(error), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.tuning.retry_max_s)
                continue
            self.healthy = True
            backoff = self.tuning.retry_initial_s
            if count >= self.tuning.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tuning.poll_s)
