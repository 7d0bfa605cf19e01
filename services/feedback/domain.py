"""The feedback service's domain: what a read is, the command that records one, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum


class Outcome(Enum):
    """How the reader's final read relates to the model's decision."""

    AGREE = "agree"
    """The reader's label equals the model's decision."""
    OVERRIDE = "override"
    """The reader's label differs from the model's decision."""
    CORRECT = "correct"
    """Same positive label as the model, but the reader amended the finding."""


class Label(IntEnum):
    """A binary label; also used for the model's decision, so the two compare directly."""

    NEGATIVE = 0
    POSITIVE = 1

    @property
    def word(self) -> str:
        """Lowercase name for messages, e.g. ``"positive"``."""
        return self.name.lower()


@dataclass(frozen=True)
class BoundingBox:
    """Axis-aligned box in normalised image coordinates, (0, 0) top-left."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True)
class Finding:
    """The reader's structured finding: a coded category, optionally where and how large."""

    category_code: str
    location: BoundingBox | None = None
    size_mm: float | None = None


@dataclass(frozen=True)
class PredictionRef:
    """A prediction id checked to be a UUIDv7, with the time it carries."""

    prediction_id: str
    predicted_at: datetime


@dataclass(frozen=True)
class RecordReadCommand:
    """A well-formed request to record a read; the rules that relate its fields are checked later.

    Attributes:
        idempotency_key: Client key; a repeat returns the first read.
        prediction: The judged prediction.
        reader_pseudonym: Reader's pseudonym, possibly empty.
        outcome: Agree / override / correct.
        label: The reader's label.
        finding: The finding, when described.
        read_time: When the reader signed, UTC, microsecond precision.
    """

    idempotency_key: str
    prediction: PredictionRef
    reader_pseudonym: str
    outcome: Outcome
    label: Label
    finding: Finding | None
    read_time: datetime


@dataclass(frozen=True)
class Read:
    """A stored read.

    Attributes:
        read_id: radguard's id (UUIDv7 text).
        idempotency_key: The client's key.
        prediction_id: The judged prediction.
        reader_pseudonym: Reader's pseudonym.
        outcome: Relation to the model's decision.
        label: The reader's label.
        finding: The finding, if any.
        read_time: When the reader signed, UTC.
        recorded_at: When radguard stored it, UTC (the ReadEvent's event time).
    """

    read_id: str
    idempotency_key: str
    prediction_id: str
    reader_pseudonym: str
    outcome: Outcome
    label: Label
    finding: Finding | None
    read_time: datetime
    recorded_at: datetime

    def matches(self, command: RecordReadCommand) -> bool:
        """True when ``command`` asks for exactly this read (a genuine retry)."""
        return (
            self.idempotency_key == command.idempotency_key
            and self.prediction_id == command.prediction.prediction_id
            and self.reader_pseudonym == command.reader_pseudonym
            and self.outcome is command.outcome
            and self.label is command.label
            and self.finding == command.finding
            and self.read_time == command.read_time
        )


@dataclass(frozen=True)
class RecordResult:
    """What RecordRead returns: the stored read and whether this call created it."""

    read: Read
    created: bool
