"""The ReadEvent payload of a stored read (radguard.events.v1 on the reviews topic)."""

from __future__ import annotations

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.feedback.adapters.wire import LABEL_TO_WIRE, OUTCOME_TO_WIRE, finding_message, timestamp
from services.feedback.domain import Read

SCHEMA_VERSION = 1


def read_event(
    read: Read, producer: str, trace_ids: tuple[str, str] = ("", ""), request_id: str = ""
) -> events_pb2.ReadEvent:
    """The event announcing ``read``; its event id is the read id, so consumers deduplicate on it.

    Args:
        read: The stored read.
        producer: ``"feedback/<instance>"``.
        trace_ids: W3C trace and span id of the recording call, empty when untraced.
        request_id: Request id of the recording call.
    """
    event = events_pb2.ReadEvent(
        meta=common_pb2.EventMeta(
            schema_version=SCHEMA_VERSION,
            event_id=read.read_id,
            event_time=timestamp(read.recorded_at),
            producer=producer,
            trace_id=trace_ids[0],
            span_id=trace_ids[1],
            request_id=request_id,
        ),
        read_id=read.read_id,
        prediction_id=read.prediction_id,
        reader_pseudonym=read.reader_pseudonym,
        outcome=OUTCOME_TO_WIRE[read.outcome],
        ground_truth=LABEL_TO_WIRE[read.label],
        read_time=timestamp(read.read_time),
        idempotency_key=read.idempotency_key,
    )
    if read.finding is not None:
        event.finding.CopyFrom(finding_message(read.finding))
    return event
