"""The feedback use cases: record a read (idempotently, durably) and look one up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.feedback import validation
from services.feedback.domain import Read, RecordReadCommand, RecordResult
from services.feedback.ports import PredictionLookup, ReadStore
from services.runtime.errors import AlreadyExists, InvalidArgument, NotFound
from services.runtime.ids import uuid7
from services.runtime.telemetry import get_logger

#: Returns the current time, UTC (a parameter so tests control it).
Clock = Callable[[], datetime]

_log = get_logger(__name__)


def utc_now() -> datetime:
    """The wall clock, UTC (microsecond precision, as PostgreSQL stores it)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReadRules:
    """Tunable parts of the read rules.

    Attributes:
        max_clock_skew: How far ahead of this service a reading workstation's clock may run.
    """

    max_clock_skew: timedelta = timedelta(seconds=60)


class ReadsHandler:
    """RecordRead and GetRead over a read store and (optionally) the ledger's view of predictions."""

    def __init__(
        self,
        store: ReadStore,
        predictions: PredictionLookup | None = None,
        rules: ReadRules | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """Create the handler.

        Args:
            store: Where reads (and their outbox events) are kept.
            predictions: Ledger lookup used to check outcome against the model's decision; None skips it.
            rules: Clock-skew allowance.
            clock: Current time.
        """
        self._store = store
        self._predictions = predictions
        self._rules = rules or ReadRules()
        self._clock = clock

    async def record(self, command: RecordReadCommand) -> RecordResult:
        """Record a read once per idempotency key.

        A repeat of the same request returns the stored read with ``created=False`` — even if the rules
        would now judge it differently (say its prediction reached the ledger meanwhile): the first answer
        stands. The same key with different content is refused, so a client bug cannot replace a read.

        Raises:
            InvalidArgument: A new read breaks a rule (see :mod:`services.feedback.validation`).
            AlreadyExists: The key was used for a different read.
            Unavailable: The store or the ledger cannot be reached.
        """
        existing = await self._store.get_by_key(command.idempotency_key)
        if existing is not None:
            return self._repeat(existing, command)
        now = self._clock()
        validation.check_read_time(command.read_time, command.prediction, now, self._rules.max_clock_skew)
        decision = None
        if self._predictions is not None:
            decision = await self._predictions.decision(command.prediction.prediction_id)
        validation.check_read_rules(command, decision)
        read = Read(
            read_id=uuid7(),
            idempotency_key=command.idempotency_key,
            prediction_id=command.prediction.prediction_id,
            reader_pseudonym=command.reader_pseudonym,
            outcome=command.outcome,
            label=command.label,
            finding=command.finding,
            read_time=command.read_time,
            recorded_at=now,
        )
        stored, created = await self._store.add(read)
        if not created:  # a concurrent call with the same key won the insert
            return self._repeat(stored, command)
        _log.info(
            "feedback.read_recorded",
            read_id=stored.read_id,
            outcome=stored.outcome.value,
            decision_known=decision is not None,
        )
        return RecordResult(stored, created=True)

    @staticmethod
    def _repeat(stored: Read, command: RecordReadCommand) -> RecordResult:
        if not stored.matches(command):
            raise AlreadyExists("a different read with this idempotency_key")
        _log.info("feedback.read_repeated", read_id=stored.read_id)
        return RecordResult(stored, created=False)

    async def get(self, read_id: str | None = None, idempotency_key: str | None = None) -> Read:
        """Return one read by radguard id or by client key (exactly one must be given).

        Raises:
            InvalidArgument: Neither or both keys given.
            NotFound: No such read.
        """
        if (read_id is None) == (idempotency_key is None):
            raise InvalidArgument("key", "set exactly one of read_id or idempotency_key")
        if read_id is not None:
            found = await self._store.get(read_id)
            what = f"read '{read_id}'"
        elif idempotency_key is not None:
            found = await self._store.get_by_key(idempotency_key)
            what = "read with this idempotency_key"  # stored as a pseudonym: quoting it would only confuse
        if found is None:
            raise NotFound(what)
        return found
