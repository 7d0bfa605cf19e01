"""The asyncio Kafka wrappers against the real broker of the local stack."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.runtime.errors import Unavailable
from services.runtime.kafka import (
    AsyncKafkaConsumer,
    AsyncKafkaProducer,
    ConsumedRecord,
    TopicPartition,
    describe_topic_config,
    ensure_topics,
    extract_context,
    list_topics,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Spec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


_created: list[str] = []


def _unique(prefix: str) -> str:
    name = f"radguard.test.{prefix}.{uuid.uuid4().hex[:10]}"
    _created.append(name)
    return name


@pytest.fixture(scope="module", autouse=True)
def _delete_test_topics(stack: Any) -> Iterator[None]:
    """Leave the shared stack without this module's topics."""
    yield
    existing = set(list_topics(stack.kafka_bootstrap)) & set(_created)
    if existing:
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        try:
            admin.delete_topics(sorted(existing), raise_errors=False)
        finally:
            admin.close()


def _payload(study: str, score: float) -> bytes:
    # A radguard contract: the PredictionEvent the gateway publishes.
    message = events_pb2.PredictionEvent(
        prediction_id=str(uuid.uuid4()),
        raw_score=score,
        arm=common_pb2.ARM_STABLE,
        study=common_pb2.StudyRef(study_instance_uid=study),
        descriptors={"intensity.mean": score},
    )
    message.meta.schema_version = 1
    return message.SerializeToString()


async def _consume(consumer: AsyncKafkaConsumer, count: int, timeout_s: float = 60.0) -> list[ConsumedRecord]:
    records: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records += await consumer.getmany(timeout_s=1.0)
    return records


@pytest.mark.asyncio
async def test_idempotent_producer_to_consumer_group_round_trip_with_trace(stack: Any) -> None:
    topic = _unique("roundtrip")
    assert await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, [Spec(topic, 3)]) == [topic]

    provider = TracerProvider()
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")

    sent = [
        (f"study-{index % 3}".encode(), _payload(f"1.2.840.{index}", index / 10), [("schema", b"PredictionEvent.v1")])
        for index in range(9)
    ]
    async with AsyncKafkaProducer(stack.kafka_bootstrap, linger_ms=0, tracer_provider=provider) as producer:
        with tracer.start_as_current_span("gateway.predict") as request_span:
            metadata = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in sent]
        await producer.flush(timeout_s=10)
    trace_id = request_span.get_span_context().trace_id
    assert all(item.topic == topic and item.offset >= 0 for item in metadata)
    # Records with one key land in one partition, in send order.
    for key in {key for key, _, _ in sent}:
        placed = [item for (k, _, _), item in zip(sent, metadata, strict=True) if k == key]
        assert len({item.partition for item in placed}) == 1
        assert [item.offset for item in placed] == sorted(item.offset for item in placed)

    consumer = AsyncKafkaConsumer([topic], bootstrap_servers=stack.kafka_bootstrap, group_id=_unique("group"))
    await consumer.start()
    try:
        received = await _consume(consumer, len(sent))
        assert len(received) == len(sent)
        by_position = {(record.partition, record.offset): record for record in received}
        for (key, value, headers), where in zip(sent, metadata, strict=True):
            record = by_position[(where.partition, where.offset)]
            assert record.key == key
            assert record.value == value
            assert record.header("schema") == headers[0][1]
            decoded = events_pb2.PredictionEvent.FromString(record.value)
            original = events_pb2.PredictionEvent.FromString(value)
            assert decoded == original and decoded.study.study_instance_uid.startswith("1.2.840.")
            assert decoded.descriptors["intensity.mean"] == pytest.approx(decoded.raw_score)

            remote = trace.get_current_span(extract_context(record.headers)).get_span_context()
            assert remote.trace_id == trace_id

        publish_spans = [span for span in spans.get_finished_spans() if span.name == f"{topic} publish"]
        assert len(publish_spans) == len(sent)
        assert {span.context.trace_id for span in publish_spans} == {trace_id}
        first = by_position[(metadata[0].partition, metadata[0].offset)]
        remote_parent = trace.get_current_span(extract_context(first.headers)).get_span_context()
        assert remote_parent.span_id in {span.context.span_id for span in publish_spans}

        await consumer.commit()
    finally:
        await consumer.close()


@pytest.mark.asyncio
async def test_manual_commit_and_seek(stack: Any) -> None:
    topic = _unique("commit")
    await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, [Spec(topic, 1)])
    async with AsyncKafkaProducer(stack.kafka_bootstrap, linger_ms=0) as producer:
        for index in range(4):
            await producer.send(topic, f"value-{index}".encode(), key=b"k")
    group = _unique("group")
    partition = TopicPartition(topic, 0)

    first = AsyncKafkaConsumer([topic], bootstrap_servers=stack.kafka_bootstrap, group_id=group)
    await first.start()
    try:
        records = await _consume(first, 4)
        assert [record.value for record in records] == [f"value-{i}".encode() for i in range(4)]
        await first.commit({partition: 2})  # processed the first two only
        assert await first.assignment() == frozenset({partition})
    finally:
        await first.close()

    second = AsyncKafkaConsumer([topic], bootstrap_servers=stack.kafka_bootstrap, group_id=group)
    await second.start()
    try:
        resumed = await _consume(second, 2)
        assert [record.offset for record in resumed] == [2, 3]
        await second.seek(partition, 0)
        replayed = await _consume(second, 4)
        assert [record.offset for record in replayed] == [0, 1, 2, 3]
    finally:
        await second.close()


@pytest.mark.asyncio
async def test_on_assign_offsets_override_the_group(stack: Any) -> None:
    topic = _unique("assign")
    await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, [Spec(topic, 2)])
    async with AsyncKafkaProducer(stack.kafka_bootstrap, linger_ms=0) as producer:
        for index in range(6):
            await producer.send(topic, str(index).encode(), partition=index % 2)

    assigned: list[frozenset[TopicPartition]] = []

    async def stored_offsets(partitions: frozenset[TopicPartition]) -> Mapping[TopicPartition, int]:
        # Stands in for "read the offsets saved with the data in PostgreSQL".
        assigned.append(partitions)
        return {partition: 2 for partition in partitions}

    consumer = AsyncKafkaConsumer(
        [topic], bootstrap_servers=stack.kafka_bootstrap, group_id=_unique("group"), on_assign=stored_offsets
    )
    await consumer.start()
    try:
        records = await _consume(consumer, 2)
        assert sorted((record.partition, record.offset) for record in records) == [(0, 2), (1, 2)]
        assert assigned == [frozenset({TopicPartition(topic, 0), TopicPartition(topic, 1)})]
    finally:
        await consumer.close()


@pytest.mark.asyncio
async def test_groupless_consumer_reads_every_partition(stack: Any) -> None:
    topic = _unique("groupless")
    await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, [Spec(topic, 3)])
    async with AsyncKafkaProducer(stack.kafka_bootstrap, linger_ms=0) as producer:
        for index in range(3):
            await producer.send(topic, b"v", partition=index)
    async with AsyncKafkaConsumer([topic], bootstrap_servers=stack.kafka_bootstrap, group_id=None) as consumer:
        records = await _consume(consumer, 3)
        assert sorted(record.partition for record in records) == [0, 1, 2]
        with pytest.raises(RuntimeError, match="nothing to commit"):
            await consumer.commit()

    missing = AsyncKafkaConsumer([_unique("missing")], bootstrap_servers=stack.kafka_bootstrap, group_id=None)
    with pytest.raises(Unavailable, match="has no partitions"):
        await missing.start()
    await missing.close()


def test_ensure_topics_creates_a_compacted_topic_once(stack: Any) -> None:
    spec = Spec(_unique("routes"), 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"})
    other = Spec(_unique("plain"), 2)

    assert ensure_topics(stack.kafka_bootstrap, [spec, other]) == sorted([spec.name, other.name])
    assert ensure_topics(stack.kafka_bootstrap, [spec, other]) == []  # idempotent

    config = describe_topic_config(stack.kafka_bootstrap, spec.name)
    assert config["cleanup.policy"] == "compact"
    assert config["min.compaction.lag.ms"] == "0"
    assert describe_topic_config(stack.kafka_bootstrap, other.name)["cleanup.policy"] == "delete"

    topics = list_topics(stack.kafka_bootstrap)
    assert {spec.name, other.name} <= set(topics)


@pytest.mark.asyncio
async def test_lag_records_counts_what_is_left_behind_the_high_watermark(stack: Any) -> None:
    topic = _unique("lag")
    await asyncio.to_thread(ensure_topics, stack.kafka_bootstrap, [Spec(topic, 1)])
    async with AsyncKafkaProducer(stack.kafka_bootstrap, linger_ms=0) as producer:
        for index in range(50):
            await producer.send(topic, f"value-{index}".encode(), key=b"k")
    consumer = AsyncKafkaConsumer([topic], bootstrap_servers=stack.kafka_bootstrap, group_id=_unique("group"))
    await consumer.start()
    try:
        assert consumer.lag_records == 0  # nothing fetched yet: nothing known
        first: list[ConsumedRecord] = []
        deadline = time.monotonic() + 60
        while not first and time.monotonic() < deadline:
            first = await consumer.getmany(timeout_s=1.0, max_records=10)
        assert [r.offset for r in first] == list(range(10))
        assert consumer.lag_records == 40
        rest = await _consume(consumer, 40)
        assert len(rest) == 40
        assert consumer.lag_records == 0
        await consumer.seek(TopicPartition(topic, 0), 45)
        await consumer.getmany(timeout_s=1.0, max_records=1)
        assert consumer.lag_records == 4
    finally:
        await consumer.close()
