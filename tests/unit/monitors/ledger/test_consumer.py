"""Decoding consumed records into ledger rows; whatever cannot be stored becomes a reject with a reason."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

from radguard.common.v1 import common_pb2
from services.monitors.ledger.consumer import LedgerDecoder
from services.monitors.ledger.domain import Arm, Outcome, Sex, SourcePosition
from services.runtime.kafka import TopicPartition
from tests.unit.monitors.ledger.events import PREDICTIONS, READS, T0, prediction_event, read_event, record

DECODER = LedgerDecoder(PREDICTIONS, READS)


def test_a_prediction_event_becomes_a_row_with_every_field() -> None:
    event = prediction_event()
    batch = DECODER.decode([record(PREDICTIONS, 2, 40, event.SerializeToString())])
    (row,) = batch.predictions
    assert row.prediction_id == uuid.UUID(event.prediction_id)
    assert row.event_time == T0
    assert (row.model_name, row.model_version, row.arm) == ("chest_nodule", "3", Arm.CANARY)
    assert (row.study_uid, row.series_uid, row.accession) == ("2.25.1", "2.25.2", "A1")
    assert (row.sex, row.age_years, row.age_band) == (Sex.FEMALE, 71, "70+")
    assert (row.site_id, row.manufacturer, row.manufacturer_model) == ("site-A", "SimRay Medical", "SR-400 DR")
    assert (row.modality, row.body_part, row.protocol_name, row.view_position) == ("DX", "CHEST", "CHEST PA", "PA")
    assert (row.pixel_spacing_row_mm, row.pixel_spacing_col_mm) == (0.5, 0.6)
    assert (row.raw_score, row.probability, row.decision, row.threshold) == (1.25, 0.78, 1, 0.5)
    assert row.descriptors == {"intensity.mean": 0.42, "intensity.p95": 0.9}
    assert row.embedding == (0.25, -0.5)
    assert (row.latency_ms, row.route_revision, row.request_id) == (12.5, 4, "req-1")
    assert row.served_prediction_id is None
    assert (row.producer, row.trace_id) == ("gateway/gw-0", "ab" * 16)
    assert row.source == SourcePosition(PREDICTIONS, 2, 40)
    assert batch.next_offsets == {TopicPartition(PREDICTIONS, 2): 41}
    assert batch.consumed == {TopicPartition(PREDICTIONS, 2): 1}
    assert batch.rejects == []


def test_absent_age_unknown_enums_and_non_finite_descriptors_are_kept_as_unknown() -> None:
    event = prediction_event(arm=7, decision=common_pb2.DECISION_UNSPECIFIED, served_prediction_id=str(uuid.uuid4()))
    event.patient_context.ClearField("age_years")
    event.patient_context.sex = 9
    event.descriptors["intensity.skew"] = math.nan
    (row,) = DECODER.decode([record(PREDICTIONS, 0, 0, event.SerializeToString())]).predictions
    assert row.age_years is None
    assert row.arm is Arm.UNSPECIFIED
    assert row.sex is Sex.UNSPECIFIED
    assert row.decision is None
    assert row.descriptors["intensity.skew"] is None
    assert row.served_prediction_id == uuid.UUID(event.served_prediction_id)


def test_a_read_event_becomes_a_row() -> None:
    prediction_id = str(uuid.uuid4())
    event = read_event(prediction_id)
    (row,) = DECODER.decode([record(READS, 1, 7, event.SerializeToString())]).reads
    assert row.read_id == uuid.UUID(event.read_id)
    assert row.prediction_id == uuid.UUID(prediction_id)
    assert (row.outcome, row.label, row.reader_pseudonym) == (Outcome.CORRECT, 1, "rdr-1")
    assert row.finding_category == "NODULE"
    assert row.finding_box == (0.1, 0.2, 0.3, 0.4)
    assert row.finding_size_mm is None
    assert row.read_time == datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
    assert row.event_time == T0
    assert row.idempotency_key == "ris-1"


def test_a_read_without_finding_or_label_keeps_them_empty() -> None:
    event = read_event(str(uuid.uuid4()), ground_truth=common_pb2.LABEL_UNSPECIFIED)
    event.ClearField("finding")
    (row,) = DECODER.decode([record(READS, 0, 0, event.SerializeToString())]).reads
    assert (row.label, row.finding_category, row.finding_box, row.finding_size_mm) == (None, "", None, None)


def test_unstorable_records_become_rejects_and_still_advance_the_offsets() -> None:
    no_id = prediction_event()
    no_id.prediction_id = ""
    bad_id = prediction_event()
    bad_id.prediction_id = "pred-1"
    nul = prediction_event()
    nul.acquisition.site_id = "site\x00A"
    no_time = prediction_event()
    no_time.meta.ClearField("event_time")
    no_model = prediction_event()
    no_model.model.model_version = ""
    read_bad_prediction = read_event("nope")
    records = [
        record(PREDICTIONS, 0, 10, b"\xff\xff not protobuf"),
        record(PREDICTIONS, 0, 11, None),
        record(PREDICTIONS, 0, 12, no_id.SerializeToString()),
        record(PREDICTIONS, 0, 13, bad_id.SerializeToString()),
        record(PREDICTIONS, 0, 14, nul.SerializeToString()),
        record(PREDICTIONS, 0, 15, no_time.SerializeToString()),
        record(PREDICTIONS, 0, 16, no_model.SerializeToString()),
        record(READS, 3, 5, read_bad_prediction.SerializeToString()),
        record("somewhere.else", 0, 1, b""),
    ]
    batch = DECODER.decode(records)
    assert batch.predictions == [] and batch.reads == []
    assert [(r.source.offset, r.reason) for r in batch.rejects] == [
        (10, "not a PredictionEvent"),
        (11, "empty value (tombstone)"),
        (12, "prediction_id is empty"),
        (13, "prediction_id is not a UUID"),
        (14, "a text field contains a NUL character"),
        (15, "meta.event_time is missing"),
        (16, "model name or version is empty"),
        (5, "prediction_id is not a UUID"),
        (1, "unexpected topic 'somewhere.else'"),
    ]
    assert batch.rejects[0].payload == b"\xff\xff not protobuf"
    assert batch.next_offsets == {
        TopicPartition(PREDICTIONS, 0): 17,
        TopicPartition(READS, 3): 6,
        TopicPartition("somewhere.else", 0): 2,
    }
    assert len(batch) == 9


def test_singles_split_a_batch_in_offset_order_with_one_offset_each() -> None:
    first, second = prediction_event(), prediction_event()
    read = read_event(first.prediction_id)
    batch = DECODER.decode(
        [
            record(READS, 0, 3, read.SerializeToString()),
            record(PREDICTIONS, 1, 8, second.SerializeToString()),
            record(PREDICTIONS, 1, 7, first.SerializeToString()),
            record(PREDICTIONS, 1, 9, b"junk\xff"),
        ]
    )
    singles = batch.singles()
    assert [(len(s.predictions), len(s.reads), len(s.rejects)) for s in singles] == [
        (1, 0, 0),
        (1, 0, 0),
        (0, 0, 1),
        (0, 1, 0),
    ]
    assert [s.next_offsets for s in singles] == [
        {TopicPartition(PREDICTIONS, 1): 8},
        {TopicPartition(PREDICTIONS, 1): 9},
        {TopicPartition(PREDICTIONS, 1): 10},
        {TopicPartition(READS, 0): 4},
    ]
    assert singles[0].predictions[0].prediction_id == uuid.UUID(first.prediction_id)
