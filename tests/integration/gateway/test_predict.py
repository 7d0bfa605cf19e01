"""The gateway on the real stack: answers, the OIP endpoint, events on Kafka, bad input."""

from __future__ import annotations

import asyncio
import math
import uuid

import grpc
import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import InferInput

from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.app import Gateway
from services.gateway.pseudonym import Pseudonymiser
from services.runtime.pseudonyms import REQUEST_ID, STUDY_UID
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import PSEUDONYM_KEY, end_offsets, read_events
from tests.integration.triton.test_placeholder_model import placeholder_logic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

RNG = np.random.default_rng(11)


def image(seed: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed) if seed is not None else RNG
    return rng.normal(0.3, 0.2, (1, 128, 128)).astype(np.float32)


def request(img: np.ndarray, study: str | None = None, **overrides: object) -> inference_pb2.PredictRequest:
    req = inference_pb2.PredictRequest(
        model_name="placeholder",
        request_id=uuid.uuid4().hex,
        study=common_pb2.StudyRef(study_instance_uid=study or f"2.25.{uuid.uuid4().int}"),
        patient=common_pb2.PatientRef(patient_id="MRN-42", issuer="HOSP"),
        patient_context=common_pb2.PatientContext(sex=common_pb2.SEX_FEMALE, age_years=71),
        acquisition=common_pb2.AcquisitionContext(
            site_id="site-a", modality="DX", manufacturer="Acme", manufacturer_model="X1"
        ),
        tensor=common_pb2.Tensor(data=img.tobytes(), shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32),
    )
    for key, value in overrides.items():
        if isinstance(value, str):
            setattr(req, key, value)
        else:
            getattr(req, key).CopyFrom(value)
    return req


async def test_predict_matches_the_model_in_process(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub
) -> None:
    logic = placeholder_logic()
    for seed in range(5):
        img = image(seed)
        resp = await gateway_stub.Predict(request(img))
        expected = float(logic.score_batch(img[np.newaxis])[0, 0])
        assert resp.raw_score == pytest.approx(expected, abs=1e-5)
        assert resp.probability == pytest.approx(1 / (1 + math.exp(-expected)), abs=1e-6)
        assert resp.decision == (
            common_pb2.DECISION_POSITIVE if resp.probability >= 0.5 else common_pb2.DECISION_NEGATIVE
        )
        assert resp.model.model_name == "placeholder" and resp.model.model_version == "1"
        assert resp.arm == common_pb2.ARM_STABLE and resp.latency_ms > 0
        assert len(resp.prediction_id) == 36


async def test_oip_through_the_gateway_equals_triton_direct(gateway: Gateway, stack: StackEndpoints) -> None:
    via = triton_aio.InferenceServerClient(f"127.0.0.1:{gateway.server.port}")
    direct = triton_aio.InferenceServerClient(stack.triton_grpc_url)
    try:
        assert await via.is_server_live() and await via.is_server_ready()
        assert await via.is_model_ready("placeholder")
        meta = await via.get_model_metadata("placeholder")
        assert meta.inputs[0].name == "IMAGE"
        for seed in range(3):
            img = image(100 + seed)[np.newaxis]
            tensor = InferInput("IMAGE", list(img.shape), "FP32")
            tensor.set_data_from_numpy(img)
            a = await direct.infer("placeholder", [tensor], model_version="1")  # the route's stable version
            b = await via.infer(
                "placeholder",
                [tensor],
                request_id=f"oip-{uuid.uuid4().hex}",
                parameters={
                    "study_instance_uid": f"2.25.{uuid.uuid4().int}",
                    "patient_id": "MRN-1",
                    "sex": "M",
                    "age_years": 50,
                },
            )
            np.testing.assert_array_equal(a.as_numpy("LOGIT"), b.as_numpy("LOGIT"))
            params = b.get_response().parameters
            assert params["arm"].string_param == "stable"
            assert len(params["prediction_id"].string_param) == 36
            assert 0.0 <= params["probability"].double_param <= 1.0
    finally:
        await via.close()
        await direct.close()


async def test_every_answer_is_one_event_with_the_same_values(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints
) -> None:
    start = await end_offsets(stack.kafka_bootstrap)
    answers = {}
    for i in range(60):
        resp = await gateway_stub.Predict(request(image(1000 + i)))
        answers[resp.prediction_id] = resp
    await gateway.sink.wait_drained()
    events = [e for e in await read_events(stack.kafka_bootstrap, start, len(answers)) if e.prediction_id in answers]
    assert sorted(e.prediction_id for e in events) == sorted(answers)  # each exactly once
    pseudonyms = Pseudonymiser(PSEUDONYM_KEY.encode())
    pseudonym = pseudonyms.pseudonym("MRN-42", "HOSP")
    for e in events:
        r = answers[e.prediction_id]
        assert e.raw_score == r.raw_score and e.probability == r.probability and e.decision == r.decision
        assert e.model == r.model and e.arm == r.arm
        # The caller got its own study UID and request id back; the event carries only their pseudonyms.
        assert e.study.study_instance_uid == pseudonyms.identifier(STUDY_UID, r.study.study_instance_uid)
        assert e.request_id == e.meta.request_id == pseudonyms.identifier(REQUEST_ID, r.request_id)
        assert e.patient_pseudonym == pseudonym and "MRN-42" not in e.SerializeToString().decode("latin-1")
        assert e.age_band == "70+" and e.patient_context.age_years == 71
        assert e.acquisition.manufacturer == "Acme" and e.meta.event_id == e.prediction_id


GOOD = image(5)


def bad_cases() -> list[tuple[str, inference_pb2.PredictRequest, grpc.StatusCode, str]]:
    def req(**kw: object) -> inference_pb2.PredictRequest:
        return request(GOOD, **kw)

    no_image = req()
    no_image.ClearField("tensor")
    wrong_shape = req(
        tensor=common_pb2.Tensor(data=GOOD.tobytes(), shape=[1, 1, 64, 256], dtype=common_pb2.DATA_TYPE_FLOAT32)
    )
    wrong_dtype = req(
        tensor=common_pb2.Tensor(data=GOOD.tobytes(), shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_UNSPECIFIED)
    )
    nan = GOOD.copy()
    nan[0, 5, 5] = np.nan
    with_nan = req(
        tensor=common_pb2.Tensor(data=nan.tobytes(), shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32)
    )
    short = req(
        tensor=common_pb2.Tensor(data=GOOD.tobytes()[:1000], shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32)
    )
    empty = req(tensor=common_pb2.Tensor(data=b"", shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32))
    huge = req(
        tensor=common_pb2.Tensor(
            data=b"\0" * (17 * 1024 * 1024), shape=[1, 1, 128, 128], dtype=common_pb2.DATA_TYPE_FLOAT32
        )
    )
    no_study = req()
    no_study.study.study_instance_uid = ""
    bad_dicom = req()
    bad_dicom.dicom.data = b"DICM but not really"
    bad_sex = req()
    bad_sex.patient_context.sex = 42  # type: ignore[assignment]
    old = req()
    old.patient_context.age_years = 400
    return [
        ("missing image", no_image, grpc.StatusCode.INVALID_ARGUMENT, "image: is required"),
        ("wrong shape", wrong_shape, grpc.StatusCode.INVALID_ARGUMENT, "tensor.shape"),
        ("unspecified dtype", wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT, "tensor.dtype"),
        ("NaN pixel", with_nan, grpc.StatusCode.INVALID_ARGUMENT, "tensor.data: contains NaN"),
        ("truncated data", short, grpc.StatusCode.INVALID_ARGUMENT, "tensor.data: holds 1000 bytes"),
        ("empty data", empty, grpc.StatusCode.INVALID_ARGUMENT, "tensor.data: is empty"),
        ("oversized", huge, grpc.StatusCode.INVALID_ARGUMENT, "tensor.data: is 17825792 bytes"),
        ("missing study", no_study, grpc.StatusCode.INVALID_ARGUMENT, "study.study_instance_uid: is required"),
        ("missing model", req(model_name=""), grpc.StatusCode.INVALID_ARGUMENT, "model_name: is required"),
        ("missing request id", req(request_id=""), grpc.StatusCode.INVALID_ARGUMENT, "request_id: is required"),
        ("unparseable DICOM", bad_dicom, grpc.StatusCode.INVALID_ARGUMENT, "dicom.data"),
        ("unknown sex", bad_sex, grpc.StatusCode.INVALID_ARGUMENT, "patient_context.sex"),
        ("impossible age", old, grpc.StatusCode.INVALID_ARGUMENT, "patient_context.age_years"),
        ("unknown model", req(model_name="no-such-model"), grpc.StatusCode.NOT_FOUND, "model 'no-such-model'"),
    ]


@pytest.mark.parametrize(("name", "req", "code", "text"), bad_cases(), ids=[c[0] for c in bad_cases()])
async def test_bad_input_gets_a_status_naming_the_field(
    gateway_stub: inference_pb2_grpc.InferenceGatewayStub,
    name: str,
    req: inference_pb2.PredictRequest,
    code: grpc.StatusCode,
    text: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway_stub.Predict(req)
    assert info.value.code() == code, info.value.details()
    assert text in (info.value.details() or "")
    assert "MRN-42" not in (info.value.details() or "")


ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    model=st.sampled_from(["placeholder", "", "nope", "placeholder\n"]),
    request_id=st.text(max_size=40),
    study=st.text(max_size=80),
    shape=st.lists(st.integers(-2, 200), max_size=5),
    dtype=st.integers(0, 9),
    data=st.one_of(st.binary(max_size=300), st.just(GOOD.tobytes())),
    age=st.one_of(st.none(), st.integers(0, 2**31)),
    sex=st.integers(0, 6),
    dicom=st.booleans(),
)
async def test_random_requests_never_crash_the_gateway(
    gateway_stub: inference_pb2_grpc.InferenceGatewayStub,
    model: str,
    request_id: str,
    study: str,
    shape: list[int],
    dtype: int,
    data: bytes,
    age: int | None,
    sex: int,
    dicom: bool,
) -> None:
    req = inference_pb2.PredictRequest(
        model_name=model, request_id=request_id, study=common_pb2.StudyRef(study_instance_uid=study)
    )
    req.patient_context.sex = sex  # type: ignore[assignment]
    if age is not None:
        req.patient_context.age_years = age
    if dicom:
        req.dicom.data = data
    else:
        req.tensor.data = data
        req.tensor.shape.extend(shape)
        req.tensor.dtype = dtype  # type: ignore[assignment]
    try:
        await gateway_stub.Predict(req)
        code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
    assert code in ALLOWED


async def test_dicom_input_is_scored_and_its_tags_fill_the_context(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub, stack: StackEndpoints
) -> None:
    from sim import Hospital, from_dicom, to_dicom

    study = Hospital("baseline", seed=21).studies(1, start_index=3).studies[0]
    data = to_dicom(study)
    pixels, _meta = from_dicom(data)
    start = await end_offsets(stack.kafka_bootstrap)
    req = inference_pb2.PredictRequest(
        model_name="placeholder", request_id=uuid.uuid4().hex, dicom=inference_pb2.DicomInstance(data=data)
    )
    resp = await gateway_stub.Predict(req)
    expected = float(placeholder_logic().score_batch(pixels[np.newaxis])[0, 0])
    assert resp.raw_score == pytest.approx(expected, abs=1e-5)
    assert resp.study.study_instance_uid == study.study_uid
    assert resp.study.accession_number == study.accession
    await gateway.sink.wait_drained()
    events = [e for e in await read_events(stack.kafka_bootstrap, start, 1) if e.prediction_id == resp.prediction_id]
    assert len(events) == 1
    event = events[0]
    assert event.acquisition.manufacturer == study.manufacturer
    assert event.acquisition.manufacturer_model == study.model
    assert event.acquisition.site_id == study.site_id
    assert event.patient_context.age_years == study.age
    assert event.patient_pseudonym == Pseudonymiser(PSEUDONYM_KEY.encode()).pseudonym(study.patient_id, "")
    assert event.acquisition.pixel_spacing_mm.row_mm == pytest.approx(study.pixel_spacing[0])


async def test_event_path_is_visible_in_metrics(
    gateway: Gateway, gateway_stub: inference_pb2_grpc.InferenceGatewayStub
) -> None:
    import urllib.request

    for seed in range(3):
        await gateway_stub.Predict(request(image(seed)))
    await gateway.sink.wait_drained()
    port = gateway.server.metrics_port
    assert port is not None

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    text = await asyncio.to_thread(scrape)
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("radguard_gateway_") and not line.startswith("#")
    }
    assert values["radguard_gateway_events_published"] == gateway.sink.published >= 3
    assert values["radguard_gateway_spool_full"] == 0.0
    assert values["radguard_gateway_spool_pending_bytes"] == 0.0
    assert "radguard_grpc_server_handled_total{" in text and "Predict" in text
