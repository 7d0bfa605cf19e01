"""The findings outbox relay: publishes pending ``monitor_findings_outbox`` rows to the findings topic.

A round claims the oldest pending rows with ``FOR UPDATE SKIP LOCKED`` (several runners may share one
database), sends them in one batch, and marks in the same transaction the acknowledged rows published and
counts an attempt on the rest; a row Kafka refuses for good is dead-lettered (quarantined with its reason,
see services/runtime/outbox.py) so it never blocks the findings after it. While Kafka is down every round
fails and is retried with back-off; the rows wait in PostgreSQL. A crash between Kafka's acknowledgement
and the commit sends a row again on the next round: consumers drop the repeat by the event id, which is
the finding id.
"""

from __future__ import annotations

import asyncpg

from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord
from services.runtime.outbox import OutboxRelayLoop, RelayTuning, SendMany, describe_refusal, settle
from services.runtime.postgres import DATABASE_DOWN

TABLE = "monitor_findings_outbox"

_CLAIM = f"""
select id, topic, key, payload from {TABLE}
where published_at is null and quarantined_at is null
order by id
limit $1
for update skip locked
"""  # noqa: S608 - a constant table name
_PUBLISHED = f"update {TABLE} set published_at = now(), attempts = attempts + 1 where id = any($1::bigint[])"  # noqa: S608
_FAILED = f"update {TABLE} set attempts = attempts + 1 where id = any($1::bigint[])"  # noqa: S608


class FindingsOutboxRelay(OutboxRelayLoop):
    """Background task moving stored findings to Kafka."""

    def __init__(self, pool: asyncpg.Pool, send_many: SendMany, tuning: RelayTuning | None = None) -> None:
        """Create the relay (it does nothing until :meth:`start`).

        Args:
            pool: Connections to the database holding the findings.
            send_many: Publishes a batch in order (``AsyncKafkaProducer.send_many``).
            tuning: Batching and timing.
        """
        super().__init__(pool, TABLE, tuning or RelayTuning(), name="monitors.findings_outbox")
        self._send_many = send_many

    async def publish_round(self) -> int:
        """Claim, publish and mark one batch; returns the rows published.

        Raises:
            Unavailable: PostgreSQL or Kafka could not be used; no unacknowledged row was marked published.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                rows = await connection.fetch(_CLAIM, self.claim_limit())
                if not rows:
                    return 0
                records = [OutgoingRecord(row["topic"], row["payload"], row["key"]) for row in rows]
                outcomes: list[object]
                try:
                    outcomes = list(await self._send_many(records))
                except Exception as error:
                    # The producer itself failed (not one record): retriable, nothing is dead-lettered.
                    outcomes = [Unavailable("kafka", describe_refusal(error))] * len(rows)
                settlement = settle([row["id"] for row in rows], outcomes)
                await self.apply_settlement(connection, settlement, _PUBLISHED)
                failed = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if _failed(outcome)]
                if failed:
                    await connection.execute(_FAILED, failed)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", describe_refusal(error)) from error
        self.record_settlement(settlement)
        if settlement.stuck_error is not None:
            raise Unavailable(
                "kafka",
                f"{len(rows) - len(settlement.published) - len(settlement.quarantined)} of {len(rows)}"
                f" findings not acknowledged: {describe_refusal(settlement.stuck_error)}",
            )
        return len(settlement.published) + len(settlement.quarantined)


def _failed(outcome: object) -> bool:
    return isinstance(outcome, BaseException)
