"""Poison on the real stack: oversized OIP parameters are refused at the edge; a record Kafka can never take
goes to the dead-letter folder and ordinary traffic flows on behind it, nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from kernel.topics import PREDICTIONS_TOPIC
from radguard.inference.v1 import inference_pb2_grpc
from services.gateway.app import Gateway, build_gateway
from services.gateway.deadletter import read_dead_letters
from services.gateway.spool import SpooledRecord
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import end_offsets, gateway_settings, read_events
from tests.integration.gateway.test_predict import image, request

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]


def infer_request(img: np.ndarray, **params: str) -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name="placeholder", id=f"oip-{time.monotonic_ns()}")
    tensor = req.inputs.add()
    tensor.name, tensor.datatype = "IMAGE", "FP32"
    tensor.shape.extend([1, 1, 128, 128])
    req.raw_input_contents.append(img.tobytes())
    for name, value in {"study_instance_uid": f"2.25.{time.monotonic_ns()}", **params}.items():
        req.parameters[name].string_param = value
    return req


async def test_oversized_and_control_character_oip_parameters_are_refused(gateway: Gateway) -> None:
    img = image(5)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{gateway.server.port}", options=[("grpc.max_send_message_length", 8 << 20)]
    ) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for name, value in (
            ("accession_number", "A" * 1_200_000),
            ("site_id", "site\x00a"),
            ("study_instance_uid", "1" * 65),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ModelInfer(infer_request(img, **{name: value}), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = caught.value.details() or ""
            assert details.startswith(f"parameters.{name}") and len(details) < 200
        ok = await stub.ModelInfer(infer_request(img, accession_number="ACC-1"), timeout=10)
        assert ok.parameters["prediction_id"].string_param


async def test_a_record_kafka_refuses_is_quarantined_and_traffic_flows(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints
) -> None:
    start = await end_offsets(stack.kafka_bootstrap)
    before = len(read_dead_letters(gateway.sink.spool.directory))
    published_before = gateway.sink.published
    # A record larger than the producer's limit (1 MiB), as a gateway without the edge limits left in its spool.
    poison = SpooledRecord(PREDICTIONS_TOPIC, b"2.25.999", b"\x00" * 1_200_000)
    img = image(9)
    answered: list[str] = []
    for i in range(6):
        answered.append((await gateway_stub.Predict(request(img, study=f"2.25.4242{i}"))).prediction_id)
        if i == 2:
            await asyncio.to_thread(gateway.sink.spool.append, [poison])
    await asyncio.wait_for(gateway.sink.wait_drained(), 60)

    letters = read_dead_letters(gateway.sink.spool.directory)[before:]
    assert [(d.key, d.size, d.reason) for d in letters] == [(b"2.25.999", 1_200_008, "MessageSizeTooLargeError")]
    assert letters[0].value == poison.value
    assert gateway.sink.published - published_before == 6
    events = await read_events(stack.kafka_bootstrap, start, 6, timeout_s=60)
    ids = [e.prediction_id for e in events if e.prediction_id in answered]
    assert sorted(ids) == sorted(answered)  # every answer once, none lost behind the poison
    port = gateway.server.metrics_port
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
    assert f"radguard_gateway_dead_letters_total {float(gateway.sink.dead_letters)}" in text
    assert gateway.sink.dead_letters >= 1


async def test_not_serving_and_unavailable_until_the_routes_are_read(stack: StackEndpoints, tmp_path: object) -> None:
    import tempfile
    from pathlib import Path

    gw = build_gateway(gateway_settings(stack, Path(tempfile.mkdtemp(prefix="gw-ready-"))))
    gw.sink.start()
    await gw.server.start()  # the route follower is not started yet
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = inference_pb2_grpc.InferenceGatewayStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predict(request(image(1)), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "route table is not loaded" in (caught.value.details() or "")

            await gw.follower.start()
            await asyncio.wait_for(gw.follower.caught_up.wait(), 30)
            await gw.server.refresh_readiness()
            status = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            assert (await stub.Predict(request(image(1)), timeout=10)).prediction_id
    finally:
        await gw.server.stop()
