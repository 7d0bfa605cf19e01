"""asyncpg adapters: the read store (reads + outbox in one transaction) and the ledger lookup."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from opentelemetry import trace

from services.feedback.adapters.events import read_event
from services.feedback.domain import BoundingBox, Finding, Label, Outcome, Read
from services.runtime.errors import Conflict, Unavailable
from services.runtime.kafka import inject_context
from services.runtime.postgres import DATABASE_DOWN
from services.runtime.request_id import current_request_id
from services.runtime.telemetry import get_logger

#: asyncpg failures that mean "PostgreSQL cannot be used right now" rather than "the query is wrong".

_READ_COLUMNS = """
    read_id, idempotency_key, prediction_id, reader_pseudonym, outcome, label, finding_category,
    finding_x_min, finding_y_min, finding_x_max, finding_y_max, finding_size_mm, read_time, recorded_at
"""

_INSERT_READ = f"""
insert into feedback_reads ({_READ_COLUMNS})
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
on conflict (idempotency_key) do nothing
returning read_id
"""  # noqa: S608 - fixed column list, values are parameters

_INSERT_OUTBOX = """
insert into feedback_outbox (event_id, topic, key, payload, headers) values ($1, $2, $3, $4, $5::jsonb)
"""

_log = get_logger(__name__)


def _span_ids() -> tuple[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _row_values(read: Read) -> tuple[Any, ...]:
    finding = read.finding
    box = finding.location if finding is not None else None
    return (
        uuid.UUID(read.read_id),
        read.idempotency_key,
        uuid.UUID(read.prediction_id),
        read.reader_pseudonym,
        read.outcome.value,
        int(read.label),
        finding.category_code if finding is not None else None,
        box.x_min if box is not None else None,
        box.y_min if box is not None else None,
        box.x_max if box is not None else None,
        box.y_max if box is not None else None,
        finding.size_mm if finding is not None else None,
        read.read_time,
        read.recorded_at,
    )


def read_from_row(row: asyncpg.Record) -> Read:
    """A domain read from a ``feedback_reads`` row."""
    finding = None
    if row["finding_category"] is not None:
        location = None
        if row["finding_x_min"] is not None:
            location = BoundingBox(
                row["finding_x_min"], row["finding_y_min"], row["finding_x_max"], row["finding_y_max"]
            )
        finding = Finding(row["finding_category"], location, row["finding_size_mm"])
    return Read(
        read_id=str(row["read_id"]),
        idempotency_key=row["idempotency_key"],
        prediction_id=str(row["prediction_id"]),
        reader_pseudonym=row["reader_pseudonym"],
        outcome=Outcome(row["outcome"]),
        label=Label(row["label"]),
        finding=finding,
        read_time=row["read_time"],
        recorded_at=row["recorded_at"],
    )


class PostgresReadStore:
    """ReadStore over ``feedback_reads``; every new read gets its ReadEvent in ``feedback_outbox``.

    Why an outbox and not a synchronous produce: the read and its event commit together, so there is no
    moment where one exists without the other (a produce after the commit can be lost to a crash; a
    produce before it can announce a read that then fails to commit), and recording reads keeps working
    while Kafka is down. The price is at-least-once publication, which the ledger absorbs by
    deduplicating on the event id (= read id).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        topic: str,
        producer: str,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """Create the store.

        Args:
            pool: Connections to the feedback database.
            topic: Topic the queued events go to.
            producer: ``"feedback/<instance>"`` for the events' envelope.
            on_stored: Called after a new read committed (wakes the relay in this process).
        """
        self._pool = pool
        self._topic = topic
        self._producer = producer
        self._on_stored = on_stored

    async def add(self, read: Read) -> tuple[Read, bool]:
        event = read_event(read, self._producer, _span_ids(), current_request_id() or "")
        headers = [[name, value.decode("ascii", "replace")] for name, value in inject_context()]
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                inserted = await connection.fetchval(_INSERT_READ, *_row_values(read))
                if inserted is None:
                    row = await connection.fetchrow(
                        f"select {_READ_COLUMNS} from feedback_reads where idempotency_key = $1",  # noqa: S608
                        read.idempotency_key,
                    )
                    if row is None:  # only if the first read was deleted between the two statements
                        raise Conflict("the read changed concurrently; retry")
                    return read_from_row(row), False
                await connection.execute(
                    _INSERT_OUTBOX,
                    uuid.UUID(read.read_id),
                    self._topic,
                    read.prediction_id.encode(),
                    event.SerializeToString(),
                    json.dumps(headers),
                )
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", _describe(error)) from error
        if self._on_stored is not None:
            self._on_stored()
        return read, True

    async def get(self, read_id: str) -> Read | None:
        return await self._fetch_one("read_id = $1", uuid.UUID(read_id))

    async def get_by_key(self, idempotency_key: str) -> Read | None:
        return await self._fetch_one("idempotency_key = $1", idempotency_key)

    async def _fetch_one(self, condition: str, value: object) -> Read | None:
        try:
            row = await self._pool.fetchrow(
                f"select {_READ_COLUMNS} from feedback_reads where {condition}",  # noqa: S608 - fixed conditions
                value,
            )
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", _describe(error)) from error
        return None if row is None else read_from_row(row)


class LedgerPredictionLookup:
    """PredictionLookup reading the ledger's ``ledger_predictions`` table in the same database.

    A read-only dependency on the ledger's schema (one column); where the ledger is not deployed the
    lookup answers "unknown" and only the decision-free rules apply.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Create the lookup.

        Args:
            pool: Connections to the database holding the ledger.
        """
        self._pool = pool
        self._warned = False

    async def decision(self, prediction_id: str) -> Label | None:
        try:
            value = await self._pool.fetchval(
                "select decision from ledger_predictions where prediction_id = $1", uuid.UUID(prediction_id)
            )
        except asyncpg.exceptions.UndefinedTableError:
            if not self._warned:
                _log.warning("feedback.ledger_missing", detail="ledger_predictions does not exist; not checked")
                self._warned = True
            return None
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", _describe(error)) from error
        return None if value is None else Label(value)
