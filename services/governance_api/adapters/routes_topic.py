"""The highest route revision already on the compacted routes topic, per model.

Gateways apply a route table only when its revision is newer than the one they hold. A governance database
that starts empty (a new deployment, or routes first set by hand with ``radguard routes set``) must therefore
continue from the revisions already distributed: its first table for a model gets the topic's highest
revision + 1. The topic is read from the beginning to its end offsets once per model and cached.
"""

from __future__ import annotations

import asyncio
import time

from kafka import TopicPartition

from radguard.events.v1 import events_pb2
from services.runtime.errors import Unavailable
from services.runtime.kafka import new_consumer
from services.runtime.kafka_security import KafkaSecuritySettings
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


def _latest_revisions(
    bootstrap: str, topic: str, timeout_s: float, security: KafkaSecuritySettings | None
) -> dict[str, int]:
    consumer = new_consumer(
        security,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="radguard-governance-route-floor",
        request_timeout_ms=max(int(timeout_s * 1000), 1000) + 500,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {}
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        latest: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise TimeoutError(f"routes topic '{topic}' not read to its end within {timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        table = events_pb2.RouteTableEvent.FromString(record.value).table
                    except Exception as exc:  # a malformed record carries no revision worth honouring
                        _log.warning("skipping malformed route record at offset %d: %s", record.offset, exc)
                        continue
                    latest[table.model_name] = max(latest.get(table.model_name, 0), int(table.revision))
        return latest
    finally:
        consumer.close()


class RouteRevisionFloor:
    """``route_revision_floor`` for GovernanceService, backed by the routes topic."""

    def __init__(
        self, bootstrap: str, topic: str, *, timeout_s: float = 15.0, security: KafkaSecuritySettings | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topic = topic
        self._timeout_s = timeout_s

    async def __call__(self, model_name: str) -> int:
        """The highest revision on the topic for ``model_name`` (0 when it has none).

        Raises:
            Unavailable: Kafka cannot be read; the route change is refused rather than published with a
                revision gateways would ignore.
        """
        try:
            latest = await asyncio.to_thread(
                _latest_revisions, self._bootstrap, self._topic, self._timeout_s, self._security
            )
        except Exception as exc:
            raise Unavailable("kafka", f"cannot read the routes topic '{self._topic}': {exc}") from None
        floor = latest.get(model_name, 0)
        _log.info("route revision floor model=%s revision=%d", model_name, floor)
        return floor
