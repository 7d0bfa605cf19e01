"""The Feedback service on a real grpc.aio server (port 0) over in-memory ports.

Every bad input of the table gets INVALID_ARGUMENT with a message that names the field; retries with the
same key create one read; lookups and key reuse map to NOT_FOUND and ALREADY_EXISTS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from services.feedback.attribution import ReadAttribution
from services.feedback.domain import Label
from services.feedback.handlers import ReadsHandler
from services.feedback.servicer import FeedbackServicer, register
from services.runtime.auth import INSECURE_CALLER, InsecureDevInterceptor
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.ids import uuid7
from services.runtime.pseudonyms import Pseudonymiser
from services.runtime.server import RadguardServer
from tests.unit.feedback.fakes import InMemoryReadStore, KnownDecisions, StepClock

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PREDICTED_AT = NOW - timedelta(hours=3)
#: A prediction the ledger knows (decided negative) and one it has not seen yet.
KNOWN = uuid7(now_ms=int(PREDICTED_AT.timestamp() * 1000))
UNSEEN = uuid7(now_ms=int(PREDICTED_AT.timestamp() * 1000) + 1)
ATTRIBUTION = ReadAttribution(Pseudonymiser(b"contract-test-key-0123456789"))


@dataclass
class Running:
    stub: feedback_pb2_grpc.FeedbackStub
    store: InMemoryReadStore


@pytest_asyncio.fixture(loop_scope="session")
async def feedback() -> AsyncIterator[Running]:
    settings = load_settings(
        ServiceSettings,
        {
            "RADGUARD_GRPC_HOST": "127.0.0.1",
            "RADGUARD_GRPC_PORT": "0",
            "RADGUARD_METRICS_ENABLED": "false",
            "RADGUARD_DRAIN_GRACE_S": "0",
            "RADGUARD_LOG_LEVEL": "warning",
        },
    )
    store = InMemoryReadStore()
    handler = ReadsHandler(store, KnownDecisions({KNOWN: Label.NEGATIVE}), clock=StepClock(NOW))
    server = RadguardServer(settings, interceptors=[InsecureDevInterceptor()])
    register(server, FeedbackServicer(handler, ATTRIBUTION))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Running(feedback_pb2_grpc.FeedbackStub(channel), store)
    finally:
        await channel.close()
        await server.stop(0)


def _stamp(moment: datetime, nanos: int | None = None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    if nanos is not None:
        stamp.nanos = nanos
    return stamp


def valid_request(**overrides: object) -> feedback_pb2.RecordReadRequest:
    """An override of the negative decision on KNOWN, with a localised, measured nodule."""
    request = feedback_pb2.RecordReadRequest(
        idempotency_key="ris-4711",
        prediction_id=KNOWN,
        reader_pseudonym="rdr-93f1",
        outcome=common_pb2.OUTCOME_OVERRIDE,
        ground_truth=common_pb2.LABEL_POSITIVE,
        finding=common_pb2.FindingDetail(
            category_code="NODULE",
            location=common_pb2.BoundingBox(x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.4),
            size_mm=11.5,
        ),
        read_time=_stamp(NOW - timedelta(minutes=10), nanos=123_456_789),
    )
    for name, value in overrides.items():
        if value is None:
            request.ClearField(name)
        elif isinstance(value, Timestamp | common_pb2.FindingDetail):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


def _mutate(fn: Callable[[feedback_pb2.RecordReadRequest], None]) -> feedback_pb2.RecordReadRequest:
    request = valid_request()
    fn(request)
    return request


BAD_INPUTS: list[tuple[str, feedback_pb2.RecordReadRequest, str]] = [
    ("missing key", valid_request(idempotency_key=""), "idempotency_key: is required"),
    ("long key", valid_request(idempotency_key="k" * 129), "idempotency_key: is longer than 128 characters"),
    ("missing prediction id", valid_request(prediction_id=""), "prediction_id: is required"),
    (
        "malformed prediction id",
        valid_request(prediction_id="pred-12"),
        "prediction_id: must be a UUID in canonical text form (8-4-4-4-12 hex digits)",
    ),
    (
        "uuid4 prediction id",
        valid_request(prediction_id="6f1c2a8e-2b1d-4c3f-9a7e-1d2c3b4a5f60"),
        "prediction_id: must be a time-ordered UUID (version 7), got version 4",
    ),
    (
        "prediction id from the future",
        valid_request(prediction_id=uuid7(now_ms=int((NOW + timedelta(days=1)).timestamp() * 1000))),
        "prediction_id: carries a time in the future; it was not minted by radguard",
    ),
    ("reader with newline", valid_request(reader_pseudonym="a\nb"), "reader_pseudonym: contains control characters"),
    ("missing outcome", valid_request(outcome=common_pb2.OUTCOME_UNSPECIFIED), "outcome: is required"),
    ("unknown outcome", valid_request(outcome=9), "outcome: unknown enum value 9"),
    ("missing label", valid_request(ground_truth=common_pb2.LABEL_UNSPECIFIED), "ground_truth: is required"),
    ("unknown label", valid_request(ground_truth=5), "ground_truth: unknown enum value 5"),
    (
        "free-text category",
        _mutate(lambda r: setattr(r.finding, "category_code", "small nodule, pt. Smith")),
        "finding.category_code: must be a code (letters, digits and . _ : - only), not free text",
    ),
    (
        "box outside the image",
        _mutate(lambda r: setattr(r.finding.location, "x_max", 1.2)),
        "finding.location.x_max: must be within [0, 1], got 1.2",
    ),
    (
        "negative size",
        _mutate(lambda r: setattr(r.finding, "size_mm", -3.0)),
        "finding.size_mm: must be within (0, 1000] mm, got -3.0",
    ),
    ("missing read time", valid_request(read_time=None), "read_time: is required"),
    (
        "read time before the prediction",
        valid_request(read_time=_stamp(PREDICTED_AT - timedelta(seconds=1))),
        "read_time: is before the prediction was made (2025-03-01T08:59:59+00:00 < 2025-03-01T09:00:00+00:00)",
    ),
    (
        "read time in the future",
        valid_request(read_time=_stamp(NOW + timedelta(hours=1))),
        "read_time: is in the future (2025-03-01T13:00:00+00:00 > now 2025-03-01T12:00:00+00:00)",
    ),
    (
        "correct with a negative label",
        valid_request(outcome=common_pb2.OUTCOME_CORRECT, ground_truth=common_pb2.LABEL_NEGATIVE, finding=None),
        "outcome: correct amends a finding, so ground_truth must be positive",
    ),
    (
        "finding on a negative read",
        valid_request(ground_truth=common_pb2.LABEL_NEGATIVE, prediction_id=UNSEEN),
        "finding: must be absent when ground_truth is negative",
    ),
    (
        "correct without a finding",
        valid_request(outcome=common_pb2.OUTCOME_CORRECT, prediction_id=UNSEEN, finding=None),
        "finding: is required when outcome is correct (the amended finding)",
    ),
    (
        "agree with a label that contradicts the decision",
        valid_request(outcome=common_pb2.OUTCOME_AGREE),
        "outcome: agree needs ground_truth to equal the model's decision (negative); got positive: use override",
    ),
    (
        "override that agrees with the decision",
        valid_request(ground_truth=common_pb2.LABEL_NEGATIVE, finding=None),
        "outcome: override needs ground_truth to differ from the model's decision (negative); got negative: use agree",
    ),
]


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("request_", "message"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
async def test_each_bad_input_is_invalid_argument_naming_the_field(
    feedback: Running, request_: feedback_pb2.RecordReadRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await feedback.stub.RecordRead(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    assert feedback.store.events == []


@pytest.mark.asyncio(loop_scope="session")
async def test_a_retried_read_is_created_once(feedback: Running) -> None:
    request = valid_request(idempotency_key="retry-1")
    first = await feedback.stub.RecordRead(request)
    again = await feedback.stub.RecordRead(request)
    assert (first.created, again.created) == (True, False)
    assert again.read == first.read
    stored_key = ATTRIBUTION.key(INSECURE_CALLER, "retry-1")
    assert len([e for e in feedback.store.events if e.idempotency_key == stored_key]) == 1
    assert not [e for e in feedback.store.events if e.idempotency_key == "retry-1"]
    read = first.read
    assert read.prediction_id == KNOWN
    assert read.outcome == common_pb2.OUTCOME_OVERRIDE
    assert read.ground_truth == common_pb2.LABEL_POSITIVE
    assert read.finding.size_mm == 11.5
    assert read.finding.location.y_max == pytest.approx(0.4)
    # Nanoseconds are kept to the microsecond, as stored.
    assert read.read_time.nanos == 123_456_000
    assert read.recorded_at.ToDatetime(tzinfo=UTC) == NOW


@pytest.mark.asyncio(loop_scope="session")
async def test_a_reused_key_with_other_content_is_already_exists(feedback: Running) -> None:
    await feedback.stub.RecordRead(valid_request(idempotency_key="reuse-1"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await feedback.stub.RecordRead(valid_request(idempotency_key="reuse-1", reader_pseudonym="rdr-other"))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.details() == "a different read with this idempotency_key already exists"


@pytest.mark.asyncio(loop_scope="session")
async def test_a_read_of_an_unseen_prediction_is_accepted(feedback: Running) -> None:
    response = await feedback.stub.RecordRead(
        valid_request(idempotency_key="orphan-1", prediction_id=UNSEEN, outcome=common_pb2.OUTCOME_AGREE)
    )
    assert response.created is True
    assert response.read.prediction_id == UNSEEN


@pytest.mark.asyncio(loop_scope="session")
async def test_get_read_by_id_by_key_and_missing(feedback: Running) -> None:
    stored = (await feedback.stub.RecordRead(valid_request(idempotency_key="get-1"))).read
    by_id = await feedback.stub.GetRead(feedback_pb2.GetReadRequest(read_id=stored.read_id))
    by_key = await feedback.stub.GetRead(feedback_pb2.GetReadRequest(idempotency_key="get-1"))
    assert by_key == stored
    # Only the pseudonym of the key is kept: a lookup by id cannot give the caller's own key back.
    assert by_id.idempotency_key == ATTRIBUTION.key(INSECURE_CALLER, "get-1")
    by_id.idempotency_key = stored.idempotency_key
    assert by_id == stored
    cases = [
        (feedback_pb2.GetReadRequest(), grpc.StatusCode.INVALID_ARGUMENT, "key: set read_id or idempotency_key"),
        (
            feedback_pb2.GetReadRequest(read_id="r-1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "read_id: must be a UUID in canonical text form (8-4-4-4-12 hex digits)",
        ),
        (
            feedback_pb2.GetReadRequest(idempotency_key="never-used"),
            grpc.StatusCode.NOT_FOUND,
            "read with this idempotency_key not found",
        ),
    ]
    missing = uuid7()
    cases.append(
        (feedback_pb2.GetReadRequest(read_id=missing), grpc.StatusCode.NOT_FOUND, f"read '{missing}' not found")
    )
    for request, code, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await feedback.stub.GetRead(request)
        assert (caught.value.code(), caught.value.details()) == (code, message)
