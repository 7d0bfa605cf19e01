"""Route tables on the compacted ``radguard.routes.v1`` topic: follow them into a RouteBook, or publish one."""

from __future__ import annotations

import logging

from google.protobuf.timestamp_pb2 import Timestamp

from kernel.topics import ROUTES_TOPIC
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.gateway.routing import Route, RouteBook
from services.runtime.adapters.served import served_from_proto, served_to_proto
from services.runtime.errors import Unavailable
from services.runtime.ids import uuid7
from services.runtime.kafka import AsyncKafkaConsumer, AsyncKafkaProducer, ConsumedRecord
from services.runtime.kafka_security import KafkaSecuritySettings
from services.runtime.routes_follower import FollowTuning, TopicFollower

_log = logging.getLogger(__name__)

__all__ = [
    "RouteFollower",
    "apply_record",
    "publish_route",
    "read_routes",
    "route_event",
    "route_from_table",
    "table_from_route",
]


def route_from_table(table: common_pb2.RouteTable) -> Route:
    """Domain route from its protobuf table (ValueError if the table is inconsistent)."""
    return Route(
        model_name=table.model_name,
        stable_version=table.stable_version,
        canary_version=table.canary_version,
        canary_weight_bp=table.canary_weight_bp,
        shadow_versions=tuple(table.shadow_versions),
        revision=table.revision,
        reason=table.reason,
        served=served_from_proto(table.served),
    )


def table_from_route(route: Route) -> common_pb2.RouteTable:
    """The protobuf table of a domain route (``updated_at`` left for the caller to stamp)."""
    return common_pb2.RouteTable(
        model_name=route.model_name,
        stable_version=route.stable_version,
        canary_version=route.canary_version,
        canary_weight_bp=route.canary_weight_bp,
        shadow_versions=list(route.shadow_versions),
        revision=route.revision,
        reason=route.reason,
        served=served_to_proto(route.served),
    )


def route_event(route: Route, producer: str) -> events_pb2.RouteTableEvent:
    """The payload that announces ``route`` on the routes topic."""
    now = Timestamp()
    now.GetCurrentTime()
    table = table_from_route(route)
    table.updated_at.CopyFrom(now)
    return events_pb2.RouteTableEvent(
        meta=common_pb2.EventMeta(schema_version=1, event_id=uuid7(), event_time=now, producer=producer),
        table=table,
    )


def apply_record(book: RouteBook, record: ConsumedRecord) -> bool:
    """Apply one routes-topic record; malformed records are logged and skipped (never crash the gateway)."""
    if record.value is None:
        return False
    try:
        event = events_pb2.RouteTableEvent.FromString(record.value)
        route = route_from_table(event.table)
    except Exception as exc:
        _log.error(
            "skipping malformed route record at %s/%d@%d: %s", record.topic, record.partition, record.offset, exc
        )
        return False
    applied = book.apply(route)
    if applied:
        _log.info(
            "route applied model=%s revision=%d stable=%s canary=%s weight_bp=%d shadows=%s",
            route.model_name,
            route.revision,
            route.stable_version,
            route.canary_version or "-",
            route.canary_weight_bp,
            ",".join(route.shadow_versions) or "-",
        )
    return applied


class RouteFollower(TopicFollower):
    """Reads the whole routes topic (no consumer group) and keeps a RouteBook current."""

    def __init__(self, consumer: AsyncKafkaConsumer, book: RouteBook, poll_timeout_s: float = 0.2) -> None:
        super().__init__(
            consumer,
            lambda record: apply_record(book, record),
            FollowTuning(poll_timeout_s=poll_timeout_s),
            name="route-follower",
            on_caught_up=book.mark_loaded,
        )
        self.book = book


async def read_routes(bootstrap: str, idle_s: float = 1.0, security: KafkaSecuritySettings | None = None) -> RouteBook:
    """Read the routes topic from the beginning to its end (TLS/SASL per ``security``).

    The end is where the broker says the topic ends, asked after each poll; if it cannot say (no partition
    assigned yet, a failed request), reading stops once the topic has been quiet for ``idle_s``.
    """
    book = RouteBook()
    consumer = AsyncKafkaConsumer(
        [ROUTES_TOPIC],
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id="radguard-routes-reader",
        bootstrap_timeout_ms=5000,
        security=security,
    )
    try:
        await consumer.start()
    except Exception as exc:
        raise Unavailable("kafka", f"cannot reach Kafka at {bootstrap}: {exc}") from None
    try:
        quiet = 0.0
        while quiet < idle_s:
            records = await consumer.getmany(timeout_s=0.25)
            for record in records:
                apply_record(book, record)
            if await _at_end(consumer):
                break
            quiet = 0.0 if records else quiet + 0.25
    finally:
        await consumer.close()
    book.mark_loaded()
    return book


async def _at_end(consumer: AsyncKafkaConsumer) -> bool:
    try:
        return await consumer.at_end()
    except Exception:  # the broker could not say: the quiet timer decides
        return False


async def publish_route(
    bootstrap: str, route: Route, producer: str = "cli", security: KafkaSecuritySettings | None = None
) -> None:
    """Publish one route table (keyed by model name) and wait for the broker's acknowledgement."""
    kafka = AsyncKafkaProducer(bootstrap, client_id="radguard-routes", bootstrap_timeout_ms=5000, security=security)
    try:
        await kafka.start()
    except Exception as exc:
        raise Unavailable("kafka", f"cannot reach Kafka at {bootstrap}: {exc}") from None
    try:
        await kafka.send(ROUTES_TOPIC, route_event(route, producer).SerializeToString(), route.model_name.encode())
    finally:
        await kafka.close()
