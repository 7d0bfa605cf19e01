"""The findings outbox relay: publishes pending ``monitor_findings_outbox`` rows to the findings topic.

A round claims the oldest pending rows with ``FOR UPDATE SKIP LOCKED`` (several runners may share one
database), sends them in one batch, and marks in the same transaction the acknowledged rows published and
counts an attempt on the rest. While Kafka is down every round fails and is retried with back-off; the rows
wait in PostgreSQL. A crash between Kafka's acknowledgement and the commit sends a row again on the next
round: consumers drop the repeat by the event id, which is the finding id.
"""

from __future__ import annotations

import asyncpg

from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord
from services.runtime.outbox import OutboxRelayLoop, RelayTuning, SendMany
from services.runtime.postgres import DATABASE_DOWN

TABLE = "monitor_findings_outbox"

_CLAIM = f"""
select id, topic, key, payload from {TABLE}
where published_at is null
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
                rows = await connection.fetch(_CLAIM, self.tuning.batch)
                if not rows:
                    return 0
                records = [OutgoingRecord(row["topic"], row["payload"], row["key"]) for row in rows]
                try:
                    outcomes = list(await self._send_many(records))
                except Exception as error:
                    outcomes = [error] * len(rows)
                sent = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if not _failed(outcome)]
                unsent = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if _failed(outcome)]
                if sent:
                    await connection.execute(_PUBLISHED, sent)
                if unsent:
                    await connection.execute(_FAILED, unsent)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        self.published += len(sent)
        if unsent:
            first = next(outcome for outcome in outcomes if _failed(outcome))
            raise Unavailable("kafka", f"{len(unsent)} of {len(rows)} findings not acknowledged: {first}")
        return len(sent)


def _failed(outcome: object) -> bool:
    return isinstance(outcome, BaseException)
