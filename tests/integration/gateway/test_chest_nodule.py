"""The exported chest-nodule CNN through the gateway equals the same weights run in-process."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
import pytest

from modeling.network import InferenceEngine
from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.app import Gateway
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import set_route

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("version", ["1", "2"])
async def test_predict_equals_the_exported_model_in_process(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints, version: str
) -> None:
    from sim import Hospital

    folder = REPO / "model_repo" / "chest_nodule" / version
    engine = InferenceEngine.from_weights(folder / "weights.pt")
    calibration = json.loads((folder / "calibration.json").read_text())
    await set_route(gateway, stack.kafka_bootstrap, "chest_nodule", version)
    batch = Hospital("baseline", seed=5).studies(6, start_index=40)
    expected = engine.predict(batch.images)
    for i, study in enumerate(batch.studies):
        img = np.ascontiguousarray(batch.images[i], dtype=np.float32)
        resp = await gateway_stub.Predict(
            inference_pb2.PredictRequest(
                model_name="chest_nodule",
                request_id=uuid.uuid4().hex,
                study=common_pb2.StudyRef(study_instance_uid=study.study_uid),
                tensor=common_pb2.Tensor(
                    data=img.tobytes(), shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32
                ),
            )
        )
        logit = float(expected["LOGIT"][i, 0])
        assert resp.model.model_version == version
        assert resp.raw_score == pytest.approx(logit, abs=1e-4)
        probability = 1 / (1 + math.exp(-logit / calibration["temperature"]))
        assert resp.probability == pytest.approx(probability, abs=1e-4)
        assert resp.threshold == pytest.approx(calibration["threshold"])
        assert (resp.decision == common_pb2.DECISION_POSITIVE) == (resp.probability >= resp.threshold)
