"""Feedback service → outbox → Kafka → ledger, on the real stack.

Reads recorded over gRPC (each twice: a client retry) land in the ledger once each and join their
predictions; the outcome is checked against the decision the ledger holds; reads recorded while Kafka
is unreachable are kept in the outbox and published by the next instance.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import grpc
import grpc.aio
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from services.feedback.app import Feedback, build_feedback, start_feedback
from services.feedback.settings import FeedbackSettings
from services.runtime.config import load_settings
from sim import ReadOutcome
from tests.integration.conftest import StackEndpoints, service_dsn
from tests.integration.ledger.conftest import Topics, produce, start_writer, wait_for_rows, writer_env
from tests.integration.ledger.simulated import Truth, simulate

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(180)]

_OUTCOMES = {
    ReadOutcome.AGREE: common_pb2.OUTCOME_AGREE,
    ReadOutcome.OVERRIDE: common_pb2.OUTCOME_OVERRIDE,
    ReadOutcome.CORRECT: common_pb2.OUTCOME_CORRECT,
}


def _settings(stack: StackEndpoints, dsn: str, topics: Topics, **extra: str) -> FeedbackSettings:
    env = {
        "RADGUARD_POSTGRES_DSN": service_dsn(dsn, "feedback"),
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_READS_TOPIC": topics.reads,
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
        "RADGUARD_DRAIN_GRACE_S": "1",
        "RADGUARD_OUTBOX_POLL_S": "0.1",
        "RADGUARD_OUTBOX_RETRY_MAX_S": "0.5",
        "RADGUARD_PSEUDONYM_KEY": "integration-test-key-0123456789",
        # In-process services skip caller authentication; tests/integration/security checks it on the stack's.
        "RADGUARD_AUTH_MODE": "insecure-dev",
    }
    env.update({f"RADGUARD_{name.upper()}": value for name, value in extra.items()})
    return load_settings(FeedbackSettings, env)


@asynccontextmanager
async def running(settings: FeedbackSettings) -> AsyncIterator[tuple[Feedback, feedback_pb2_grpc.FeedbackStub]]:
    feedback = await build_feedback(settings)
    await start_feedback(feedback)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{feedback.server.port}")
    try:
        yield feedback, feedback_pb2_grpc.FeedbackStub(channel)
    finally:
        await channel.close()
        await feedback.server.stop()


def request(truth: Truth, key_prefix: str = "ris") -> feedback_pb2.RecordReadRequest:
    read = truth.read
    assert read is not None
    read_time = Timestamp()
    read_time.FromDatetime(read.read_at)
    message = feedback_pb2.RecordReadRequest(
        idempotency_key=f"{key_prefix}-{truth.study.index}",
        prediction_id=truth.prediction_id,
        reader_pseudonym=read.reader_id,
        outcome=_OUTCOMES[read.outcome],
        ground_truth=common_pb2.LABEL_POSITIVE if read.label else common_pb2.LABEL_NEGATIVE,
        read_time=read_time,
    )
    if read.label:
        message.finding.category_code = "NODULE"
        if read.finding_size_mm is not None:
            message.finding.size_mm = read.finding_size_mm
    return message


async def test_reads_recorded_twice_reach_the_ledger_once_and_join(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics
) -> None:
    traffic = simulate(300, 200, seed=31)
    truths = traffic.read_truths()
    await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        assert await wait_for_rows(ledger_dsn, 300, 0) == (300, 0)
        async with running(_settings(stack, ledger_dsn, topics)) as (feedback, stub):
            slots = asyncio.Semaphore(16)

            async def record(message: feedback_pb2.RecordReadRequest) -> feedback_pb2.RecordReadResponse:
                async with slots:
                    response: feedback_pb2.RecordReadResponse = await stub.RecordRead(message)
                    return response

            first = await asyncio.gather(*(record(request(t)) for t in truths))
            retried = await asyncio.gather(*(record(request(t)) for t in truths))
            assert [r.created for r in first] == [True] * 200
            assert [r.created for r in retried] == [False] * 200
            assert [r.read.read_id for r in retried] == [r.read.read_id for r in first]

            # The ledger knows this prediction's decision, so a contradicting "agree" is refused.
            truth = truths[0]
            contradiction = request(truth, key_prefix="bad")
            contradiction.outcome = common_pb2.OUTCOME_AGREE
            contradiction.ground_truth = common_pb2.LABEL_NEGATIVE if truth.decision else common_pb2.LABEL_POSITIVE
            contradiction.ClearField("finding")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.RecordRead(contradiction)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details().startswith("outcome: agree needs ground_truth to equal the model's decision")

            assert await wait_for_rows(ledger_dsn, 300, 200) == (300, 200)
            for _ in range(40):
                if await feedback.relay.pending() == 0:
                    break
                await asyncio.sleep(0.1)
            assert await feedback.relay.pending() == 0
    finally:
        await writer.stop()
    assert writer.writer.duplicates == 0

    connection = await asyncpg.connect(ledger_dsn)
    try:
        assert await connection.fetchval("select count(*) from feedback_reads") == 200
        assert await connection.fetchval("select count(*) from feedback_outbox where published_at is not null") == 200
        rows = await connection.fetch(
            "select prediction_id, read_id, label, outcome, read_time from ledger_labelled_predictions "
            "where read_id is not null"
        )
    finally:
        await connection.close()
    assert {str(row["read_id"]) for row in rows} == {r.read.read_id for r in first}
    for row in rows:
        truth = traffic.truth[str(row["prediction_id"])]
        assert truth.read is not None
        assert (row["label"], row["outcome"], row["read_time"]) == (
            truth.read.label,
            truth.read.outcome.value,
            truth.read.read_at,
        )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_reads_recorded_while_kafka_is_unreachable_wait_in_the_outbox(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics
) -> None:
    traffic = simulate(20, 5, seed=32)
    truths = traffic.read_truths()
    unreachable = _settings(
        stack,
        ledger_dsn,
        topics,
        kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}",
        kafka_bootstrap_timeout_ms="500",
    )
    async with running(unreachable) as (feedback, stub):
        responses = [await stub.RecordRead(request(t)) for t in truths]
        assert [r.created for r in responses] == [True] * 5  # acknowledged: durable in PostgreSQL
        fetched = await stub.GetRead(feedback_pb2.GetReadRequest(idempotency_key=request(truths[0]).idempotency_key))
        assert fetched == responses[0].read
        await asyncio.sleep(1.0)
        assert feedback.relay.failed_rounds > 0
        assert await feedback.relay.pending() == 5

    # The next instance (Kafka reachable) publishes what the first one could not; the ledger keeps the
    # reads as orphans because their predictions were never published.
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        async with running(_settings(stack, ledger_dsn, topics)) as (feedback, _):
            assert await wait_for_rows(ledger_dsn, 0, 5, timeout_s=60) == (0, 5)
            assert await feedback.relay.pending() == 0
    finally:
        await writer.stop()
    connection = await asyncpg.connect(ledger_dsn)
    try:
        orphans = {str(r[0]) for r in await connection.fetch("select read_id from ledger_orphan_reads")}
    finally:
        await connection.close()
    assert orphans == {r.read.read_id for r in responses}
