"""radguard.feedback.v1.Feedback: protobuf ↔ domain translation over the reads handler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import grpc

from radguard.common.v1 import common_pb2
from radguard.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from services.feedback import validation
from services.feedback.adapters.wire import (
    LABEL_TO_WIRE,
    LABELS,
    OUTCOME_TO_WIRE,
    OUTCOMES,
    finding_message,
    timestamp,
)
from services.feedback.attribution import ReadAttribution
from services.feedback.domain import BoundingBox, Finding, Read, RecordReadCommand
from services.feedback.handlers import ReadsHandler
from services.runtime.auth import current_caller
from services.runtime.errors import InvalidArgument
from services.runtime.server import RadguardServer

_T = TypeVar("_T")


def _enum(value: int, known: Mapping[Any, _T], unspecified: int, field: str) -> _T:
    if value == unspecified:
        raise InvalidArgument(field, "is required")
    if value not in known:
        raise InvalidArgument(field, f"unknown enum value {value}")
    return known[value]


def _finding(message: common_pb2.FindingDetail) -> Finding:
    location = None
    if message.HasField("location"):
        box = message.location
        location = BoundingBox(box.x_min, box.y_min, box.x_max, box.y_max)
    size = message.size_mm if message.HasField("size_mm") else None
    return validation.finding(message.category_code, location, size)


def record_command(request: feedback_pb2.RecordReadRequest) -> RecordReadCommand:
    """Translate and field-check a RecordReadRequest; raises InvalidArgument naming the first bad field."""
    key = validation.required_text(request.idempotency_key, "idempotency_key", validation.MAX_KEY_LENGTH)
    prediction = validation.prediction_ref(request.prediction_id)
    reader = validation.bounded_text(request.reader_pseudonym, "reader_pseudonym", validation.MAX_PSEUDONYM_LENGTH)
    outcome = _enum(request.outcome, OUTCOMES, common_pb2.OUTCOME_UNSPECIFIED, "outcome")
    label = _enum(request.ground_truth, LABELS, common_pb2.LABEL_UNSPECIFIED, "ground_truth")
    finding = _finding(request.finding) if request.HasField("finding") else None
    if not request.HasField("read_time"):
        raise InvalidArgument("read_time", "is required")
    read_time = validation.timestamp(request.read_time.seconds, request.read_time.nanos, "read_time")
    return RecordReadCommand(key, prediction, reader, outcome, label, finding, read_time)


def read_message(read: Read) -> feedback_pb2.Read:
    """The protobuf form of a stored read."""
    message = feedback_pb2.Read(
        read_id=read.read_id,
        prediction_id=read.prediction_id,
        reader_pseudonym=read.reader_pseudonym,
        outcome=OUTCOME_TO_WIRE[read.outcome],
        ground_truth=LABEL_TO_WIRE[read.label],
        read_time=timestamp(read.read_time),
        recorded_at=timestamp(read.recorded_at),
        idempotency_key=read.idempotency_key,
    )
    if read.finding is not None:
        message.finding.CopyFrom(finding_message(read.finding))
    return message


class FeedbackServicer(feedback_pb2_grpc.FeedbackServicer):
    """Thin: translate, await the use case, translate back."""

    def __init__(self, handler: ReadsHandler, attribution: ReadAttribution) -> None:
        self.handler = handler
        self.attribution = attribution

    async def RecordRead(
        self, request: feedback_pb2.RecordReadRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> feedback_pb2.RecordReadResponse:
        command = self.attribution.command(current_caller(), record_command(request))
        result = await self.handler.record(command)
        message = read_message(result.read)
        message.idempotency_key = request.idempotency_key  # the caller's own key, not its stored pseudonym
        return feedback_pb2.RecordReadResponse(read=message, created=result.created)

    async def GetRead(
        self, request: feedback_pb2.GetReadRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> feedback_pb2.Read:
        which = request.WhichOneof("key")
        if which == "read_id":
            # Only the key's pseudonym is stored, so a lookup by id answers with that.
            return read_message(await self.handler.get(read_id=validation.read_id(request.read_id)))
        if which == "idempotency_key":
            key = validation.required_text(request.idempotency_key, "idempotency_key", validation.MAX_KEY_LENGTH)
            message = read_message(await self.handler.get(idempotency_key=self.attribution.key(current_caller(), key)))
            message.idempotency_key = key
            return message
        raise InvalidArgument("key", "set read_id or idempotency_key")


def register(server: RadguardServer, servicer: FeedbackServicer) -> None:
    """Add the Feedback service to ``server`` (health and reflection included)."""
    server.add_service(
        feedback_pb2.DESCRIPTOR.services_by_name["Feedback"],
        lambda s: feedback_pb2_grpc.add_FeedbackServicer_to_server(servicer, s),
    )
