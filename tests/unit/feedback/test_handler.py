"""The reads use case over in-memory ports: idempotency, ledger checks, time rules, lookups."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from services.feedback.domain import BoundingBox, Finding, Label, Outcome, PredictionRef, RecordReadCommand
from services.feedback.handlers import ReadRules, ReadsHandler
from services.runtime.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from services.runtime.ids import parse_uuid7, uuid7
from tests.unit.feedback.fakes import InMemoryReadStore, KnownDecisions, StepClock

PREDICTED_MS = int(datetime(2025, 3, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def _command(key: str = "key-1", **changes: object) -> RecordReadCommand:
    prediction_id, predicted_at = parse_uuid7(uuid7(now_ms=PREDICTED_MS))
    command = RecordReadCommand(
        idempotency_key=key,
        prediction=PredictionRef(prediction_id, predicted_at),
        reader_pseudonym="reader-7",
        outcome=Outcome.OVERRIDE,
        label=Label.POSITIVE,
        finding=Finding("NODULE", BoundingBox(0.1, 0.1, 0.2, 0.2), 9.0),
        read_time=datetime(2025, 3, 1, 11, 30, tzinfo=UTC),
    )
    return dataclasses.replace(command, **changes)  # type: ignore[arg-type]


def _handler(decisions: KnownDecisions | None = None) -> tuple[ReadsHandler, InMemoryReadStore, StepClock]:
    store, clock = InMemoryReadStore(), StepClock()
    return ReadsHandler(store, decisions, ReadRules(timedelta(seconds=60)), clock), store, clock


@pytest.mark.asyncio
async def test_a_new_read_is_stored_once_with_a_uuid7_and_the_clock_time() -> None:
    handler, store, clock = _handler()
    command = _command()
    result = await handler.record(command)
    assert result.created is True
    read = result.read
    assert parse_uuid7(read.read_id)[0] == read.read_id
    assert read.recorded_at == clock.now
    assert (read.prediction_id, read.outcome, read.label, read.finding) == (
        command.prediction.prediction_id,
        Outcome.OVERRIDE,
        Label.POSITIVE,
        command.finding,
    )
    assert store.events == [read]


@pytest.mark.asyncio
async def test_a_retry_returns_the_first_read_and_creates_nothing() -> None:
    handler, store, clock = _handler()
    command = _command()
    first = await handler.record(command)
    clock.advance(30)
    again = await handler.record(command)
    assert again.created is False
    assert again.read == first.read
    assert len(store.events) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "change",
    [
        {"label": Label.NEGATIVE, "finding": None},
        {"reader_pseudonym": "reader-8"},
        {"read_time": datetime(2025, 3, 1, 11, 31, tzinfo=UTC)},
        {"finding": Finding("NODULE", None, 9.0)},
    ],
)
async def test_the_same_key_with_other_content_is_refused(change: dict[str, object]) -> None:
    handler, store, _ = _handler()
    await handler.record(_command())
    with pytest.raises(AlreadyExists) as caught:
        await handler.record(_command(**change))
    assert caught.value.message == "a different read with this idempotency_key already exists"
    assert len(store.events) == 1


@pytest.mark.asyncio
async def test_outcome_is_checked_against_the_decision_the_ledger_knows() -> None:
    command = _command(outcome=Outcome.AGREE)
    decisions = KnownDecisions({command.prediction.prediction_id: Label.NEGATIVE})
    handler, store, _ = _handler(decisions)
    with pytest.raises(InvalidArgument) as caught:
        await handler.record(command)
    assert caught.value.field == "outcome"
    assert "equal the model's decision (negative); got positive: use override" in caught.value.message
    assert decisions.asked == [command.prediction.prediction_id]
    assert store.events == []
    # The same read as an override is consistent with that decision.
    assert (await handler.record(_command())).created is True


@pytest.mark.asyncio
async def test_a_read_of_a_prediction_the_ledger_has_not_seen_is_accepted() -> None:
    handler, store, _ = _handler(KnownDecisions())
    result = await handler.record(_command(outcome=Outcome.AGREE))
    assert result.created is True
    assert len(store.events) == 1


@pytest.mark.asyncio
async def test_read_time_rules_use_the_handlers_clock() -> None:
    handler, _, clock = _handler()
    with pytest.raises(InvalidArgument, match=r"^read_time: is in the future"):
        await handler.record(_command(read_time=clock.now + timedelta(minutes=5)))
    with pytest.raises(InvalidArgument, match=r"^read_time: is before the prediction was made"):
        await handler.record(_command(read_time=datetime(2025, 3, 1, 8, 59, tzinfo=UTC)))


@pytest.mark.asyncio
async def test_store_outages_surface_as_unavailable() -> None:
    handler, store, _ = _handler()
    store.down = True
    with pytest.raises(Unavailable, match="postgres is unavailable"):
        await handler.record(_command())


@pytest.mark.asyncio
async def test_get_finds_a_read_by_id_or_by_key() -> None:
    handler, _, _ = _handler()
    stored = (await handler.record(_command())).read
    assert await handler.get(read_id=stored.read_id) == stored
    assert await handler.get(idempotency_key="key-1") == stored
    with pytest.raises(NotFound, match=r"^read with this idempotency_key not found$"):
        await handler.get(idempotency_key="nope")
    missing = uuid7()
    with pytest.raises(NotFound, match=rf"^read '{missing}' not found$"):
        await handler.get(read_id=missing)
    with pytest.raises(InvalidArgument, match=r"^key: set exactly one"):
        await handler.get()


@pytest.mark.asyncio
async def test_a_retry_returns_the_stored_read_even_once_the_ledger_would_refuse_it() -> None:
    # First call: the prediction is not in the ledger yet, so "agree" cannot be checked and is stored.
    decisions = KnownDecisions()
    handler, store, _ = _handler(decisions)
    command = _command(outcome=Outcome.AGREE)
    first = await handler.record(command)
    # The prediction arrives, decided negative: a new read like this one would now be refused ...
    decisions.decisions[command.prediction.prediction_id] = Label.NEGATIVE
    with pytest.raises(InvalidArgument):
        await handler.record(dataclasses.replace(command, idempotency_key="key-2"))
    # ... but the client's retry of the stored one gets the first answer.
    again = await handler.record(command)
    assert (again.created, again.read) == (False, first.read)
    assert len(store.events) == 1


@pytest.mark.asyncio
async def test_a_concurrent_insert_with_the_same_key_is_answered_as_a_repeat() -> None:
    handler, store, _ = _handler()
    command = _command()
    winner = (await handler.record(command)).read
    # The other call checked the key before the winner committed, so it reaches add() and loses there.
    original = store.get_by_key

    async def not_yet(key: str):  # type: ignore[no-untyped-def]
        return None

    store.get_by_key = not_yet  # type: ignore[method-assign]
    result = await handler.record(command)
    store.get_by_key = original  # type: ignore[method-assign]
    assert (result.created, result.read) == (False, winner)
