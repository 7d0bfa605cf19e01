"""One answer per request id on the real stack: ten concurrent calls and a retry across a SIGKILLed and
restarted gateway get one prediction id, one event on Kafka and one ledger row."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import grpc
import pytest

from kernel.topics import PREDICTIONS_TOPIC
from radguard.events.v1 import events_pb2
from radguard.inference.v1 import inference_pb2_grpc
from services.gateway.adapters.routes import publish_route, read_routes
from services.gateway.routing import Route
from services.runtime.kafka import AsyncKafkaConsumer, TopicPartition
from stack.manager import Stack
from tests.integration.conftest import StackEndpoints, kill_component, wait_restarted
from tests.integration.gateway.conftest import end_offsets, stack_credentials, stack_gateway_revision
from tests.integration.gateway.test_predict import image, request

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

MODEL = "placeholder"


async def records_after(bootstrap: str, start: dict[TopicPartition, int], quiet_s: float) -> list[tuple[bytes, str]]:
    """(key, prediction id) of every prediction event after ``start``, read until the topic is quiet."""
    consumer = AsyncKafkaConsumer([PREDICTIONS_TOPIC], bootstrap_servers=bootstrap, group_id=None, client_id="once")
    await consumer.start()
    try:
        for tp, offset in start.items():
            await consumer.seek(tp, offset)
        found: list[tuple[bytes, str]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s:
            batch = await consumer.getmany(timeout_s=0.25)
            if batch:
                quiet_since = time.monotonic()
            for r in batch:
                if r.value:
                    found.append((r.key or b"", events_pb2.PredictionEvent.FromString(r.value).prediction_id))
        return found
    finally:
        await consumer.close()


async def ledger_rows(dsn: str, prediction_id: str, at_least: int, within_s: float) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within_s
        while True:
            rows = int(
                await conn.fetchval("select count(*) from ledger_predictions where prediction_id = $1", prediction_id)
            )
            if rows >= at_least or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def test_one_prediction_per_request_id_through_concurrency_and_a_restart(
    stack: StackEndpoints, real_stack: Stack
) -> None:
    current = (await read_routes(stack.kafka_bootstrap)).get(MODEL)
    revision = (current.revision if current else 0) + 1
    await publish_route(stack.kafka_bootstrap, Route(MODEL, "1", revision=revision, reason="one answer"), "tests")
    assert await stack_gateway_revision(real_stack, MODEL, at_least=revision, within_s=30.0) is not None

    start = await end_offsets(stack.kafka_bootstrap)
    hospital = stack_credentials(real_stack, "RADGUARD_GATEWAY_TOKEN")
    same = request(image(21), request_id=f"retry-{uuid.uuid4().hex}")
    async with grpc.aio.insecure_channel(real_stack.settings.gateway_url) as channel:
        stub = inference_pb2_grpc.InferenceGatewayStub(channel)
        answers = await asyncio.gather(*(stub.Predict(same, timeout=20, metadata=hospital) for _ in range(10)))
    ids = {a.prediction_id for a in answers}
    assert len(ids) == 1, f"{len(ids)} prediction ids for one request id"
    first = answers[0]

    # The stack's supervisor restarts the killed gateway; nobody runs `stack up`.
    old_pid = await asyncio.to_thread(kill_component, real_stack, "gateway")
    await asyncio.to_thread(wait_restarted, real_stack, "gateway", old_pid)
    async with grpc.aio.insecure_channel(real_stack.settings.gateway_url) as channel:
        stub = inference_pb2_grpc.InferenceGatewayStub(channel)
        again = await stub.Predict(same, timeout=20, metadata=hospital)
    assert again.prediction_id == first.prediction_id
    assert (again.probability, again.model.model_version, again.arm) == (
        first.probability,
        first.model.model_version,
        first.arm,
    )

    events = await records_after(stack.kafka_bootstrap, start, quiet_s=3.0)
    mine = [(key, pid) for key, pid in events if pid == first.prediction_id]
    assert len(mine) == 1, f"{len(mine)} events for the prediction"
    assert [pid for key, pid in events if key == mine[0][0]] == [first.prediction_id]  # no second prediction
    assert await ledger_rows(stack.postgres_dsn, first.prediction_id, at_least=1, within_s=30) == 1
