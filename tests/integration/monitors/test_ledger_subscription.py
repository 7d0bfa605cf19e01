"""The ledger writer joins its group only once its topics have partitions, so it never sits on an empty assignment.

Regression test for the monitor runner's integration test, which once stored 0 rows in 60 s after the Kafka
restart tests: a consumer that joins its group while the client's metadata lists no partitions of a
subscribed topic is assigned none of it until the next metadata refresh (kafka-python's default: 5 min).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.monitors.ledger.settings import LedgerSettings
from services.runtime.config import load_settings
from services.runtime.kafka import AsyncKafkaConsumer, TopicPartition, ensure_topics
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints
from tests.integration.ledger.conftest import (
    PARTITIONS,
    Topics,
    _delete_topics,
    produce,
    start_writer,
    wait_for_rows,
    writer_env,
)
from tests.integration.ledger.simulated import simulate

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_writer_started_before_its_topics_exist_consumes_them_once_they_do(
    stack: StackEndpoints, ledger_dsn: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    topics = Topics(f"ledgertest.{tag}.predictions", f"ledgertest.{tag}.reads", f"ledgertest-{tag}")
    traffic = await asyncio.to_thread(simulate, 300, 100, 31)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        await asyncio.sleep(2.0)  # the writer is waiting for partitions of topics that do not exist yet
        specs = [TopicSpec(topics.predictions, PARTITIONS), TopicSpec(topics.reads, PARTITIONS)]
        await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, specs)
        await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
        await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)
        got = await wait_for_rows(ledger_dsn, 300, 100, timeout_s=45)
        assignment = writer.writer.assignment
    finally:
        await writer.stop()
        await asyncio.to_thread(_delete_topics, stack.kafka_bootstrap, [topics.predictions, topics.reads])
    assert got == (300, 100)
    assert assignment == {
        TopicPartition(topic, number) for topic in (topics.predictions, topics.reads) for number in range(PARTITIONS)
    }


async def _rebalances(stack: StackEndpoints, partitions_wait_s: float) -> tuple[int, int, int]:
    """(assignments, revocations, partitions held) of a consumer configured like the ledger writer."""
    tag = uuid.uuid4().hex[:10]
    names = [f"ledgertest.{tag}.predictions", f"ledgertest.{tag}.reads"]
    await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, [TopicSpec(name, PARTITIONS) for name in names])
    assigned: list[frozenset[TopicPartition]] = []
    revoked: list[frozenset[TopicPartition]] = []

    async def on_assign(partitions: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        assigned.append(partitions)
        return {}

    async def on_revoke(partitions: frozenset[TopicPartition]) -> None:
        await asyncio.sleep(0.3)  # like a writer finishing its batch: longer than one poll
        revoked.append(partitions)

    settings = load_settings(LedgerSettings, writer_env(stack, "postgresql://unused/db", Topics(*names, f"g-{tag}")))
    consumer = AsyncKafkaConsumer.from_settings(
        settings,
        names,
        f"ledgertest-{tag}",
        on_assign=on_assign,
        on_revoke=on_revoke,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        partitions_wait_s=partitions_wait_s,
    )
    try:
        await consumer.start()
        for _ in range(20):  # 4 s of the writer's 0.2 s polls
            await consumer.getmany(0.2)
        outcome = (len(assigned), len(revoked), len(await consumer.assignment()))  # before close revokes
    finally:
        await consumer.close()
        await asyncio.to_thread(_delete_topics, stack.kafka_bootstrap, names)
    return outcome


async def test_a_consumer_that_waits_for_its_topics_partitions_joins_its_group_once(stack: StackEndpoints) -> None:
    """With the writer's wait, the first join already covers every partition: no second rebalance follows,
    so kafka-python's lost-assignment race (a rebalance outliving the poll that started it) cannot start."""
    outcomes = [await _rebalances(stack, partitions_wait_s=30.0) for _ in range(5)]
    assert outcomes == [(1, 0, 2 * PARTITIONS)] * 5
