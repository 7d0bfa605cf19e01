"""The runner on the real stack: it monitors what the routes topic says is served, and its findings leave
through the outbox, so one stored while Kafka is down reaches the findings topic once Kafka is back."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from kafka.admin import KafkaAdminClient

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.monitors.runner.app import MonitorRunner, build_monitor_runner
from services.monitors.runner.ports import MonitorTarget
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import load_settings
from services.runtime.kafka import AsyncKafkaProducer, ensure_topics
from stack.manager import Stack
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, kill_component
from tests.integration.ledger.conftest import Topics, produce, start_writer, wait_for_rows, writer_env
from tests.integration.ledger.simulated import MODEL
from tests.integration.monitors.test_monitor_run import (
    VERSION,
    consume_findings,
    day_traffic,
    write_reference_profile,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]


def _delete(bootstrap: str, names: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="runner-tests")
    try:
        admin.delete_topics(names, timeout_ms=10_000)
    except Exception:
        pass  # best effort: the names are unique
    finally:
        admin.close()


@pytest.fixture
def runner_topics(stack: StackEndpoints) -> Iterator[tuple[str, str]]:
    """A fresh (routes, findings) topic pair; the routes topic compacted like the real one."""
    tag = uuid.uuid4().hex[:10]
    routes, findings = f"runnertest.{tag}.routes", f"runnertest.{tag}.findings"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(routes, 1, {"cleanup.policy": "compact"}), TopicSpec(findings, 1)])
    yield routes, findings
    _delete(stack.kafka_bootstrap, [routes, findings])


async def _ledger_with_day(stack: StackEndpoints, dsn: str, topics: Topics) -> None:
    predictions, reads = await asyncio.to_thread(day_traffic)
    writer = await start_writer(writer_env(stack, dsn, topics))
    try:
        await produce(stack.kafka_bootstrap, topics.predictions, predictions)
        await produce(stack.kafka_bootstrap, topics.reads, reads)
        got = await wait_for_rows(dsn, len(predictions), len(reads), timeout_s=90)
        assert got == (len(predictions), len(reads))
    finally:
        await writer.stop()


def _env(stack: StackEndpoints, dsn: str, routes: str, findings: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "RADGUARD_POSTGRES_DSN": dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_ROUTES_TOPIC": routes,
        "RADGUARD_FINDINGS_TOPIC": findings,
        "RADGUARD_MONITOR_KINDS": '["drift", "performance"]',
        "RADGUARD_MONITOR_MODEL_REPO": str(tmp_path / "model_repo"),
        "RADGUARD_MONITOR_REPORTS_DIR": str(tmp_path / "reports"),
        "RADGUARD_MONITOR_BLOCK_SIZE": "500",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
        "RADGUARD_OUTBOX_RETRY_MAX_S": "1",
    }
    env.update({f"RADGUARD_{name.upper()}": value for name, value in extra.items()})
    return env


async def _publish_route(bootstrap: str, topic: str, revision: int, stable: str, shadows: tuple[str, ...]) -> None:
    now = Timestamp()
    now.GetCurrentTime()
    event = events_pb2.RouteTableEvent(
        meta=common_pb2.EventMeta(schema_version=1, event_id=str(uuid.uuid4()), event_time=now, producer="test"),
        table=common_pb2.RouteTable(
            model_name=MODEL, stable_version=stable, shadow_versions=list(shadows), revision=revision, updated_at=now
        ),
    )
    async with AsyncKafkaProducer(bootstrap) as producer:
        await producer.send(topic, event.SerializeToString(), key=MODEL.encode())


async def _publish_served(bootstrap: str, topic: str, revision: int, uri: str, sha256: str) -> None:
    """Version 3 on stable, its reference named by the route table (as governance writes it after a renewal)."""
    now = Timestamp()
    now.GetCurrentTime()
    served = common_pb2.ServedVersion(
        version=VERSION, triton_model=MODEL, triton_version=int(VERSION), reference_uri=uri, reference_sha256=sha256
    )
    event = events_pb2.RouteTableEvent(
        meta=common_pb2.EventMeta(schema_version=1, event_id=str(uuid.uuid4()), event_time=now, producer="test"),
        table=common_pb2.RouteTable(
            model_name=MODEL, stable_version=VERSION, revision=revision, updated_at=now, served=[served]
        ),
    )
    async with AsyncKafkaProducer(bootstrap) as producer:
        await producer.send(topic, event.SerializeToString(), key=MODEL.encode())


async def _wait_for_targets(runner: MonitorRunner, expected: list[MonitorTarget], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while runner.targets.targets() != expected:
        assert time.monotonic() < deadline, f"targets stayed {runner.targets.targets()}"
        await asyncio.sleep(0.1)


async def test_a_newly_routed_version_is_monitored_without_a_restart(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics, runner_topics: tuple[str, str], tmp_path: Path
) -> None:
    write_reference_profile(tmp_path / "model_repo")
    await _ledger_with_day(stack, ledger_dsn, topics)
    routes, findings = runner_topics
    await _publish_route(stack.kafka_bootstrap, routes, 1, "1", ())  # version 1 has no traffic here
    runner = await build_monitor_runner(
        load_settings(MonitorRunnerSettings, _env(stack, ledger_dsn, *runner_topics, tmp_path))
    )
    try:
        await _wait_for_targets(runner, [MonitorTarget(MODEL, "1", "stable")])
        assert await runner.run_once() == []  # no reference profile for version 1 here, nothing judged

        # Version 3 registered beside it as a shadow: the running runner picks it up from the routes topic.
        await _publish_route(stack.kafka_bootstrap, routes, 2, "1", (VERSION,))
        await _wait_for_targets(runner, [MonitorTarget(MODEL, "1", "stable"), MonitorTarget(MODEL, VERSION, "shadow")])
        assert await runner.run_once() == []  # the day's traffic is on the stable arm of version 3, not shadow

        # Promoted to stable: findings for version 3 at once, on its two complete blocks.
        await _publish_route(stack.kafka_bootstrap, routes, 3, VERSION, ())
        await _wait_for_targets(runner, [MonitorTarget(MODEL, VERSION, "stable")])
        issued = await runner.run_once()
    finally:
        await runner.close()
    assert [(i.finding.kind.value, i.finding.model_version, i.finding.arm) for i in issued] == [
        ("drift", VERSION, "stable"),
        ("performance", VERSION, "stable"),
    ] * 2
    assert issued[0].finding.severity.value == "breach"  # the planted scanner shift
    records = await asyncio.to_thread(consume_findings, stack.kafka_bootstrap, findings, len(issued))
    assert sorted(events_pb2.Finding.FromString(v).finding_id for _, v in records) == sorted(
        i.finding_id for i in issued
    )


async def _pending(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        value: int = await connection.fetchval(
            "select count(*) from monitor_findings_outbox where published_at is null"
        )
        return value
    finally:
        await connection.close()


async def test_a_finding_stored_while_kafka_is_down_is_published_once_kafka_returns(
    stack: StackEndpoints,
    real_stack: Stack,
    ledger_dsn: str,
    topics: Topics,
    runner_topics: tuple[str, str],
    tmp_path: Path,
) -> None:
    write_reference_profile(tmp_path / "model_repo")
    await _ledger_with_day(stack, ledger_dsn, topics)
    routes, findings = runner_topics
    env = _env(
        stack,
        ledger_dsn,
        routes,
        findings,
        tmp_path,
        monitor_follow_routes="false",
        monitor_model=MODEL,
        monitor_versions=f'["{VERSION}"]',
        monitor_arms='["stable"]',
        kafka_request_timeout_ms="3000",
        kafka_max_block_ms="2000",
    )
    runner = await build_monitor_runner(load_settings(MonitorRunnerSettings, env))
    try:
        await asyncio.to_thread(kill_component, real_stack, "kafka")
        try:
            issued = await runner.run_once()  # PostgreSQL is up: the findings and their outbox rows are stored
            assert len(issued) == 4
            deadline = time.monotonic() + 30
            while runner.relay.failed_rounds < 1:  # the relay tried and could not publish
                assert time.monotonic() < deadline, "the relay never tried"
                await asyncio.sleep(0.2)
            assert await _pending(ledger_dsn) == 4  # nothing reached Kafka
        finally:
            restarted = await asyncio.to_thread(real_stack.up)
        assert "kafka" in restarted.started
        deadline = time.monotonic() + 150
        while await _pending(ledger_dsn) > 0:
            assert time.monotonic() < deadline, "the outbox was not drained after Kafka returned"
            await asyncio.sleep(0.5)
    finally:
        await runner.close()
    records = await asyncio.to_thread(consume_findings, stack.kafka_bootstrap, findings, 10, 20.0)
    seen = Counter(events_pb2.Finding.FromString(value).finding_id for _, value in records)
    assert seen == Counter({item.finding_id: 1 for item in issued})  # each finding exactly once


async def test_the_reference_a_route_names_is_the_one_judged_against_without_a_restart(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics, runner_topics: tuple[str, str], tmp_path: Path
) -> None:
    """A renewed reference reaches the runner through the routes topic: the model repository holds no profile
    for the version, the route's served entry names one elsewhere with its sha256; a wrong hash is refused (the
    target is skipped, nothing judged), the right one is used at the next pass."""
    renewed = write_reference_profile(tmp_path / "renewed")
    sha = hashlib.sha256(renewed.read_bytes()).hexdigest()
    await _ledger_with_day(stack, ledger_dsn, topics)
    routes, _ = runner_topics
    await _publish_served(stack.kafka_bootstrap, routes, 1, renewed.as_uri(), "0" * 64)
    runner = await build_monitor_runner(
        load_settings(MonitorRunnerSettings, _env(stack, ledger_dsn, *runner_topics, tmp_path))
    )
    try:
        await _wait_for_targets(runner, [MonitorTarget(MODEL, VERSION, "stable")])
        assert not (tmp_path / "model_repo" / MODEL / VERSION).exists()
        assert await runner.run_once() == []  # the file does not hash to what the route records: not used

        await _publish_served(stack.kafka_bootstrap, routes, 2, renewed.as_uri(), sha)
        deadline = time.monotonic() + 30
        while (held := runner.targets.targets()[0].served) is None or held.reference_sha256 != sha:
            assert time.monotonic() < deadline, f"the runner kept {held}"
            await asyncio.sleep(0.1)
        issued = await runner.run_once()
    finally:
        await runner.close()
    assert [(i.finding.kind.value, i.finding.model_version) for i in issued] == [
        ("drift", VERSION),
        ("performance", VERSION),
    ] * 2
    assert issued[0].finding.severity.value == "breach"  # the planted scanner shift, against the named profile
