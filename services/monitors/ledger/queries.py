"""The ledger's read side as the monitors and governance see it: windows of predictions with their reads.

A window is the predictions of one model (optionally one version, arm and subgroup) in a time range
[start, end) by event time, optionally only the latest ``last`` of them (a count window). Each
prediction carries its read when one has arrived (the latest by read time), so every window states its
label maturity: how many of its predictions have a label yet. Labels arrive hours after predictions;
a monitor that compares windows must compare maturities too, not only statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.monitors.ledger.domain import Arm, Outcome, Sex
from services.runtime.errors import InvalidArgument


@dataclass(frozen=True)
class WindowSpec:
    """Which predictions a window holds.

    Attributes:
        model_name: The model (required).
        model_version: One version, or all when None.
        arm: One arm, or all when None.
        start: First event time included (inclusive), or unbounded.
        end: Event time where the window stops (exclusive), or unbounded.
        last: Keep only the latest ``last`` predictions of the range (a count window).
        site_id: Only this site.
        manufacturer: Only this scanner manufacturer.
        manufacturer_model: Only this scanner model.
        sex: Only this sex.
        age_band: Only this age band (as the gateway labelled it, e.g. ``"70+"``).
        include_features: Also return image descriptors and embeddings (for drift; heavier).
    """

    model_name: str
    model_version: str | None = None
    arm: Arm | None = None
    start: datetime | None = None
    end: datetime | None = None
    last: int | None = None
    site_id: str | None = None
    manufacturer: str | None = None
    manufacturer_model: str | None = None
    sex: Sex | None = None
    age_band: str | None = None
    include_features: bool = False

    def __post_init__(self) -> None:
        if not self.model_name:
            raise InvalidArgument("model_name", "is required")
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidArgument(name, "must be timezone-aware")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise InvalidArgument("end", "must be after start")
        if self.last is not None and self.last < 1:
            raise InvalidArgument("last", f"must be at least 1, got {self.last}")

    def filters(self) -> dict[str, str]:
        """The equality filters in force, by ledger column."""
        candidates = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "arm": self.arm.value if self.arm is not None else None,
            "site_id": self.site_id,
            "manufacturer": self.manufacturer,
            "manufacturer_model": self.manufacturer_model,
            "sex": self.sex.value if self.sex is not None else None,
            "age_band": self.age_band,
        }
        return {column: value for column, value in candidates.items() if value is not None}


@dataclass(frozen=True)
class LabelledPrediction:
    """A prediction joined with its read (read fields are None until a read arrives).

    ``decision`` and ``label`` are 1 (positive), 0 (negative) or None. ``descriptors`` and ``embedding``
    are None unless the window asked for features.
    """

    prediction_id: str
    event_time: datetime
    model_name: str
    model_version: str
    arm: Arm
    study_uid: str
    site_id: str
    modality: str
    manufacturer: str
    manufacturer_model: str
    protocol_name: str
    sex: Sex
    age_years: int | None
    age_band: str
    raw_score: float
    probability: float
    decision: int | None
    threshold: float
    descriptors: dict[str, float | None] | None
    embedding: tuple[float, ...] | None
    read_id: str | None
    label: int | None
    outcome: Outcome | None
    read_time: datetime | None
    read_count: int

    @property
    def labelled(self) -> bool:
        """Whether a read with a label has arrived."""
        return self.label is not None


def shared_features(rows: Sequence[LabelledPrediction]) -> tuple[list[str], int]:
    """The descriptors every row carries (sorted) and the embedding width every row has.

    Only these become columns: a descriptor or embedding component the gateway added part-way through would
    otherwise be compared on a biased subset of the traffic. ``([], 0)`` when the rows carry no descriptors.
    """
    if not rows or rows[0].descriptors is None:
        return [], 0
    names = set(rows[0].descriptors)
    width = len(rows[0].embedding or ())
    for row in rows:
        names &= set(row.descriptors or ())
        width = min(width, len(row.embedding or ()))
    return sorted(names), width


@dataclass(frozen=True)
class Maturity:
    """How many predictions a window holds and how many of them have a label."""

    count: int
    labelled_count: int

    @property
    def fraction(self) -> float:
        """labelled_count / count (0.0 for an empty window)."""
        return self.labelled_count / self.count if self.count else 0.0

    @property
    def partial(self) -> bool:
        """True when some predictions still wait for their label."""
        return self.labelled_count < self.count


@dataclass(frozen=True)
class LedgerWindow:
    """A window's predictions in event-time order, with their labels and the window's maturity."""

    spec: WindowSpec
    rows: tuple[LabelledPrediction, ...]

    @property
    def maturity(self) -> Maturity:
        """Count and labelled count of the window."""
        return Maturity(len(self.rows), sum(1 for row in self.rows if row.labelled))

    @property
    def first_event_time(self) -> datetime | None:
        """Event time of the earliest prediction, None when empty."""
        return self.rows[0].event_time if self.rows else None

    @property
    def last_event_time(self) -> datetime | None:
        """Event time of the latest prediction, None when empty."""
        return self.rows[-1].event_time if self.rows else None

    def labelled(self) -> tuple[LabelledPrediction, ...]:
        """Only the predictions that have a label."""
        return tuple(row for row in self.rows if row.labelled)


@dataclass(frozen=True)
class OrphanRead:
    """A read whose prediction the ledger has not seen."""

    read_id: str
    prediction_id: str
    read_time: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class LedgerCounts:
    """Row counts of the ledger."""

    predictions: int
    reads: int
    labelled_predictions: int
    orphan_reads: int
    rejects: int


@dataclass(frozen=True)
class StoredOffset:
    """What one consumer group has written from one partition."""

    group: str
    topic: str
    partition: int
    next_offset: int
    records: int
    duplicates: int
    rejected: int
    updated_at: datetime


class LedgerQueries(Protocol):
    """Read access to the ledger."""

    async def window(self, spec: WindowSpec) -> LedgerWindow:
        """The predictions of ``spec`` with their reads, oldest first."""
        ...

    async def maturity(self, spec: WindowSpec) -> Maturity:
        """Count and labelled count of ``spec``'s window, without fetching its rows."""
        ...

    async def orphan_reads(self, limit: int = 100) -> list[OrphanRead]:
        """Reads without a known prediction, oldest recorded first."""
        ...

    async def counts(self) -> LedgerCounts:
        """Row counts of the whole ledger."""
        ...

    async def stored_offsets(self, group: str | None = None) -> list[StoredOffset]:
        """Stored consumer offsets, for one group or all."""
        ...
