"""The routes topic as the runner reads it: each ``RouteTableEvent`` record becomes the model's served versions."""

from __future__ import annotations

from radguard.events.v1 import events_pb2
from services.monitors.runner.targets import RoutedTargets, ServedVersions
from services.runtime.adapters.served import served_from_proto
from services.runtime.kafka import AsyncKafkaConsumer, ConsumedRecord
from services.runtime.routes_follower import FollowTuning, TopicFollower
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


def served_versions(record: ConsumedRecord) -> ServedVersions | None:
    """The served versions a routes record announces, or None for a tombstone or a malformed record (logged)."""
    if record.value is None:
        return None
    try:
        table = events_pb2.RouteTableEvent.FromString(record.value).table
    except Exception as error:
        _log.error("monitors.route_malformed", partition=record.partition, offset=record.offset, error=str(error))
        return None
    if not table.model_name or not table.stable_version:
        _log.error("monitors.route_incomplete", partition=record.partition, offset=record.offset)
        return None
    return ServedVersions(
        model_name=table.model_name,
        stable_version=table.stable_version,
        canary_version=table.canary_version,
        shadow_versions=tuple(table.shadow_versions),
        revision=table.revision,
        served=tuple(entry for entry in served_from_proto(table.served) if entry.complete),
    )


def route_follower(consumer: AsyncKafkaConsumer, targets: RoutedTargets, tuning: FollowTuning) -> TopicFollower:
    """A follower of the routes topic that keeps ``targets`` current."""

    def apply(record: ConsumedRecord) -> None:
        table = served_versions(record)
        if table is not None and targets.apply(table):
            _log.info("monitors.route_applied", model=table.model_name, revision=table.revision)

    return TopicFollower(consumer, apply, tuning, name="monitors.routes")
