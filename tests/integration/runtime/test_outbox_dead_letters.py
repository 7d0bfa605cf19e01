"""Outbox relays on the real stack: a row Kafka refuses for good is dead-lettered, the rest flows once.

Each relay gets a scratch database and its own topic; a 1.2 MB row (over the broker's 1 MB message limit)
sits between ordinary rows. After the relay has drained the outbox, the big row is quarantined with its
reason and every other row is on the topic exactly once, in outbox order.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio
from kafka import KafkaConsumer

from governance.domain.codec import to_jsonable
from governance.domain.model import AuditRecord, Role
from radguard.events.v1 import events_pb2
from services.feedback.adapters.outbox import OutboxRelay
from services.governance_api.adapters.relay import GovernanceOutboxRelay, RelayTopics
from services.runtime.kafka import AsyncKafkaProducer, ensure_topics
from services.runtime.metrics import Metrics
from services.runtime.migrate import FOUNDATION_MIGRATIONS
from services.runtime.outbox import RelayTuning
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, scratch_database

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(120)]

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "governance" / "migrations",
    REPO_ROOT / "services" / "feedback" / "migrations",
]
BIG = 1_200_000
TUNING = RelayTuning(batch=4, poll_s=0.05, retry_initial_s=0.05, retry_max_s=0.2)


@pytest_asyncio.fixture(loop_scope="session")
async def dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    async with scratch_database(stack.postgres_dsn, "outbox_test", MIGRATION_DIRS) as database:
        yield database


@pytest.fixture
def topic(stack: StackEndpoints) -> Iterator[str]:
    name = f"test.outbox.{uuid.uuid4().hex[:10]}"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, partitions=1)])
    yield name


def _consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    values: list[bytes] = []
    try:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in batch)
            if len(values) >= expected:
                # One more poll so that a duplicate would show.
                for batch in consumer.poll(timeout_ms=1500).values():
                    values.extend(record.value for record in batch)
                break
    finally:
        consumer.close()
    return values


async def _drain(relay: GovernanceOutboxRelay | OutboxRelay, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while await relay.pending() > 0:
            await relay.publish_round()


async def test_feedback_relay_dead_letters_a_too_large_row_and_publishes_the_rest_once(
    stack: StackEndpoints, dsn: str, topic: str
) -> None:
    payloads = [f"read-{i}".encode() for i in range(10)]
    payloads[3] = b"x" * BIG
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = AsyncKafkaProducer(stack.kafka_bootstrap)
    await producer.start()
    metrics = Metrics(process_metrics=False)
    try:
        async with pool.acquire() as connection:
            for payload in payloads:
                await connection.execute(
                    "insert into feedback_outbox (event_id, topic, key, payload) values ($1, $2, $3, $4)",
                    uuid.uuid4(),
                    topic,
                    b"k",
                    payload,
                )
        relay = OutboxRelay(pool, producer.send_many, TUNING, metrics=metrics)
        await _drain(relay)
        rows = await pool.fetch(
            "select id, published_at, quarantined_at, quarantine_reason from feedback_outbox order by id"
        )
    finally:
        await producer.close()
        await pool.close()

    quarantined = [row for row in rows if row["quarantined_at"] is not None]
    assert [row["id"] for row in quarantined] == [rows[3]["id"]]
    assert quarantined[0]["published_at"] is None
    assert quarantined[0]["quarantine_reason"].startswith("MessageSizeTooLargeError")
    assert all(row["published_at"] is not None for i, row in enumerate(rows) if i != 3)
    assert relay.quarantined == 1
    assert b"radguard_outbox_quarantined_total" in metrics.render()

    values = await asyncio.to_thread(_consume, stack.kafka_bootstrap, topic, 9)
    expected = [p for i, p in enumerate(payloads) if i != 3]
    assert values == expected  # each once, in outbox order


def _audit_payload(seq: int, after_json: str) -> str:
    record = AuditRecord(
        seq=seq,
        prev_hash="0" * 64,
        hash=f"{seq:064x}",
        actor="alice",
        actor_role=Role.OPERATOR,
        action="version.registered",
        subject="chest-xray/1",
        before_json="{}",
        after_json=after_json,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        request_id="",
    )
    return json.dumps(to_jsonable(record))


async def test_governance_relay_dead_letters_big_and_malformed_rows_without_resending_the_rest(
    stack: StackEndpoints, dsn: str, topic: str
) -> None:
    rows_in = [_audit_payload(seq, "{}") for seq in range(1, 9)]
    rows_in[2] = _audit_payload(3, json.dumps({"uri": "u" * BIG}))
    rows_in[5] = json.dumps({"seq": "not an audit record"})
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = AsyncKafkaProducer(stack.kafka_bootstrap)
    await producer.start()
    try:
        async with pool.acquire() as connection:
            for seq, payload in enumerate(rows_in, start=1):
                await connection.execute(
                    "insert into gov_outbox (kind, key, payload) values ('audit', $1, $2::jsonb)", str(seq), payload
                )
        relay = GovernanceOutboxRelay(
            pool,
            producer.send_many,
            producer="governance/test",
            topics=RelayTopics(routes=topic, audit=topic),
            tuning=TUNING,
        )
        await _drain(relay)
        # More rounds with nothing pending must not send anything again.
        for _ in range(3):
            assert await relay.publish_round() == 0
        rows = await pool.fetch("select id, published_at, quarantine_reason from gov_outbox order by id")
    finally:
        await producer.close()
        await pool.close()

    reasons = {index: row["quarantine_reason"] for index, row in enumerate(rows) if row["quarantine_reason"]}
    assert sorted(reasons) == [2, 5]
    assert reasons[2].startswith("MessageSizeTooLargeError")
    assert reasons[5].startswith("MalformedOutboxRow")
    assert all(len(reason) <= 200 for reason in reasons.values())

    values = await asyncio.to_thread(_consume, stack.kafka_bootstrap, topic, 6)
    seqs = [events_pb2.AuditEvent.FromString(value).entry.seq for value in values]
    assert seqs == [1, 2, 4, 5, 7, 8]
