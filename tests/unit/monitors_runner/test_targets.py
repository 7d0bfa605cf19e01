"""Targets from the routes topic: records → served versions → (model, version, arm), newest revision wins."""

from __future__ import annotations

import asyncio

import pytest

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.monitors.runner.adapters.routes import route_follower, served_versions
from services.monitors.runner.ports import MonitorTarget
from services.monitors.runner.targets import RoutedTargets, ServedVersions
from services.runtime.kafka import ConsumedRecord
from services.runtime.routes_follower import FollowTuning


def _record(offset: int, value: bytes | None) -> ConsumedRecord:
    return ConsumedRecord("radguard.routes.v1", 0, offset, b"chest_nodule", value)


def _table(
    revision: int, stable: str, canary: str = "", shadows: tuple[str, ...] = (), model: str = "chest_nodule"
) -> bytes:
    table = common_pb2.RouteTable(
        model_name=model,
        stable_version=stable,
        canary_version=canary,
        canary_weight_bp=500 if canary else 0,
        shadow_versions=list(shadows),
        revision=revision,
    )
    return events_pb2.RouteTableEvent(table=table).SerializeToString()


def test_every_version_on_every_arm_is_a_target() -> None:
    served = served_versions(_record(0, _table(4, "2", canary="3", shadows=("4", "5"))))
    assert served == ServedVersions("chest_nodule", "2", "3", ("4", "5"), 4)
    assert served.targets() == [
        MonitorTarget("chest_nodule", "2", "stable"),
        MonitorTarget("chest_nodule", "3", "canary"),
        MonitorTarget("chest_nodule", "4", "shadow"),
        MonitorTarget("chest_nodule", "5", "shadow"),
    ]


def test_tombstones_and_malformed_or_incomplete_records_are_skipped() -> None:
    assert served_versions(_record(0, None)) is None
    assert served_versions(_record(1, b"\xff\x00 not a route")) is None
    assert served_versions(_record(2, _table(1, ""))) is None


def test_a_newer_revision_replaces_an_older_one_and_replays_change_nothing() -> None:
    targets = RoutedTargets()
    assert targets.apply(ServedVersions("chest_nodule", "1", revision=2))
    assert targets.apply(ServedVersions("placeholder", "1", revision=1))
    assert not targets.apply(ServedVersions("chest_nodule", "9", revision=2))  # a replay of the same revision
    assert not targets.apply(ServedVersions("chest_nodule", "9", revision=1))  # an older one
    assert targets.targets() == [
        MonitorTarget("chest_nodule", "1", "stable"),
        MonitorTarget("placeholder", "1", "stable"),
    ]
    assert targets.apply(ServedVersions("chest_nodule", "2", canary_version="3", revision=3))
    assert [str(t) for t in targets.targets()][:2] == ["chest_nodule/2/stable", "chest_nodule/3/canary"]


class ScriptedConsumer:
    """Stands in for AsyncKafkaConsumer: fails to connect once, then returns scripted polls."""

    def __init__(self, polls: list[list[ConsumedRecord] | Exception]) -> None:
        self.polls = polls
        self.starts = 0
        self.closed = False

    async def start(self) -> None:
        self.starts += 1
        if self.starts == 1:
            raise ConnectionError("broker not up yet")

    async def getmany(self, timeout_s: float = 1.0, max_records: int | None = None) -> list[ConsumedRecord]:
        await asyncio.sleep(0)
        if not self.polls:
            return []
        poll = self.polls.pop(0)
        if isinstance(poll, Exception):
            raise poll
        return poll

    async def at_end(self) -> bool:
        return not self.polls  # the broker's end offsets: reached once every scripted poll was read

    async def close(self, timeout_s: float = 10.0) -> None:
        self.closed = True


@pytest.mark.asyncio
async def test_the_follower_retries_survives_a_failed_poll_and_a_bad_record_and_says_when_caught_up() -> None:
    consumer = ScriptedConsumer(
        [
            [_record(0, _table(1, "1")), _record(1, b"\xff garbage")],
            OSError("broker gone"),
            [_record(2, _table(2, "1", shadows=("2",)))],
        ]
    )
    targets = RoutedTargets()
    tuning = FollowTuning(poll_timeout_s=0.01, connect_retry_initial_s=0.001, read_retry_s=0.001)
    follower = route_follower(consumer, targets, tuning)  # type: ignore[arg-type]
    await follower.start()
    await asyncio.wait_for(follower.caught_up.wait(), 5)
    await follower.stop()
    assert consumer.starts == 2 and consumer.closed
    assert follower.applied == 3
    assert targets.targets() == [
        MonitorTarget("chest_nodule", "1", "stable"),
        MonitorTarget("chest_nodule", "2", "shadow"),
    ]
