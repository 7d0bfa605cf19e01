"""Value checks on the radguard contracts: shapes other code relies on, checked through the descriptors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.feedback.v1 import feedback_pb2
from radguard.governance.v1 import governance_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from radguard.monitoring.v1 import monitoring_pb2

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
FILES: tuple[FileDescriptor, ...] = (
    common_pb2.DESCRIPTOR,
    inference_pb2.DESCRIPTOR,
    feedback_pb2.DESCRIPTOR,
    governance_pb2.DESCRIPTOR,
    events_pb2.DESCRIPTOR,
    monitoring_pb2.DESCRIPTOR,
)

# Kafka topic -> payload message. Must stay in step with the topic table in events.proto.
TOPIC_PAYLOADS: dict[str, type[Message]] = {
    "radguard.predictions.v1": events_pb2.PredictionEvent,
    "radguard.reviews.v1": events_pb2.ReadEvent,
    "radguard.findings.v1": events_pb2.Finding,
    "radguard.routes.v1": events_pb2.RouteTableEvent,
    "radguard.audit.v1": events_pb2.AuditEvent,
}

# service -> method -> (client streams, server streams)
SERVICES = {
    "radguard.inference.v1.InferenceGateway": {
        "Predict": (False, False),
        "PredictStream": (True, True),
        "GetRoute": (False, False),
    },
    "radguard.feedback.v1.Feedback": {"RecordRead": (False, False), "GetRead": (False, False)},
    "radguard.governance.v1.Governance": {
        **{
            name: (False, False)
            for name in (
                "RegisterVersion",
                "GetVersion",
                "ListVersions",
                "RequestTransition",
                "Approve",
                "ProposeReference",
                "GetReferenceRenewal",
                "ListReferenceRenewals",
                "RejectReferenceRenewal",
                "StartRollout",
                "PauseRollout",
                "ResumeRollout",
                "AbortRollout",
                "PromoteRollout",
                "Rollback",
                "GetRollout",
                "QueryAudit",
                "VerifyAudit",
                "QueryFindings",
                "ListTransitions",
                "WhoAmI",
            )
        },
        "WatchRoutes": (False, True),
    },
    "radguard.monitoring.v1.MonitoringQuery": {
        name: (False, False)
        for name in ("QueryFindings", "GetMetricSeries", "GetReliabilityDiagram", "GetWindowReport")
    },
}


def _messages(container: FileDescriptor | Descriptor) -> Iterator[Descriptor]:
    if isinstance(container, FileDescriptor):
        nested = container.message_types_by_name
    else:
        nested = container.nested_types_by_name
    for message in nested.values():
        if message.GetOptions().map_entry:
            continue
        yield message
        yield from _messages(message)


def _enums() -> Iterator[EnumDescriptor]:
    for file in FILES:
        yield from file.enum_types_by_name.values()
        for message in _messages(file):
            yield from message.enum_types


def _reachable(message: Descriptor, seen: set[str] | None = None) -> set[str]:
    """Full names of every message type a message can contain, at any depth."""
    seen = set() if seen is None else seen
    for field in message.fields:
        child = field.message_type
        if child is not None and child.full_name not in seen:
            seen.add(child.full_name)
            _reachable(child, seen)
    return seen


def _timestamp(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def test_prediction_event_round_trips_with_descriptors_and_timestamps() -> None:
    event = events_pb2.PredictionEvent(
        meta=common_pb2.EventMeta(
            schema_version=1,
            event_id="01890a5d-ac96-774b-bcce-b302099a8057",
            event_time=_timestamp(1_735_689_600, 123_000_000),
            producer="gateway/gw-0",
        ),
        prediction_id="01890a5d-ac96-774b-bcce-b302099a8058",
        model=common_pb2.ModelRef(model_name="chest-nodule", model_version="3"),
        arm=common_pb2.ARM_CANARY,
        study=common_pb2.StudyRef(study_instance_uid="2.25.1234"),
        patient_pseudonym="9f86d081884c7d65",
        patient_context=common_pb2.PatientContext(sex=common_pb2.SEX_FEMALE, age_years=0),
        age_band="0-17",
        raw_score=-1.25,
        probability=0.2227,
        decision=common_pb2.DECISION_NEGATIVE,
        threshold=0.4,
        descriptors={"intensity.mean": 0.4375, "intensity.p95": 0.875},
        embedding=[0.5, -0.25, 0.125],
        route_revision=7,
    )

    decoded = events_pb2.PredictionEvent.FromString(event.SerializeToString())

    assert decoded == event
    assert dict(decoded.descriptors) == {"intensity.mean": 0.4375, "intensity.p95": 0.875}
    assert list(decoded.embedding) == [0.5, -0.25, 0.125]
    assert decoded.meta.event_time.ToMilliseconds() == 1_735_689_600_123
    assert decoded.arm == common_pb2.ARM_CANARY
    # Age 0 (a newborn) must survive as a present value, distinct from "unknown".
    assert decoded.patient_context.HasField("age_years")
    assert decoded.patient_context.age_years == 0
    assert not common_pb2.PatientContext().HasField("age_years")


@pytest.mark.parametrize("topic", sorted(TOPIC_PAYLOADS))
def test_every_topic_payload_starts_with_event_meta(topic: str) -> None:
    meta = TOPIC_PAYLOADS[topic].DESCRIPTOR.fields_by_number[1]
    assert meta.name == "meta"
    assert meta.message_type is not None
    assert meta.message_type.full_name == "radguard.common.v1.EventMeta"


def test_the_topic_table_names_every_payload_and_topic() -> None:
    with_meta = {message.full_name for message in _messages(events_pb2.DESCRIPTOR) if "meta" in message.fields_by_name}
    assert with_meta == {payload.DESCRIPTOR.full_name for payload in TOPIC_PAYLOADS.values()}
    source = (PROTO_ROOT / "radguard/events/v1/events.proto").read_text()
    documented = dict(re.findall(r"^//\s+(radguard\.\w+\.v1)\s+(\w+)\s+key = ", source, flags=re.MULTILINE))
    assert documented == {topic: payload.DESCRIPTOR.name for topic, payload in TOPIC_PAYLOADS.items()}


def test_enum_zero_values_are_unspecified_and_values_carry_the_enum_prefix() -> None:
    enums = list(_enums())
    assert len(enums) >= 14  # guards the walk itself: it must find every enum declared today
    for enum in enums:
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper()
        assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED", enum.full_name
        assert all(value.name.startswith(prefix + "_") for value in enum.values), enum.full_name


def test_services_have_exactly_the_expected_methods_and_streaming_kinds() -> None:
    found = {
        service.full_name: {
            method.name: (method.client_streaming, method.server_streaming) for method in service.methods
        }
        for file in FILES
        for service in file.services_by_name.values()
    }
    assert found == SERVICES


def test_raw_patient_identity_is_reachable_only_from_the_gateway_request() -> None:
    holders = {
        message.full_name
        for file in FILES
        for message in _messages(file)
        if "radguard.common.v1.PatientRef" in _reachable(message)
    }
    assert holders == {"radguard.inference.v1.PredictRequest"}
    assert "patient_pseudonym" in events_pb2.PredictionEvent.DESCRIPTOR.fields_by_name


def test_predict_request_takes_exactly_one_image_form() -> None:
    request = inference_pb2.PredictRequest(tensor=common_pb2.Tensor(shape=[1, 4, 4], dtype=common_pb2.DATA_TYPE_UINT16))
    assert request.WhichOneof("image") == "tensor"
    request.dicom.data = b"DICM"
    assert request.WhichOneof("image") == "dicom"
    assert not request.HasField("tensor")


def test_route_table_weight_is_integer_basis_points() -> None:
    weight = common_pb2.RouteTable.DESCRIPTOR.fields_by_name["canary_weight_bp"]
    assert weight.type == weight.TYPE_UINT32
    table = common_pb2.RouteTable(model_name="chest-nodule", stable_version="2", canary_version="3")
    table.canary_weight_bp = 2_500
    table.shadow_versions.append("4")
    assert common_pb2.RouteTable.FromString(table.SerializeToString()).canary_weight_bp == 2_500


def test_every_declaration_in_the_sources_has_a_comment() -> None:
    declaration = re.compile(
        r"^\s*(message|enum|service|oneof|rpc)\s|^\s*(optional\s+|repeated\s+)?[\w.<>, ]+\s+\w+\s*=\s*\d+;"
    )
    undocumented = []
    for source in sorted(PROTO_ROOT.rglob("*.proto")):
        previous = ""
        for number, line in enumerate(source.read_text().splitlines(), start=1):
            if line.strip() and declaration.match(line) and not previous.startswith("//"):
                undocumented.append(f"{source.relative_to(PROTO_ROOT)}:{number}: {line.strip()}")
            if line.strip():
                previous = line.strip()
    assert undocumented == []


class _EchoGateway(inference_pb2_grpc.InferenceGatewayServicer):
    """Answers from the request alone, enough to prove the generated service code works over the wire."""

    async def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> inference_pb2.PredictResponse:
        return inference_pb2.PredictResponse(
            request_id=request.request_id,
            study=request.study,
            model=common_pb2.ModelRef(model_name=request.model_name, model_version="1"),
            decision=common_pb2.DECISION_POSITIVE,
        )

    async def PredictStream(
        self,
        request_iterator: AsyncIterator[inference_pb2.PredictRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[inference_pb2.PredictResponse]:
        async for request in request_iterator:
            yield inference_pb2.PredictResponse(request_id=request.request_id)


@pytest.mark.asyncio
async def test_generated_service_code_serves_unary_and_bidirectional_calls() -> None:
    server = grpc.aio.server()
    # grpcio-tools emits no type information for the service modules.
    inference_pb2_grpc.add_InferenceGatewayServicer_to_server(_EchoGateway(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = inference_pb2_grpc.InferenceGatewayStub(channel)  # type: ignore[no-untyped-call]
            answer = await stub.Predict(
                inference_pb2.PredictRequest(
                    model_name="chest-nodule",
                    request_id="req-1",
                    study=common_pb2.StudyRef(study_instance_uid="2.25.42"),
                ),
                timeout=5,
            )
            streamed = [
                response.request_id
                async for response in stub.PredictStream(
                    iter([inference_pb2.PredictRequest(request_id=f"req-{n}") for n in range(3)]), timeout=5
                )
            ]
            with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
                await stub.GetRoute(inference_pb2.GetRouteRequest(model_name="chest-nodule"), timeout=5)
    finally:
        await server.stop(None)

    assert answer.request_id == "req-1"
    assert answer.study.study_instance_uid == "2.25.42"
    assert answer.model.model_name == "chest-nodule"
    assert answer.decision == common_pb2.DECISION_POSITIVE
    assert streamed == ["req-0", "req-1", "req-2"]
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
