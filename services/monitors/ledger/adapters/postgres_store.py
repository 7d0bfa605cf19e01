"""The ledger's write side over asyncpg: COPY into staging, insert-or-skip, offsets, one transaction."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from typing import Any

import asyncpg

from services.monitors.ledger.domain import (
    BatchRefused,
    LedgerBatch,
    PredictionRecord,
    ReadRecord,
    WriteResult,
)
from services.runtime.errors import Unavailable
from services.runtime.kafka import TopicPartition
from services.runtime.postgres import DATABASE_DOWN

PREDICTION_COLUMNS = (
    "prediction_id",
    "event_time",
    "model_name",
    "model_version",
    "arm",
    "study_uid",
    "series_uid",
    "accession",
    "patient_pseudonym",
    "sex",
    "age_years",
    "age_band",
    "site_id",
    "modality",
    "body_part",
    "manufacturer",
    "manufacturer_model",
    "protocol_name",
    "view_position",
    "pixel_spacing_row_mm",
    "pixel_spacing_col_mm",
    "raw_score",
    "probability",
    "decision",
    "threshold",
    "descriptors",
    "embedding",
    "latency_ms",
    "route_revision",
    "request_id",
    "served_prediction_id",
    "producer",
    "trace_id",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

READ_COLUMNS = (
    "read_id",
    "prediction_id",
    "event_time",
    "read_time",
    "reader_pseudonym",
    "outcome",
    "label",
    "finding_category",
    "finding_x_min",
    "finding_y_min",
    "finding_x_max",
    "finding_y_max",
    "finding_size_mm",
    "idempotency_key",
    "producer",
    "trace_id",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

_PREDICTIONS_STAGING = "ledger_predictions_staging"
_READS_STAGING = "ledger_reads_staging"

# Per connection: session-private staging tables, emptied by every commit. COPY into them is the fast
# path; the insert from them skips ids already stored (replays) without failing the batch.
_CREATE_STAGING = f"""
create temp table if not exists {_PREDICTIONS_STAGING}
    (like ledger_predictions including defaults) on commit delete rows;
create temp table if not exists {_READS_STAGING}
    (like ledger_reads including defaults) on commit delete rows;
"""


def _insert_from_staging(table: str, staging: str, columns: tuple[str, ...], key: str) -> str:
    names = ", ".join(columns)
    return (
        f"insert into {table} ({names}) select {names} from {staging} "  # noqa: S608 - fixed identifiers
        f"on conflict ({key}) do nothing returning kafka_topic, kafka_partition"
    )


_INSERT_PREDICTIONS = _insert_from_staging(
    "ledger_predictions", _PREDICTIONS_STAGING, PREDICTION_COLUMNS, "prediction_id"
)
_INSERT_READS = _insert_from_staging("ledger_reads", _READS_STAGING, READ_COLUMNS, "read_id")

_INSERT_REJECTS = """
insert into ledger_rejects (consumer_group, kafka_topic, kafka_partition, kafka_offset, reason, payload)
values ($1, $2, $3, $4, $5, $6)
on conflict do nothing
"""

_UPSERT_OFFSETS = """
insert into ledger_consumer_offsets as o
    (consumer_group, topic, partition, next_offset, records, duplicates, rejected, updated_at)
select $1, t.topic, t.partition, t.next_offset, t.records, t.duplicates, t.rejected, now()
from unnest($2::text[], $3::integer[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
    as t(topic, partition, next_offset, records, duplicates, rejected)
on conflict (consumer_group, topic, partition) do update set
    next_offset = excluded.next_offset,
    records = o.records + excluded.records,
    duplicates = o.duplicates + excluded.duplicates,
    rejected = o.rejected + excluded.rejected,
    updated_at = excluded.updated_at
"""

_STORED_OFFSETS = """
select topic, partition, next_offset from ledger_consumer_offsets
where consumer_group = $1 and topic = any($2::text[])
"""


async def prepare_connection(connection: asyncpg.Connection) -> None:
    """Create the session's staging tables; pass as the pool's ``init`` so every connection has them."""
    await connection.execute(_CREATE_STAGING)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def prediction_row(record: PredictionRecord) -> tuple[Any, ...]:
    """The COPY row of a prediction, in :data:`PREDICTION_COLUMNS` order."""
    return (
        record.prediction_id,
        record.event_time,
        record.model_name,
        record.model_version,
        record.arm.value,
        record.study_uid,
        record.series_uid,
        record.accession,
        record.patient_pseudonym,
        record.sex.value,
        record.age_years,
        record.age_band,
        record.site_id,
        record.modality,
        record.body_part,
        record.manufacturer,
        record.manufacturer_model,
        record.protocol_name,
        record.view_position,
        record.pixel_spacing_row_mm,
        record.pixel_spacing_col_mm,
        record.raw_score,
        record.probability,
        record.decision,
        record.threshold,
        json.dumps(record.descriptors, allow_nan=False),
        record.embedding,
        record.latency_ms,
        record.route_revision,
        record.request_id,
        record.served_prediction_id,
        record.producer,
        record.trace_id,
        record.source.topic,
        record.source.partition,
        record.source.offset,
    )


def read_row(record: ReadRecord) -> tuple[Any, ...]:
    """The COPY row of a read, in :data:`READ_COLUMNS` order."""
    box = record.finding_box or (None, None, None, None)
    return (
        record.read_id,
        record.prediction_id,
        record.event_time,
        record.read_time,
        record.reader_pseudonym,
        record.outcome.value,
        record.label,
        record.finding_category,
        *box,
        record.finding_size_mm,
        record.idempotency_key,
        record.producer,
        record.trace_id,
        record.source.topic,
        record.source.partition,
        record.source.offset,
    )


class PostgresLedgerStore:
    """LedgerStore over asyncpg. The pool must be created with ``init=prepare_connection``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Create the store.

        Args:
            pool: Connections to the ledger database, each prepared by :func:`prepare_connection`.
        """
        self._pool = pool

    async def stored_offsets(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = set(partitions)
        topics = sorted({partition.topic for partition in wanted})
        try:
            rows = await self._pool.fetch(_STORED_OFFSETS, group, topics)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", _describe(error)) from error
        found = {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}
        return {partition: offset for partition, offset in found.items() if partition in wanted}

    async def write(self, group: str, batch: LedgerBatch) -> WriteResult:
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                inserted = Counter[TopicPartition]()
                predictions = await self._copy_and_insert(
                    connection,
                    [prediction_row(p) for p in batch.predictions],
                    _PREDICTIONS_STAGING,
                    PREDICTION_COLUMNS,
                    _INSERT_PREDICTIONS,
                )
                reads = await self._copy_and_insert(
                    connection, [read_row(r) for r in batch.reads], _READS_STAGING, READ_COLUMNS, _INSERT_READS
                )
                inserted.update(predictions)
                inserted.update(reads)
                if batch.rejects:
                    await connection.executemany(
                        _INSERT_REJECTS,
                        [
                            (group, r.source.topic, r.source.partition, r.source.offset, r.reason, r.payload)
                            for r in batch.rejects
                        ],
                    )
                await self._advance(connection, group, batch, inserted)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", _describe(error)) from error
        except asyncpg.PostgresError as error:
            raise BatchRefused(_describe(error)) from error
        prediction_count, read_count = sum(predictions.values()), sum(reads.values())
        return WriteResult(
            predictions_inserted=prediction_count,
            reads_inserted=read_count,
            duplicates=len(batch) - prediction_count - read_count - len(batch.rejects),
            rejected=len(batch.rejects),
        )

    @staticmethod
    async def _copy_and_insert(
        connection: asyncpg.Connection,
        rows: list[tuple[Any, ...]],
        staging: str,
        columns: tuple[str, ...],
        insert: str,
    ) -> Counter[TopicPartition]:
        if not rows:
            return Counter()
        await connection.copy_records_to_table(staging, records=rows, columns=columns)
        returned = await connection.fetch(insert)
        return Counter(TopicPartition(row["kafka_topic"], row["kafka_partition"]) for row in returned)

    @staticmethod
    async def _advance(
        connection: asyncpg.Connection, group: str, batch: LedgerBatch, inserted: Counter[TopicPartition]
    ) -> None:
        rejected = Counter(r.source.topic_partition for r in batch.rejects)
        partitions = sorted(batch.next_offsets)
        await connection.execute(
            _UPSERT_OFFSETS,
            group,
            [p.topic for p in partitions],
            [p.partition for p in partitions],
            [batch.next_offsets[p] for p in partitions],
            [batch.consumed[p] for p in partitions],
            [batch.consumed[p] - inserted[p] - rejected[p] for p in partitions],
            [rejected[p] for p in partitions],
        )
