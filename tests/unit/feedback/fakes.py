"""In-memory stand-ins for the feedback service's ports, shared by unit and contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.feedback.domain import Label, Read
from services.runtime.errors import Unavailable


class InMemoryReadStore:
    """ReadStore keeping reads in dicts; ``events`` stands in for the outbox."""

    def __init__(self) -> None:
        self.by_key: dict[str, Read] = {}
        self.by_id: dict[str, Read] = {}
        self.events: list[Read] = []
        self.down = False

    async def add(self, read: Read) -> tuple[Read, bool]:
        if self.down:
            raise Unavailable("postgres", "down for the test")
        existing = self.by_key.get(read.idempotency_key)
        if existing is not None:
            return existing, False
        self.by_key[read.idempotency_key] = read
        self.by_id[read.read_id] = read
        self.events.append(read)
        return read, True

    async def get(self, read_id: str) -> Read | None:
        return self.by_id.get(read_id)

    async def get_by_key(self, idempotency_key: str) -> Read | None:
        return self.by_key.get(idempotency_key)


class KnownDecisions:
    """PredictionLookup answering from a dict (a prediction absent from it is not in the ledger yet)."""

    def __init__(self, decisions: dict[str, Label] | None = None) -> None:
        self.decisions = dict(decisions or {})
        self.asked: list[str] = []

    async def decision(self, prediction_id: str) -> Label | None:
        self.asked.append(prediction_id)
        return self.decisions.get(prediction_id)


class StepClock:
    """A clock the test sets; starts at a fixed instant."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
