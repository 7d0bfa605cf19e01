"""Routes on the real stack: weighted sticky canary, silent shadows, and tables applied within a second."""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import grpc
import numpy as np
import pytest

from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.app import Gateway
from stack.manager import Stack
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import end_offsets, read_events, set_route, stack_credentials
from tests.integration.gateway.test_predict import image, request

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

MODEL = "placeholder"


def v2_logit(img: np.ndarray) -> float:
    # model_repo/placeholder/2/placeholder_logic.py: WEIGHT -3.0, BIAS 1.5
    return -3.0 * float(img.astype(np.float64).mean()) + 1.5


async def test_twenty_percent_canary_is_weighted_and_sticky(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints
) -> None:
    await set_route(gateway, stack.kafka_bootstrap, MODEL, "1", canary="2", weight_bp=2000)
    img = image(3)
    studies = [f"2.25.7{i:07d}{uuid.uuid4().int % 1000}" for i in range(1000)]
    arms: dict[str, int] = {}
    sem = asyncio.Semaphore(16)

    async def one(study: str) -> None:
        async with sem:
            resp = await gateway_stub.Predict(request(img, study=study))
        arms[study] = resp.arm
        if resp.arm == common_pb2.ARM_CANARY:
            assert resp.model.model_version == "2"
            assert resp.raw_score == pytest.approx(v2_logit(img), abs=1e-5)
            assert resp.probability == pytest.approx(1 / (1 + math.exp(-resp.raw_score / 1.5)), abs=1e-6)
            assert resp.threshold == pytest.approx(0.4)
        else:
            assert resp.arm == common_pb2.ARM_STABLE and resp.model.model_version == "1"

    await asyncio.gather(*(one(s) for s in studies))
    canary = sum(a == common_pb2.ARM_CANARY for a in arms.values())
    sd = math.sqrt(1000 * 0.2 * 0.8)
    assert abs(canary - 200) <= 4 * sd, canary
    # Sticky: a study's repeat calls land on its first arm.
    for study in studies[:150]:
        again = await gateway_stub.Predict(request(image(9), study=study))
        assert again.arm == arms[study]
    await set_route(gateway, stack.kafka_bootstrap, MODEL, "1")


async def test_shadow_versions_produce_events_but_never_answers(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints
) -> None:
    await set_route(gateway, stack.kafka_bootstrap, MODEL, "1", shadows=("2",))
    start = await end_offsets(stack.kafka_bootstrap)
    served = {}
    img = image(4)
    for _ in range(40):
        resp = await gateway_stub.Predict(request(img))
        assert resp.arm == common_pb2.ARM_STABLE and resp.model.model_version == "1"
        served[resp.prediction_id] = resp
    await gateway.handler.drain_shadows()
    await gateway.sink.wait_drained()
    events = await read_events(stack.kafka_bootstrap, start, 80)
    shadows = [e for e in events if e.arm == common_pb2.ARM_SHADOW and e.served_prediction_id in served]
    mine = [e for e in events if e.prediction_id in served]
    assert len(mine) == 40 and len(shadows) == 40
    served_events = {e.prediction_id: e for e in mine}
    for e in shadows:
        assert e.model.model_version == "2" and e.prediction_id not in served
        assert e.raw_score == pytest.approx(v2_logit(img), abs=1e-5)
        # Both carry the pseudonym of the caller's request id, so a shadow joins its served prediction.
        assert e.request_id == served_events[e.served_prediction_id].request_id
        assert e.request_id != served[e.served_prediction_id].request_id
    await set_route(gateway, stack.kafka_bootstrap, MODEL, "1")


async def test_a_new_table_reaches_every_gateway_within_a_second(
    gateway: Gateway, stack: StackEndpoints, real_stack: Stack
) -> None:
    """The in-process gateway and the stack's own gateway process both apply a published table in < 1 s."""
    from services.gateway.adapters.routes import publish_route
    from services.gateway.routing import Route

    channel = grpc.aio.insecure_channel(real_stack.settings.gateway_url)
    stack_gateway = inference_pb2_grpc.InferenceGatewayStub(channel)
    try:
        current = gateway.routes.get(MODEL)
        assert current is not None
        route = Route(MODEL, "1", "2", 500, revision=current.revision + 1, reason="propagation test")
        await publish_route(stack.kafka_bootstrap, route, producer="tests")
        published = time.monotonic()
        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() - published < 5:
            got = gateway.routes.get(MODEL)
            if "in-process" not in seen and got is not None and got.revision >= route.revision:
                seen["in-process"] = time.monotonic() - published
            if "stack" not in seen:
                try:
                    table = await stack_gateway.GetRoute(
                        inference_pb2.GetRouteRequest(model_name=MODEL), metadata=stack_credentials(real_stack)
                    )
                    if table.revision >= route.revision:
                        seen["stack"] = time.monotonic() - published
                except grpc.aio.AioRpcError:
                    pass
            await asyncio.sleep(0.02)
        assert set(seen) == {"in-process", "stack"}, seen
        assert max(seen.values()) < 1.0, seen
    finally:
        await channel.close()
        await set_route(gateway, stack.kafka_bootstrap, MODEL, "1")
