"""Decoding consumed Kafka records (PredictionEvent, ReadEvent) into ledger records.

Anything that cannot become a row — an undecodable payload, a missing or malformed id, text PostgreSQL
cannot store — becomes a :class:`RejectedRecord` with the reason, so a bad record neither blocks its
partition nor disappears.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.monitors.ledger.domain import (
    Arm,
    LedgerBatch,
    Outcome,
    PredictionRecord,
    ReadRecord,
    RejectedRecord,
    Sex,
    SourcePosition,
)
from services.runtime.kafka import ConsumedRecord

_ARMS = {
    common_pb2.ARM_STABLE: Arm.STABLE,
    common_pb2.ARM_CANARY: Arm.CANARY,
    common_pb2.ARM_SHADOW: Arm.SHADOW,
}
_SEXES = {common_pb2.SEX_FEMALE: Sex.FEMALE, common_pb2.SEX_MALE: Sex.MALE, common_pb2.SEX_OTHER: Sex.OTHER}
_OUTCOMES = {
    common_pb2.OUTCOME_AGREE: Outcome.AGREE,
    common_pb2.OUTCOME_OVERRIDE: Outcome.OVERRIDE,
    common_pb2.OUTCOME_CORRECT: Outcome.CORRECT,
}
_DECISIONS = {common_pb2.DECISION_NEGATIVE: 0, common_pb2.DECISION_POSITIVE: 1}
_LABELS = {common_pb2.LABEL_NEGATIVE: 0, common_pb2.LABEL_POSITIVE: 1}

# The range both datetime and a protobuf Timestamp can hold; PostgreSQL's timestamptz holds more.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Unstorable(ValueError):
    """A record that cannot become a ledger row; the message is the reason."""


def _uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise Unstorable(f"{field} is empty")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Unstorable(f"{field} is not a UUID") from None


def _time(stamp: Timestamp, field: str) -> datetime:
    if stamp.seconds == 0 and stamp.nanos == 0:
        raise Unstorable(f"{field} is missing")
    if not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS or not 0 <= stamp.nanos < 1_000_000_000:
        raise Unstorable(f"{field} is out of range")
    # Arithmetic on a constant is several times cheaper than Timestamp.ToDatetime, on the hot path.
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def _text(*values: str) -> None:
    # PostgreSQL text cannot hold NUL; protobuf strings can.
    for value in values:
        if "\x00" in value:
            raise Unstorable("a text field contains a NUL character")


def _descriptors(values: Mapping[str, float]) -> dict[str, float | None]:
    plain: dict[str, float | None] = dict(values)
    # JSON has no NaN or infinity: such values are kept as null (rare, so checked in one pass first).
    if not all(map(math.isfinite, values.values())):
        plain = {name: (value if math.isfinite(value) else None) for name, value in values.items()}
    return plain


def decode_prediction(value: bytes, source: SourcePosition) -> PredictionRecord:
    """Decode one PredictionEvent.

    Raises:
        Unstorable: With the reason.
    """
    try:
        event = events_pb2.PredictionEvent.FromString(value)
    except DecodeError:
        raise Unstorable("not a PredictionEvent") from None
    prediction_id = _uuid(event.prediction_id, "prediction_id")
    if not event.model.model_name or not event.model.model_version:
        raise Unstorable("model name or version is empty")
    served = _uuid(event.served_prediction_id, "served_prediction_id") if event.served_prediction_id else None
    study, acquisition = event.study, event.acquisition
    _text(
        event.model.model_name,
        event.model.model_version,
        study.study_instance_uid,
        study.series_instance_uid,
        study.accession_number,
        event.patient_pseudonym,
        event.age_band,
        acquisition.site_id,
        acquisition.modality,
        acquisition.body_part,
        acquisition.manufacturer,
        acquisition.manufacturer_model,
        acquisition.protocol_name,
        acquisition.view_position,
        event.request_id,
        event.meta.producer,
        event.meta.trace_id,
        *event.descriptors.keys(),
    )
    context = event.patient_context
    return PredictionRecord(
        prediction_id=prediction_id,
        event_time=_time(event.meta.event_time, "meta.event_time"),
        model_name=event.model.model_name,
        model_version=event.model.model_version,
        arm=_ARMS.get(event.arm, Arm.UNSPECIFIED),
        study_uid=study.study_instance_uid,
        series_uid=study.series_instance_uid,
        accession=study.accession_number,
        patient_pseudonym=event.patient_pseudonym,
        sex=_SEXES.get(context.sex, Sex.UNSPECIFIED),
        age_years=context.age_years if context.HasField("age_years") else None,
        age_band=event.age_band,
        site_id=acquisition.site_id,
        modality=acquisition.modality,
        body_part=acquisition.body_part,
        manufacturer=acquisition.manufacturer,
        manufacturer_model=acquisition.manufacturer_model,
        protocol_name=acquisition.protocol_name,
        view_position=acquisition.view_position,
        pixel_spacing_row_mm=acquisition.pixel_spacing_mm.row_mm,
        pixel_spacing_col_mm=acquisition.pixel_spacing_mm.col_mm,
        raw_score=event.raw_score,
        probability=event.probability,
        decision=_DECISIONS.get(event.decision),
        threshold=event.threshold,
        descriptors=_descriptors(event.descriptors),
        embedding=tuple(event.embedding),
        latency_ms=event.latency_ms,
        route_revision=event.route_revision,
        request_id=event.request_id,
        served_prediction_id=served,
        producer=event.meta.producer,
        trace_id=event.meta.trace_id,
        source=source,
    )


def decode_read(value: bytes, source: SourcePosition) -> ReadRecord:
    """Decode one ReadEvent.

    Raises:
        Unstorable: With the reason.
    """
    try:
        event = events_pb2.ReadEvent.FromString(value)
    except DecodeError:
        raise Unstorable("not a ReadEvent") from None
    read_id = _uuid(event.read_id, "read_id")
    prediction_id = _uuid(event.prediction_id, "prediction_id")
    finding = event.finding
    _text(
        event.reader_pseudonym,
        finding.category_code,
        event.idempotency_key,
        event.meta.producer,
        event.meta.trace_id,
    )
    box = None
    if event.HasField("finding") and finding.HasField("location"):
        where = finding.location
        box = (where.x_min, where.y_min, where.x_max, where.y_max)
    size = finding.size_mm if event.HasField("finding") and finding.HasField("size_mm") else None
    return ReadRecord(
        read_id=read_id,
        prediction_id=prediction_id,
        event_time=_time(event.meta.event_time, "meta.event_time"),
        read_time=_time(event.read_time, "read_time"),
        reader_pseudonym=event.reader_pseudonym,
        outcome=_OUTCOMES.get(event.outcome, Outcome.UNSPECIFIED),
        label=_LABELS.get(event.ground_truth),
        finding_category=finding.category_code,
        finding_box=box,
        finding_size_mm=size,
        idempotency_key=event.idempotency_key,
        producer=event.meta.producer,
        trace_id=event.meta.trace_id,
        source=source,
    )


class LedgerDecoder:
    """Turns a poll's records into a :class:`LedgerBatch`, by topic."""

    def __init__(self, predictions_topic: str, reads_topic: str) -> None:
        """Create the decoder.

        Args:
            predictions_topic: Topic carrying PredictionEvents.
            reads_topic: Topic carrying ReadEvents.
        """
        self.predictions_topic = predictions_topic
        self.reads_topic = reads_topic

    def decode(self, records: Iterable[ConsumedRecord]) -> LedgerBatch:
        """Decode ``records``; every record ends up as a row or a reject, and counts towards the offsets."""
        batch = LedgerBatch()
        for record in records:
            source = SourcePosition(record.topic, record.partition, record.offset)
            batch.add_position(source)
            try:
                if record.value is None:
                    raise Unstorable("empty value (tombstone)")
                if record.topic == self.predictions_topic:
                    batch.predictions.append(decode_prediction(record.value, source))
                elif record.topic == self.reads_topic:
                    batch.reads.append(decode_read(record.value, source))
                else:
                    raise Unstorable(f"unexpected topic {record.topic!r}")
            except Unstorable as error:
                batch.rejects.append(RejectedRecord(source, str(error), record.value))
        return batch
