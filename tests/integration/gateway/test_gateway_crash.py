"""The stack's gateway SIGKILLed while answering: every answer it gave reaches Kafka after its supervised restart."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from kernel.topics import PREDICTIONS_TOPIC
from radguard.inference.v1 import inference_pb2_grpc
from services.gateway.adapters.routes import publish_route, read_routes
from services.gateway.routing import Route
from services.runtime.kafka import AsyncKafkaConsumer, TopicPartition
from stack.manager import Stack
from tests.integration.conftest import StackEndpoints, kill_component, wait_restarted
from tests.integration.gateway.conftest import end_offsets, stack_credentials, stack_gateway_revision
from tests.integration.gateway.test_predict import image, request

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

MODEL = "placeholder"
KILL_AFTER = 150


async def prediction_ids_after(
    bootstrap: str, start: dict[TopicPartition, int], wanted: set[str], timeout_s: float
) -> list[str]:
    """Prediction ids on the predictions topic after ``start``, read until all of ``wanted`` were seen."""
    consumer = AsyncKafkaConsumer([PREDICTIONS_TOPIC], bootstrap_servers=bootstrap, group_id=None, client_id="crash")
    await consumer.start()
    try:
        for tp, offset in start.items():
            await consumer.seek(tp, offset)
        from radguard.events.v1 import events_pb2

        ids: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not wanted <= set(ids):
            batch = await consumer.getmany(timeout_s=0.25)
            ids += [events_pb2.PredictionEvent.FromString(r.value).prediction_id for r in batch if r.value]
        return ids
    finally:
        await consumer.close()


async def test_a_sigkilled_gateway_loses_no_answered_prediction(stack: StackEndpoints, real_stack: Stack) -> None:
    current = (await read_routes(stack.kafka_bootstrap)).get(MODEL)
    revision = (current.revision if current else 0) + 1
    await publish_route(stack.kafka_bootstrap, Route(MODEL, "1", revision=revision, reason="crash test"), "tests")
    assert await stack_gateway_revision(real_stack, MODEL, at_least=revision, within_s=30.0) is not None

    start = await end_offsets(stack.kafka_bootstrap)
    answered: set[str] = set()
    refused: list[grpc.StatusCode] = []
    killed = asyncio.Event()
    killed_pid: list[int] = []
    img = image(31)

    hospital = stack_credentials(real_stack, "RADGUARD_GATEWAY_TOKEN")
    async with grpc.aio.insecure_channel(real_stack.settings.gateway_url) as channel:
        stub = inference_pb2_grpc.InferenceGatewayStub(channel)

        async def worker(n: int) -> None:
            for i in range(100):
                try:
                    resp = await stub.Predict(
                        request(img, study=f"2.25.77{n:02d}{i:04d}"), timeout=10, metadata=hospital
                    )
                except grpc.aio.AioRpcError as exc:
                    refused.append(exc.code())
                    if killed.is_set():
                        return
                    continue
                answered.add(resp.prediction_id)
                if len(answered) >= KILL_AFTER and not killed.is_set():
                    killed.set()
                    killed_pid.append(await asyncio.to_thread(kill_component, real_stack, "gateway"))

        await asyncio.gather(*(worker(n) for n in range(8)))

    assert killed.is_set() and len(answered) >= KILL_AFTER
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, refused
    # The stack's supervisor restarts it; nobody runs `stack up`.
    await asyncio.to_thread(wait_restarted, real_stack, "gateway", killed_pid[0], 120.0)

    ids = await prediction_ids_after(stack.kafka_bootstrap, start, answered, timeout_s=120)
    missing = answered - set(ids)
    assert not missing, f"{len(missing)} of {len(answered)} answered predictions never reached Kafka"
    # At least once across a crash: a batch published but not yet marked in the spool's cursor is sent
    # again after the restart (the ledger keys events by prediction id, so it stores each once).
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= 512, duplicates  # at most one publish batch
