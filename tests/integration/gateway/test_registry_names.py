"""A registry name served by another Triton model: the real gateway asks Triton for the target the route table
names, and answers, events and the stack's ledger keep the registry's name and labels."""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import asyncpg
import numpy as np
import pytest
from tritonclient.grpc import InferInput
from tritonclient.grpc import aio as triton_aio

from kernel.serving import ServedVersion
from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.adapters.routes import publish_route
from services.gateway.app import Gateway
from services.gateway.routing import Route
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.test_predict import image, request
from tests.integration.triton.test_placeholder_model import placeholder_logic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]


def v2_logit(img: np.ndarray) -> float:
    # model_repo/placeholder/2/placeholder_logic.py: WEIGHT -3.0, BIAS 1.5
    return -3.0 * float(img.astype(np.float64).mean()) + 1.5


async def _route(gateway: Gateway, bootstrap: str, route: Route) -> None:
    await publish_route(bootstrap, route, producer="tests")
    deadline = time.monotonic() + 10
    while (got := gateway.routes.get(route.model_name)) is None or got.revision < route.revision:
        assert time.monotonic() < deadline, "the gateway did not apply the route within 10 s"
        await asyncio.sleep(0.05)


async def _ledger_rows(dsn: str, model: str, expect: int, within_s: float = 60.0) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within_s
        while True:
            rows = await conn.fetch(
                "select prediction_id::text as id, model_version, arm, raw_score from ledger_predictions "
                "where model_name = $1 order by model_version, arm",
                model,
            )
            if len(rows) >= expect or time.monotonic() > deadline:
                return list(rows)
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def test_a_registry_name_is_served_by_its_triton_target_and_recorded_under_its_own_name(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints
) -> None:
    name = f"placeholder-reg-{uuid.uuid4().hex[:8]}"
    # Labels 7 and 8 of the registry are Triton's placeholder versions 1 and 2.
    served = (ServedVersion("7", "placeholder", 1), ServedVersion("8", "placeholder", 2))
    await _route(gateway, stack.kafka_bootstrap, Route(name, "7", shadow_versions=("8",), revision=1, served=served))
    table = await gateway_stub.GetRoute(inference_pb2.GetRouteRequest(model_name=name))
    assert [(s.version, s.triton_model, s.triton_version) for s in table.served] == [
        ("7", "placeholder", 1),
        ("8", "placeholder", 2),
    ]

    logic = placeholder_logic()
    answers = {}
    for seed in range(4):
        img = image(500 + seed)
        req = request(img)
        req.model_name = name
        resp = await gateway_stub.Predict(req)
        assert (resp.model.model_name, resp.model.model_version, resp.arm) == (name, "7", common_pb2.ARM_STABLE)
        assert resp.raw_score == pytest.approx(float(logic.score_batch(img[np.newaxis])[0, 0]), abs=1e-5)
        assert resp.threshold == pytest.approx(0.5)  # placeholder/1/calibration.json
        answers[resp.prediction_id] = img

    # The Open Inference Protocol under the registry name: Triton's placeholder 2 answers for label 8, pinned.
    await _route(
        gateway,
        stack.kafka_bootstrap,
        Route(name, "7", "8", 0, revision=2, served=served),
    )
    client = triton_aio.InferenceServerClient(f"127.0.0.1:{gateway.server.port}")
    try:
        img = image(600)[np.newaxis]
        tensor = InferInput("IMAGE", list(img.shape), "FP32")
        tensor.set_data_from_numpy(img)
        reply = await client.infer(name, [tensor], model_version="7", request_id=f"oip-{uuid.uuid4().hex}")
        response = reply.get_response()
        assert (response.model_name, response.model_version) == (name, "7")
        assert float(reply.as_numpy("LOGIT")[0, 0]) == pytest.approx(float(logic.score_batch(img)[0, 0]), abs=1e-5)
        # The admin calls resolve the registry's name and label too: label 8 is Triton's placeholder 2.
        assert await client.is_model_ready(name, "8")
        assert await client.is_model_ready(name)
        metadata = await client.get_model_metadata(name, "8")
        assert metadata.name == name
        assert "2" in list(metadata.versions)
        config = await client.get_model_config(name, "8")
        assert config.config.name == "placeholder"
        stats = await client.get_inference_statistics(name, "8")
        assert [(s.name, s.version) for s in stats.model_stats] == [("placeholder", "2")]
        assert not await client.is_model_ready(f"{name}-unrouted")
    finally:
        await client.close()
    await _route(
        gateway,
        stack.kafka_bootstrap,
        Route(name, "7", "8", 10_000, revision=3, served=served),
    )
    img = image(700)
    req = request(img)
    req.model_name = name
    canary = await gateway_stub.Predict(req)
    assert (canary.model.model_version, canary.arm) == ("8", common_pb2.ARM_CANARY)
    assert canary.raw_score == pytest.approx(v2_logit(img), abs=1e-5)
    assert canary.probability == pytest.approx(1 / (1 + math.exp(-canary.raw_score / 1.5)), abs=1e-6)
    assert canary.threshold == pytest.approx(0.4)  # placeholder/2/calibration.json

    await gateway.handler.drain_shadows()
    await gateway.sink.wait_drained()
    # 4 stable answers with 4 shadow copies on label 8, 1 OIP answer and 1 canary answer: 10 rows, all under
    # the registry name and its labels (the stack's own ledger writer stores the predictions topic).
    rows = await _ledger_rows(stack.postgres_dsn, name, 10)
    assert sorted((r["model_version"], r["arm"]) for r in rows) == sorted(
        [("7", "stable")] * 5 + [("8", "shadow")] * 4 + [("8", "canary")]
    )
    assert set(answers) <= {r["id"] for r in rows}
    shadows = [r for r in rows if r["arm"] == "shadow"]
    assert sorted(r["raw_score"] for r in shadows) == pytest.approx(sorted(v2_logit(i) for i in answers.values()))
