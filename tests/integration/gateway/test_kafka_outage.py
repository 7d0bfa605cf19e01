"""Kafka SIGKILLed while the gateway answers 2,000 predictions: all answered, exactly 2,000 events, and the
outage shows in the gateway's metrics within 10 s."""

from __future__ import annotations

import asyncio
import time

import pytest

from radguard.inference.v1 import inference_pb2_grpc
from services.gateway.app import Gateway
from stack.manager import Stack
from tests.integration.conftest import StackEndpoints, kill_component
from tests.integration.gateway.conftest import end_offsets, read_events, set_route, stack_gateway_revision
from tests.integration.gateway.test_outages import metric
from tests.integration.gateway.test_predict import image, request

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

TOTAL = 2000
KILL_AT = 400


async def test_kafka_killed_mid_stream_loses_and_duplicates_nothing(
    gateway: Gateway,
    gateway_stub: inference_pb2_grpc.InferenceGatewayStub,
    stack: StackEndpoints,
    real_stack: Stack,
) -> None:
    start = await end_offsets(stack.kafka_bootstrap)
    img = image(77)
    answered: dict[str, str] = {}
    killed = asyncio.Event()
    next_index = 0
    port = gateway.server.metrics_port
    assert port is not None
    probe_failures = await asyncio.to_thread(metric, port, "radguard_gateway_kafka_probe_failures")

    async def outage_seen_after() -> float:
        """Seconds from the kill until gateway_kafka_ok reads 0."""
        await killed.wait()
        killed_at = time.monotonic()
        while await asyncio.to_thread(metric, port, "radguard_gateway_kafka_ok") != 0.0:
            if time.monotonic() - killed_at > 30:
                break
            await asyncio.sleep(0.2)
        return time.monotonic() - killed_at

    seen = asyncio.create_task(outage_seen_after())

    async def worker() -> None:
        nonlocal next_index
        while next_index < TOTAL:
            i = next_index
            next_index += 1
            resp = await gateway_stub.Predict(request(img, study=f"2.25.9{i:06d}"))
            answered[resp.prediction_id] = resp.request_id
            if len(answered) == KILL_AT and not killed.is_set():
                killed.set()
                await asyncio.to_thread(kill_component, real_stack, "kafka")

    await asyncio.gather(*(worker() for _ in range(8)))
    assert killed.is_set() and len(answered) == TOTAL  # every request answered during the outage

    delay = await seen
    assert delay < 10.0, f"gateway_kafka_ok read 1 for {delay:.1f}s of the outage"
    assert await asyncio.to_thread(metric, port, "radguard_gateway_kafka_probe_failures") > probe_failures
    await asyncio.sleep(2)
    assert gateway.sink.publish_failures > 0 or gateway.sink.spool.pending_bytes > 0  # the outage was felt
    restarted = await asyncio.to_thread(real_stack.up)
    assert restarted.started == ["kafka"]
    # Both gateways lived through the outage: a table published now reaches them within seconds, not after
    # a reconnection backoff grown during the outage (kafka-python's default lets it reach 30 s).
    route = await set_route(gateway, stack.kafka_bootstrap, "placeholder", "1")
    seen = await stack_gateway_revision(real_stack, "placeholder", at_least=route.revision, within_s=5.0)
    assert seen is not None, "the stack's gateway did not apply a table within 5 s of Kafka's restart"
    await asyncio.wait_for(gateway.sink.wait_drained(), 240)
    events = await read_events(stack.kafka_bootstrap, start, TOTAL, timeout_s=120)
    ids = [e.prediction_id for e in events if e.prediction_id in answered]
    assert len(ids) == TOTAL, f"{len(ids)} events for {TOTAL} answers"
    assert set(ids) == set(answered)
