"""Stock tritonclient (gRPC and HTTP), unchanged, against the gateway: every call of Triton's client examples.

Each call either works like Triton's own answer (tensors bit-identical, through routing and event capture)
or gets the gateway's documented refusal (model control: PERMISSION_DENIED / 403; shared-memory
registration: UNIMPLEMENTED / 501; changing trace or log settings: PERMISSION_DENIED / 403).
"""

from __future__ import annotations

import asyncio
import queue
import uuid
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as http_aio
from grpc_reflection.v1alpha import reflection_pb2
from tritonclient.utils import InferenceServerException

from services.gateway.app import Gateway
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import end_offsets, read_events
from tests.integration.gateway.test_predict import image

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

MODEL = "placeholder"


def _grpc_inputs(img: np.ndarray) -> list[grpcclient.InferInput]:
    tensor = grpcclient.InferInput("IMAGE", list(img.shape), "FP32")
    tensor.set_data_from_numpy(img)
    return [tensor]


def _http_inputs(img: np.ndarray, binary: bool = True) -> list[httpclient.InferInput]:
    tensor = httpclient.InferInput("IMAGE", list(img.shape), "FP32")
    tensor.set_data_from_numpy(img, binary_data=binary)
    return [tensor]


def _refused(call: Any, status: str) -> str:
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert caught.value.status() == status, caught.value
    return str(caught.value.message())


def _grpc_session(url: str, direct_url: str) -> dict[str, Any]:
    """What Triton's gRPC client examples do, with the sync client (run in a thread)."""
    client = grpcclient.InferenceServerClient(url)
    direct = grpcclient.InferenceServerClient(direct_url)
    seen: dict[str, Any] = {}
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_server_metadata().name == "radguard-gateway"
    assert client.get_model_metadata(MODEL).inputs[0].name == "IMAGE"
    assert client.get_model_config(MODEL).config.name == MODEL
    assert MODEL in {m.name for m in client.get_model_repository_index().models}
    assert any(s.name == MODEL for s in client.get_inference_statistics(MODEL).model_stats)
    img = image(7)[np.newaxis]
    # A plain infer(): no id, no parameters.
    plain = client.infer(MODEL, _grpc_inputs(img))
    expected = direct.infer(MODEL, _grpc_inputs(img), model_version="1")
    np.testing.assert_array_equal(plain.as_numpy("LOGIT"), expected.as_numpy("LOGIT"))
    np.testing.assert_array_equal(plain.as_numpy("EMBEDDING"), expected.as_numpy("EMBEDDING"))
    seen["plain"] = plain.get_response().parameters["prediction_id"].string_param
    # Only the outputs asked for come back.
    only = client.infer(MODEL, _grpc_inputs(img), outputs=[grpcclient.InferRequestedOutput("LOGIT")])
    assert [o.name for o in only.get_response().outputs] == ["LOGIT"]
    # Streaming (start_stream / async_stream_infer), answers matched by id; a bad item answers with an error.
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    for i in range(6):
        client.async_stream_infer(MODEL, _grpc_inputs(image(200 + i)[np.newaxis]), request_id=f"s-{i}")
    bad = grpcclient.InferInput("IMAGE", [1, 1, 64, 64], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 1, 64, 64), np.float32))
    client.async_stream_infer(MODEL, [bad], request_id="s-bad")
    got = [answers.get(timeout=20) for _ in range(7)]
    client.stop_stream()
    ok = {r.get_response().id: r for r, e in got if e is None}
    errors = [str(e) for r, e in got if e is not None]
    assert sorted(ok) == [f"s-{i}" for i in range(6)]
    for i in range(6):
        want = direct.infer(MODEL, _grpc_inputs(image(200 + i)[np.newaxis]), model_version="1")
        np.testing.assert_array_equal(ok[f"s-{i}"].as_numpy("LOGIT"), want.as_numpy("LOGIT"))
    assert len(errors) == 1 and "INVALID_ARGUMENT" in errors[0] and "shape" in errors[0]
    seen["streamed"] = [r.get_response().parameters["prediction_id"].string_param for r in ok.values()]
    # The documented refusals.
    seen["load"] = _refused(lambda: client.load_model(MODEL), "StatusCode.PERMISSION_DENIED")
    _refused(lambda: client.unload_model(MODEL), "StatusCode.PERMISSION_DENIED")
    assert len(client.get_system_shared_memory_status().regions) == 0
    client.unregister_system_shared_memory()
    seen["shm"] = _refused(lambda: client.register_system_shared_memory("r", "/k", 64), "StatusCode.UNIMPLEMENTED")
    assert len(client.get_cuda_shared_memory_status().regions) == 0
    client.unregister_cuda_shared_memory()
    _refused(lambda: client.register_cuda_shared_memory("r", b"\0" * 64, 0, 64), "StatusCode.UNIMPLEMENTED")
    assert "trace_level" in client.get_trace_settings().settings
    _refused(
        lambda: client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}), "StatusCode.PERMISSION_DENIED"
    )
    assert client.get_log_settings() is not None
    _refused(lambda: client.update_log_settings(settings={"log_verbose_level": 1}), "StatusCode.PERMISSION_DENIED")
    client.close()
    direct.close()
    return seen


async def test_stock_grpc_client_examples_work_or_get_the_documented_refusal(
    gateway: Gateway, stack: StackEndpoints
) -> None:
    start = await end_offsets(stack.kafka_bootstrap)
    seen = await asyncio.to_thread(_grpc_session, f"127.0.0.1:{gateway.server.port}", stack.triton_grpc_url)
    assert "governance" in seen["load"] and "shared memory" in seen["shm"]
    # The plain call and the streamed ones were recorded, without study metadata for the plain one.
    await gateway.sink.wait_drained()
    wanted = {seen["plain"], *seen["streamed"]}
    events = {e.prediction_id: e for e in await read_events(stack.kafka_bootstrap, start, len(wanted))}
    assert wanted <= set(events)
    plain = events[seen["plain"]]
    assert plain.study.study_instance_uid == "" and plain.patient_pseudonym == "" and plain.request_id == ""


def _http_session(url: str, direct_url: str) -> dict[str, Any]:
    """What Triton's HTTP client examples do, with the sync client (run in a thread)."""
    client = httpclient.InferenceServerClient(url)
    direct = grpcclient.InferenceServerClient(direct_url)
    seen: dict[str, Any] = {}
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_server_metadata()["name"] == "radguard-gateway"
    assert client.get_model_metadata(MODEL)["inputs"][0]["name"] == "IMAGE"
    assert client.get_model_config(MODEL)["name"] == MODEL
    assert MODEL in {m["name"] for m in client.get_model_repository_index()}
    assert any(s["name"] == MODEL for s in client.get_inference_statistics(MODEL)["model_stats"])
    img = image(9)[np.newaxis]
    want = direct.infer(MODEL, _grpc_inputs(img), model_version="1")
    for binary in (True, False):
        plain = client.infer(MODEL, _http_inputs(img, binary))
        np.testing.assert_array_equal(plain.as_numpy("LOGIT"), want.as_numpy("LOGIT"))
        np.testing.assert_array_equal(plain.as_numpy("STATS"), want.as_numpy("STATS"))
    json_out = client.infer(
        MODEL,
        _http_inputs(img),
        outputs=[httpclient.InferRequestedOutput("LOGIT", binary_data=False)],
        request_id=f"h-{uuid.uuid4().hex}",
        parameters={"study_instance_uid": "2.25.99", "patient_id": "MRN-7", "sex": "F", "age_years": 64},
    )
    np.testing.assert_array_equal(json_out.as_numpy("LOGIT"), want.as_numpy("LOGIT"))
    answer = json_out.get_response()
    assert [o["name"] for o in answer["outputs"]] == ["LOGIT"]
    assert answer["parameters"]["arm"] == "stable" and len(answer["parameters"]["prediction_id"]) == 36
    seen["http"] = answer["parameters"]["prediction_id"]
    asynced = client.async_infer(MODEL, _http_inputs(img)).get_result()
    np.testing.assert_array_equal(asynced.as_numpy("LOGIT"), want.as_numpy("LOGIT"))
    # Validation is the gRPC endpoint's: a wrong shape names the field.
    small = httpclient.InferInput("IMAGE", [1, 1, 4, 4], "FP32")
    small.set_data_from_numpy(np.zeros((1, 1, 4, 4), np.float32))
    assert "inputs[0].shape" in _refused(lambda: client.infer(MODEL, [small]), "400")
    assert "governance" in _refused(lambda: client.load_model(MODEL), "403")
    _refused(lambda: client.unload_model(MODEL), "403")
    assert client.get_system_shared_memory_status() == []
    client.unregister_system_shared_memory()
    assert "shared memory" in _refused(lambda: client.register_system_shared_memory("r", "/k", 64), "501")
    assert client.get_cuda_shared_memory_status() == []
    assert "trace_level" in client.get_trace_settings()
    _refused(lambda: client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}), "403")
    assert isinstance(client.get_log_settings(), dict)
    _refused(lambda: client.update_log_settings(settings={"log_verbose_level": 1}), "403")
    client.close()
    direct.close()
    return seen


async def test_stock_http_client_examples_work_or_get_the_documented_refusal(
    gateway: Gateway, stack: StackEndpoints
) -> None:
    assert gateway.rest is not None
    start = await end_offsets(stack.kafka_bootstrap)
    seen = await asyncio.to_thread(_http_session, f"127.0.0.1:{gateway.rest.port}", stack.triton_grpc_url)
    await gateway.sink.wait_drained()
    events = {e.prediction_id: e for e in await read_events(stack.kafka_bootstrap, start, 1)}
    event = events[seen["http"]]
    assert event.study.study_instance_uid and event.patient_pseudonym and "MRN-7" not in str(event)
    assert event.age_band == "50-69"


async def test_the_async_http_client_works_too(gateway: Gateway) -> None:
    assert gateway.rest is not None
    client = http_aio.InferenceServerClient(f"127.0.0.1:{gateway.rest.port}")
    try:
        img = image(3)[np.newaxis]
        result = await client.infer(MODEL, _http_inputs(img))
        assert result.as_numpy("LOGIT").shape == (1, 1)
    finally:
        await client.close()


async def test_reflection_answers_under_v1_as_well_as_v1alpha(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.server.port}") as channel:
        for version in ("v1", "v1alpha"):
            call = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            answers = [a async for a in call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))]
            names = {s.name for s in answers[0].list_services_response.service}
            assert {"inference.GRPCInferenceService", "grpc.reflection.v1.ServerReflection"} <= names, version
