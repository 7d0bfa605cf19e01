"""What the ledger stores: prediction and read records, rejected records, and a consumed batch of them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.runtime.kafka import TopicPartition


class Arm(StrEnum):
    """Route a prediction took."""

    UNSPECIFIED = "unspecified"
    STABLE = "stable"
    CANARY = "canary"
    SHADOW = "shadow"


class Sex(StrEnum):
    """Patient sex as recorded."""

    UNSPECIFIED = "unspecified"
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class Outcome(StrEnum):
    """How a read relates to the model's decision."""

    UNSPECIFIED = "unspecified"
    AGREE = "agree"
    OVERRIDE = "override"
    CORRECT = "correct"


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a record was read from: topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    @property
    def topic_partition(self) -> TopicPartition:
        """The record's topic and partition."""
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction as the ledger keeps it (a decoded PredictionEvent).

    ``decision`` is 1 (positive), 0 (negative) or None (no decision). ``descriptors`` values that are
    not finite are kept as None.
    """

    prediction_id: uuid.UUID
    event_time: datetime
    model_name: str
    model_version: str
    arm: Arm
    study_uid: str
    series_uid: str
    accession: str
    patient_pseudonym: str
    sex: Sex
    age_years: int | None
    age_band: str
    site_id: str
    modality: str
    body_part: str
    manufacturer: str
    manufacturer_model: str
    protocol_name: str
    view_position: str
    pixel_spacing_row_mm: float
    pixel_spacing_col_mm: float
    raw_score: float
    probability: float
    decision: int | None
    threshold: float
    descriptors: dict[str, float | None]
    embedding: tuple[float, ...]
    latency_ms: float
    route_revision: int
    request_id: str
    served_prediction_id: uuid.UUID | None
    producer: str
    trace_id: str
    source: SourcePosition


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One radiologist read as the ledger keeps it (a decoded ReadEvent).

    ``label`` is 1 (positive), 0 (negative) or None (not reported). ``finding_box`` is
    (x_min, y_min, x_max, y_max) when the reader localised the finding.
    """

    read_id: uuid.UUID
    prediction_id: uuid.UUID
    event_time: datetime
    read_time: datetime
    reader_pseudonym: str
    outcome: Outcome
    label: int | None
    finding_category: str
    finding_box: tuple[float, float, float, float] | None
    finding_size_mm: float | None
    idempotency_key: str
    producer: str
    trace_id: str
    source: SourcePosition


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record that cannot become a ledger row; kept with the reason, never silently dropped."""

    source: SourcePosition
    reason: str
    payload: bytes | None


@dataclass
class LedgerBatch:
    """What one poll brought: decoded rows, rejects, and how far each partition was consumed.

    Attributes:
        predictions: Decoded predictions.
        reads: Decoded reads.
        rejects: Records that could not be decoded.
        next_offsets: Per partition, the offset after the last record in the batch.
        consumed: Per partition, how many records the batch holds.
    """

    predictions: list[PredictionRecord] = field(default_factory=list)
    reads: list[ReadRecord] = field(default_factory=list)
    rejects: list[RejectedRecord] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    consumed: dict[TopicPartition, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(self.consumed.values())

    def add_position(self, source: SourcePosition) -> None:
        """Account for one consumed record (whatever became of it)."""
        partition = source.topic_partition
        self.consumed[partition] = self.consumed.get(partition, 0) + 1
        self.next_offsets[partition] = max(self.next_offsets.get(partition, 0), source.offset + 1)

    def singles(self) -> list[LedgerBatch]:
        """The batch as one batch per record, in offset order within each partition.

        Used to isolate a record the database refuses: each single batch carries its own offset, so
        writing them one after the other advances the stored offsets exactly as the whole batch would.
        """
        items: list[PredictionRecord | ReadRecord | RejectedRecord] = [*self.predictions, *self.reads, *self.rejects]
        items.sort(key=lambda item: (item.source.topic, item.source.partition, item.source.offset))
        batches: list[LedgerBatch] = []
        for item in items:
            single = LedgerBatch()
            if isinstance(item, PredictionRecord):
                single.predictions.append(item)
            elif isinstance(item, ReadRecord):
                single.reads.append(item)
            else:
                single.rejects.append(item)
            single.add_position(item.source)
            batches.append(single)
        return batches


@dataclass(frozen=True)
class WriteResult:
    """What one committed batch changed.

    Attributes:
        predictions_inserted: New prediction rows.
        reads_inserted: New read rows.
        duplicates: Records whose id was already in the ledger (replays, republished events).
        rejected: Records stored as rejects.
    """

    predictions_inserted: int = 0
    reads_inserted: int = 0
    duplicates: int = 0
    rejected: int = 0


class BatchRefused(Exception):
    """The database refused the batch's content (not an outage): retrying it unchanged cannot succeed."""
