"""A Triton outage on the real stack: UNAVAILABLE while it is away, answers again within 2 s of its return.

(The Kafka outage, and how soon the metrics show it, is tested in test_kafka_outage.py.)"""

from __future__ import annotations

import asyncio
import time
import urllib.request

import grpc
import pytest

from radguard.inference.v1 import inference_pb2_grpc
from services.gateway.app import Gateway
from stack.manager import Stack
from tests.integration.conftest import kill_component
from tests.integration.gateway.test_predict import image, request

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


async def test_answers_recover_within_two_seconds_of_tritons_return(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, real_stack: Stack
) -> None:
    img = image(3)
    assert (await gateway_stub.Predict(request(img), timeout=10)).prediction_id
    await asyncio.to_thread(kill_component, real_stack, "triton")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_stub.Predict(request(img), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(3)  # long enough for gRPC's own backoff to have grown beyond a second

    ready_at: list[float] = []

    def progress(component: str, message: str) -> None:
        if component == "triton" and message.startswith("ready after"):
            ready_at.append(time.monotonic())

    restart = asyncio.create_task(asyncio.to_thread(real_stack.up, progress))
    recovered_at = None
    while recovered_at is None:
        try:
            await gateway_stub.Predict(request(img), timeout=5)
            recovered_at = time.monotonic()
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc.code()
            assert not restart.done() or restart.exception() is None
            await asyncio.sleep(0.05)
    result = await restart
    assert result.started == ["triton"] and ready_at
    assert recovered_at - ready_at[0] < 2.0, f"answers came back {recovered_at - ready_at[0]:.2f}s after Triton"
