"""The governance outbox relay: ``gov_outbox`` rows → Kafka, then marked published.

Commands write their outbox rows in the same transaction as the state change and its audit entry;
this relay publishes them: ``route`` rows as ``RouteTableEvent`` on the compacted routes topic keyed by
model name, ``audit`` rows as ``AuditEvent`` on the audit topic keyed by seq. Each round claims the
oldest pending rows with ``FOR UPDATE SKIP LOCKED`` (several governance instances share the work),
publishes them in one batch in id order, and in the same transaction marks the acknowledged rows and
dead-letters the rows that can never be published (Kafka refuses them for good, or their payload does
not convert): ``quarantined_at`` and ``quarantine_reason`` are set and the relay goes on with the next
rows. The shared loop (:mod:`services.runtime.outbox`) states the order guarantee.
Delivery is at least once; the route revision (gateways apply only newer ones) and the audit seq make
repeats harmless. :meth:`GovernanceOutboxRelay.notify` — called when a command commits — runs a
round at once, so a route change reaches Kafka in milliseconds rather than at the next poll.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from governance.domain.codec import from_jsonable
from governance.domain.model import AuditRecord, RouteState
from kernel.topics import AUDIT_TOPIC, ROUTES_TOPIC
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.governance_api.adapters.convert import audit_to_proto, route_to_proto
from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord
from services.runtime.metrics import Metrics
from services.runtime.outbox import (
    OutboxRelayLoop,
    RelayTuning,
    SendMany,
    Settlement,
    UnpublishableRow,
    describe_refusal,
    settle,
)
from services.runtime.postgres import DATABASE_DOWN

_CLAIM = """
select id, kind, key, payload::text as payload from gov_outbox
where published_at is null and quarantined_at is null
order by id
limit $1
for update skip locked
"""
_MARK_PUBLISHED = "update gov_outbox set published_at = now() where id = any($1::bigint[])"


class MalformedOutboxRow(UnpublishableRow):
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

    routes: str = ROUTES_TOPIC
    audit: str = AUDIT_TOPIC


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


class GovernanceOutboxRelay(OutboxRelayLoop):
    """Background task moving governance outbox rows to Kafka."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        send_many: SendMany,
        *,
        producer: str,
        topics: RelayTopics | None = None,
        tuning: RelayTuning | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Create the relay (it does nothing until :meth:`start`).

        Args:
            pool: Connections to the governance database.
            send_many: Publishes a batch (``AsyncKafkaProducer.send_many``).
            producer: ``<service>/<instance>`` written into each event's envelope.
            topics: Destination topics.
            tuning: Batching and timing.
            metrics: Where the dead-letter counter goes.
        """
        super().__init__(
            pool, "gov_outbox", tuning or RelayTuning(batch=200), name="governance.outbox", metrics=metrics
        )
        self._send_many = send_many
        self._producer = producer
        self.topics = topics or RelayTopics()

    async def publish_round(self) -> int:
        """Claim, publish and mark one batch, in outbox order.

        A row Kafka refuses for good (or whose payload does not convert) is dead-lettered and the
        round goes on; at the first row refused for now the round stops, so later rows never overtake it.

        Returns:
            Rows settled in this round, published or dead-lettered (0 when nothing was pending).

        Raises:
            Unavailable: PostgreSQL or Kafka could not be used.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(_CLAIM, self.claim_limit())
                if not rows:
                    return 0
                records: list[OutgoingRecord] = []
                slots: list[int] = []
                outcomes: list[object] = []
                for row in rows:
                    try:
                        payload = json.loads(row["payload"])
                        record = outgoing_record(row["kind"], row["key"], payload, self.topics, self._producer)
                    except (MalformedOutboxRow, json.JSONDecodeError) as error:
                        outcomes.append(MalformedOutboxRow(describe_refusal(error)))
                        continue
                    slots.append(len(outcomes))
                    outcomes.append(None)
                    records.append(record)
                if records:
                    try:
                        sent: list[object] = list(await self._send_many(records))
                    except Exception as error:
                        # The producer itself failed (not one record): retriable, nothing is dead-lettered.
                        sent = [Unavailable("kafka", describe_refusal(error))] * len(records)
                    for slot, outcome in zip(slots, sent, strict=True):
                        outcomes[slot] = outcome
                settlement: Settlement = settle([row["id"] for row in rows], outcomes)
                await self.apply_settlement(connection, settlement, _MARK_PUBLISHED)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", describe_refusal(error)) from error
        self.record_settlement(settlement)
        if settlement.stuck_error is not None:
            raise Unavailable("kafka", f"outbox events not acknowledged: {describe_refusal(settlement.stuck_error)}")
        return len(settlement.published) + len(settlement.quarantined)
