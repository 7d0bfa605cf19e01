"""Builders of PredictionEvent / ReadEvent payloads and consumed records for the ledger's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.runtime.ids import uuid7
from services.runtime.kafka import ConsumedRecord

PREDICTIONS = "test.predictions"
READS = "test.reads"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def prediction_event(prediction_id: str | None = None, **overrides: object) -> events_pb2.PredictionEvent:
    prediction_id = prediction_id or uuid7()
    event = events_pb2.PredictionEvent(
        meta=common_pb2.EventMeta(
            schema_version=1, event_id=prediction_id, event_time=stamp(T0), producer="gateway/gw-0", trace_id="ab" * 16
        ),
        prediction_id=prediction_id,
        model=common_pb2.ModelRef(model_name="chest_nodule", model_version="3"),
        arm=common_pb2.ARM_CANARY,
        study=common_pb2.StudyRef(study_instance_uid="2.25.1", series_instance_uid="2.25.2", accession_number="A1"),
        patient_pseudonym="9f" * 16,
        patient_context=common_pb2.PatientContext(sex=common_pb2.SEX_FEMALE, age_years=71),
        age_band="70+",
        acquisition=common_pb2.AcquisitionContext(
            site_id="site-A",
            modality="DX",
            body_part="CHEST",
            manufacturer="SimRay Medical",
            manufacturer_model="SR-400 DR",
            protocol_name="CHEST PA",
            pixel_spacing_mm=common_pb2.PixelSpacing(row_mm=0.5, col_mm=0.6),
            view_position="PA",
        ),
        raw_score=1.25,
        probability=0.78,
        decision=common_pb2.DECISION_POSITIVE,
        threshold=0.5,
        descriptors={"intensity.mean": 0.42, "intensity.p95": 0.9},
        embedding=[0.25, -0.5],
        latency_ms=12.5,
        route_revision=4,
        request_id="req-1",
    )
    for name, value in overrides.items():
        setattr(event, name, value)
    return event


def read_event(prediction_id: str, read_id: str | None = None, **overrides: object) -> events_pb2.ReadEvent:
    read_id = read_id or uuid7()
    event = events_pb2.ReadEvent(
        meta=common_pb2.EventMeta(schema_version=1, event_id=read_id, event_time=stamp(T0), producer="feedback/fb-0"),
        read_id=read_id,
        prediction_id=prediction_id,
        reader_pseudonym="rdr-1",
        outcome=common_pb2.OUTCOME_CORRECT,
        ground_truth=common_pb2.LABEL_POSITIVE,
        finding=common_pb2.FindingDetail(
            category_code="NODULE", location=common_pb2.BoundingBox(x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.4)
        ),
        read_time=stamp(datetime(2025, 3, 1, 11, 0, tzinfo=UTC)),
        idempotency_key="ris-1",
    )
    for name, value in overrides.items():
        setattr(event, name, value)
    return event


def record(topic: str, partition: int, offset: int, value: bytes | None) -> ConsumedRecord:
    return ConsumedRecord(topic=topic, partition=partition, offset=offset, key=None, value=value)
