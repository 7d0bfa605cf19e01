"""The outbox relay: publishes pending ``feedback_outbox`` rows to Kafka and marks them published.

Each round claims the oldest pending rows with ``FOR UPDATE SKIP LOCKED`` (so several feedback
instances share the work without publishing the same row at the same time), sends them in one batch,
and in the same transaction marks the acknowledged rows published, dead-letters the rows Kafka refuses
for good (``quarantined_at``, ``quarantine_reason``) and counts an attempt on the others. The shared loop
(:mod:`services.runtime.outbox`) states the order guarantee. A crash after Kafka acknowledged but before
the commit publishes those rows again on the next round: delivery is at least once, and the event id
(the read id) lets consumers drop the repeat.
"""

from __future__ import annotations

import json

import asyncpg

from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord
from services.runtime.metrics import Metrics
from services.runtime.outbox import OutboxRelayLoop, RelayTuning, SendMany, describe_refusal, settle
from services.runtime.postgres import DATABASE_DOWN

_CLAIM = """
select id, topic, key, payload, headers from feedback_outbox
where published_at is null and quarantined_at is null
order by id
limit $1
for update skip locked
"""
_MARK_PUBLISHED = (
    "update feedback_outbox set published_at = now(), attempts = attempts + 1 where id = any($1::bigint[])"
)
_MARK_FAILED = "update feedback_outbox set attempts = attempts + 1 where id = any($1::bigint[])"


class OutboxRelay(OutboxRelayLoop):
    """Background task moving ``feedback_outbox`` rows to Kafka."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        send_many: SendMany,
        tuning: RelayTuning | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        """Create the relay (it does nothing until :meth:`start`).

        Args:
            pool: Connections to the feedback database.
            send_many: Publishes a batch (``AsyncKafkaProducer.send_many``, started lazily by the caller).
            tuning: Batching and timing.
            metrics: Where the dead-letter counter goes.
        """
        super().__init__(pool, "feedback_outbox", tuning or RelayTuning(), name="feedback.outbox", metrics=metrics)
        self._send_many = send_many

    async def publish_round(self) -> int:
        """Claim, publish and mark one batch.

        Returns:
            Rows published in this round (0 when nothing was pending).

        Raises:
            Unavailable: PostgreSQL or Kafka could not be used; nothing was marked published that was not.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(_CLAIM, self.claim_limit())
                if not rows:
                    return 0
                records = [
                    OutgoingRecord(
                        row["topic"],
                        row["payload"],
                        row["key"],
                        tuple((name, value.encode("ascii")) for name, value in json.loads(row["headers"])),
                    )
                    for row in rows
                ]
                outcomes: list[object]
                try:
                    outcomes = list(await self._send_many(records))
                except Exception as error:
                    # The producer itself failed (not one record): retriable, nothing is dead-lettered.
                    outcomes = [Unavailable("kafka", describe_refusal(error))] * len(rows)
                settlement = settle([row["id"] for row in rows], outcomes)
                await self.apply_settlement(connection, settlement, _MARK_PUBLISHED)
                failed = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if _failed(outcome)]
                if failed:
                    await connection.execute(_MARK_FAILED, failed)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", describe_refusal(error)) from error
        self.record_settlement(settlement)
        if settlement.stuck_error is not None:
            raise Unavailable(
                "kafka",
                f"{len(rows) - len(settlement.published) - len(settlement.quarantined)} of {len(rows)}"
                f" outbox events not acknowledged: {describe_refusal(settlement.stuck_error)}",
            )
        return len(settlement.published) + len(settlement.quarantined)


def _failed(outcome: object) -> bool:
    return isinstance(outcome, BaseException)
