"""How a relay round sorts its rows' outcomes: published, dead-lettered, or stuck behind a retriable failure."""

from __future__ import annotations

import kafka.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.errors import Unavailable
from services.runtime.kafka import RecordMetadata
from services.runtime.metrics import Metrics
from services.runtime.outbox import (
    MAX_REASON_CHARS,
    OutboxRelayLoop,
    RelayTuning,
    UnpublishableRow,
    describe_refusal,
    refused_for_good,
    settle,
)

ACK = RecordMetadata("t", 0, 1, 0)


def test_a_refused_row_is_quarantined_and_the_rest_is_published() -> None:
    too_large = kafka.errors.MessageSizeTooLargeError("the message is 1200000 bytes")
    settlement = settle([1, 2, 3], [ACK, too_large, ACK])
    assert settlement.published == (1, 3)
    assert settlement.quarantined == (
        (2, "MessageSizeTooLargeError: [Error 10] MessageSizeTooLargeError: the message is 1200000 bytes"),
    )
    assert settlement.stuck is None


def test_a_retriable_failure_stops_the_round_and_later_failures_stay_pending() -> None:
    down = Unavailable("kafka", "timed out")
    too_large = kafka.errors.MessageSizeTooLargeError("big")
    settlement = settle([1, 2, 3, 4, 5], [ACK, down, too_large, ACK, down])
    # Row 4 is in Kafka already: marked published so it is never sent twice; row 3 waits its turn.
    assert settlement.published == (1, 4)
    assert settlement.quarantined == ()
    assert settlement.stuck == 2
    assert settlement.stuck_error is down


def test_only_permanent_refusals_count_as_refused_for_good() -> None:
    assert refused_for_good(kafka.errors.MessageSizeTooLargeError())
    assert refused_for_good(UnpublishableRow("bad payload"))
    assert not refused_for_good(Unavailable("kafka"))
    assert not refused_for_good(kafka.errors.KafkaTimeoutError())
    assert not refused_for_good(RuntimeError("producer closed"))


def test_reasons_are_bounded() -> None:
    reason = describe_refusal(ValueError("x" * 10_000))
    assert len(reason) == MAX_REASON_CHARS
    assert reason.startswith("ValueError: xxx")


_OUTCOMES = st.sampled_from(["ack", "refused", "down"])


@given(st.lists(_OUTCOMES, max_size=30))
def test_every_row_is_settled_once_and_nothing_after_a_stuck_row_is_quarantined(kinds: list[str]) -> None:
    made = {"ack": ACK, "refused": kafka.errors.MessageSizeTooLargeError(), "down": Unavailable("kafka")}
    ids = list(range(len(kinds)))
    settlement = settle(ids, [made[kind] for kind in kinds])
    quarantined = [row_id for row_id, _ in settlement.quarantined]
    assert set(settlement.published).isdisjoint(quarantined)
    assert list(settlement.published) == [i for i, kind in enumerate(kinds) if kind == "ack"]
    first_down = kinds.index("down") if "down" in kinds else len(kinds)
    assert settlement.stuck == (first_down if first_down < len(kinds) else None)
    assert quarantined == [i for i, kind in enumerate(kinds[:first_down]) if kind == "refused"]


class _Connection:
    """Records the statements a round would run (the SQL itself is exercised on the real stack)."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, tuple[object, ...]]] = []

    async def execute(self, sql: str, *args: object) -> str:
        self.executed.append((sql, args))
        return "UPDATE 1"


class _Relay(OutboxRelayLoop):
    async def publish_round(self) -> int:
        return 0


@pytest.mark.asyncio
async def test_a_stuck_row_makes_the_next_rounds_offer_it_alone_and_dead_letters_are_counted() -> None:
    metrics = Metrics(process_metrics=False)
    relay = _Relay(None, "some_outbox", RelayTuning(batch=50), name="test.outbox", metrics=metrics)  # type: ignore[arg-type]
    connection = _Connection()
    assert relay.claim_limit() == 50

    stuck = settle([1, 2, 3], [ACK, kafka.errors.MessageSizeTooLargeError("big"), Unavailable("kafka")])
    await relay.apply_settlement(connection, stuck, "mark published")  # type: ignore[arg-type]
    relay.record_settlement(stuck)
    assert relay.claim_limit() == 1
    assert connection.executed[0] == ("mark published", ([1],))
    quarantine_sql, quarantine_args = connection.executed[1]
    assert quarantine_sql.startswith("update some_outbox set quarantined_at = now()")
    assert quarantine_args[0] == 2 and str(quarantine_args[1]).startswith("MessageSizeTooLargeError")
    assert relay.quarantined == 1 and relay.published == 1
    assert b'radguard_outbox_quarantined_total{outbox="test.outbox"} 1.0' in metrics.render()

    through = settle([3], [ACK])
    await relay.apply_settlement(connection, through, "mark published")  # type: ignore[arg-type]
    assert relay.claim_limit() == 50
