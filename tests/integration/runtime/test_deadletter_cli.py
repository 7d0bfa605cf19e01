"""``radguard deadletter`` on the real stack: list, show and replay from both outboxes and the gateway's spool."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from kafka import KafkaConsumer
from typer.testing import CliRunner

from services.cli.main import app
from services.runtime.kafka import ensure_topics
from services.runtime.migrate import FOUNDATION_MIGRATIONS
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, scratch_database

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(120)]

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "governance" / "migrations",
    REPO_ROOT / "services" / "feedback" / "migrations",
]


@pytest_asyncio.fixture(loop_scope="session")
async def dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    async with scratch_database(stack.postgres_dsn, "deadletter_test", MIGRATION_DIRS) as database:
        yield database


@pytest.fixture
def topic(stack: StackEndpoints) -> Iterator[str]:
    name = f"test.deadletter.{uuid.uuid4().hex[:10]}"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, partitions=1)])
    yield name


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    values: list[bytes] = []
    try:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and len(values) < expected:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in batch)
        for batch in consumer.poll(timeout_ms=1500).values():
            values.extend(record.value for record in batch)
    finally:
        consumer.close()
    return values


def _gateway_letter(letter_id: str, topic: str, value: bytes) -> str:
    return json.dumps(
        {
            "id": letter_id,
            "topic": topic,
            "key": base64.b64encode(b"study-key").decode(),
            "value": base64.b64encode(value).decode(),
            "headers": [["traceparent", base64.b64encode(b"00-abc").decode()]],
            "reason": "MessageSizeTooLargeError: too large",
            "quarantined_at": "2026-01-01T00:00:00+00:00",
            "size": len(value),
        }
    )


async def test_list_show_and_replay_dead_letters_from_every_source(
    stack: StackEndpoints, dsn: str, topic: str, tmp_path: Path
) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        small_id = await connection.fetchval(
            "insert into feedback_outbox (event_id, topic, key, payload, quarantined_at, quarantine_reason)"
            " values ($1, $2, 'k', 'fixed-read', now(), 'MessageSizeTooLargeError: was too large') returning id",
            uuid.uuid4(),
            topic,
        )
        big_id = await connection.fetchval(
            "insert into feedback_outbox (event_id, topic, key, payload, quarantined_at, quarantine_reason)"
            " values ($1, $2, 'k', $3, now(), 'MessageSizeTooLargeError: too large') returning id",
            uuid.uuid4(),
            topic,
            b"x" * 1_200_000,
        )
        gov_id = await connection.fetchval(
            "insert into gov_outbox (kind, key, payload, quarantined_at, quarantine_reason)"
            " values ('audit', '1', '{\"seq\": 1}', now(), 'MalformedOutboxRow: audit payload') returning id"
        )
    finally:
        await connection.close()
    spool = tmp_path / "spool"
    (spool / "deadletter").mkdir(parents=True)
    (spool / "deadletter" / "000001.jsonl").write_text(_gateway_letter("g1", topic, b"prediction-1") + "\n")

    runner = CliRunner()
    where = ["--dsn", dsn, "--spool-dir", str(spool)]
    listed = await asyncio.to_thread(runner.invoke, app, ["deadletter", "list", "--json", *where])
    assert listed.exit_code == 0, listed.output
    summary = {item["id"]: item for item in json.loads(listed.output)}
    assert set(summary) == {f"feedback:{small_id}", f"feedback:{big_id}", f"governance:{gov_id}", "gateway:g1"}
    assert summary[f"feedback:{big_id}"]["size"] == 1_200_000
    assert summary["gateway:g1"]["reason"] == "MessageSizeTooLargeError: too large"

    shown = await asyncio.to_thread(runner.invoke, app, ["deadletter", "show", "gateway:g1", *where])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["headers"] == ["traceparent"]

    unknown = await asyncio.to_thread(runner.invoke, app, ["deadletter", "show", "feedback:999999", *where])
    assert unknown.exit_code == 1
    assert "unknown dead letter id: feedback:999999" in str(unknown.exception) + unknown.output

    replay_args = ["deadletter", "replay", "--all", "--bootstrap", stack.kafka_bootstrap, *where]
    replayed = await asyncio.to_thread(runner.invoke, app, replay_args)
    assert replayed.exit_code == 1, replayed.output  # two fail again
    lines = {line.split(": ", 1)[0]: line for line in replayed.output.splitlines() if ": " in line}
    assert "replayed" in lines[f"feedback:{small_id}"]
    assert "replayed" in lines["gateway:g1"]
    assert "failed again MessageSizeTooLargeError" in lines[f"feedback:{big_id}"]
    assert "failed again MalformedOutboxRow" in lines[f"governance:{gov_id}"]

    values = await asyncio.to_thread(_consume, stack.kafka_bootstrap, topic, 2)
    assert sorted(values) == [b"fixed-read", b"prediction-1"]
    replay_log = [json.loads(line) for line in (spool / "deadletter" / "replayed.jsonl").read_text().splitlines()]
    assert [entry["id"] for entry in replay_log] == ["g1"]

    pending = await asyncio.to_thread(runner.invoke, app, ["deadletter", "list", "--json", "--pending", *where])
    assert {item["id"] for item in json.loads(pending.output)} == {f"feedback:{big_id}", f"governance:{gov_id}"}
