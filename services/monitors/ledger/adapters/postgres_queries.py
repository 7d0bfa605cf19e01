"""The ledger's read side over asyncpg: windows, maturity, orphans, counts, stored offsets."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from services.monitors.ledger.domain import Arm, Outcome, Sex
from services.monitors.ledger.queries import (
    LabelledPrediction,
    LedgerCounts,
    LedgerWindow,
    Maturity,
    OrphanRead,
    StoredOffset,
    WindowSpec,
)
from services.runtime.errors import Unavailable
from services.runtime.postgres import DATABASE_DOWN

_WINDOW_COLUMNS = (
    "prediction_id, event_time, model_name, model_version, arm, study_uid, site_id, modality, manufacturer, "
    "manufacturer_model, protocol_name, sex, age_years, age_band, raw_score, probability, decision, threshold, "
    "read_id, label, outcome, read_time, read_count"
)
_FEATURE_COLUMNS = ", descriptors, embedding"

# Filter columns are fixed names from WindowSpec.filters(); values always travel as parameters.
_FILTER_COLUMNS = frozenset(
    {"model_name", "model_version", "arm", "site_id", "manufacturer", "manufacturer_model", "sex", "age_band"}
)


def window_query(spec: WindowSpec, columns: str) -> tuple[str, list[Any]]:
    """SQL selecting ``columns`` of ``spec``'s window from ``ledger_labelled_predictions``, oldest first.

    A count window takes the latest ``last`` rows by event time (newest first, so an index on
    (..., event_time) stops early) and the outer query puts them back in time order.
    """
    conditions: list[str] = []
    values: list[Any] = []
    for column, value in spec.filters().items():
        if column not in _FILTER_COLUMNS:  # defensive: the names are interpolated below
            raise ValueError(f"unknown filter column {column!r}")
        values.append(value)
        conditions.append(f"{column} = ${len(values)}")
    if spec.start is not None:
        values.append(spec.start)
        conditions.append(f"event_time >= ${len(values)}")
    if spec.end is not None:
        values.append(spec.end)
        conditions.append(f"event_time < ${len(values)}")
    where = " and ".join(conditions)
    if spec.last is None:
        sql = (
            f"select {columns} from ledger_labelled_predictions where {where} "  # noqa: S608 - see above
            "order by event_time, prediction_id"
        )
        return sql, values
    values.append(spec.last)
    sql = (
        f"select * from (select {columns} from ledger_labelled_predictions where {where} "  # noqa: S608
        f"order by event_time desc, prediction_id desc limit ${len(values)}) w order by event_time, prediction_id"
    )
    return sql, values


def _labelled_prediction(row: asyncpg.Record, features: bool) -> LabelledPrediction:
    return LabelledPrediction(
        prediction_id=str(row["prediction_id"]),
        event_time=row["event_time"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        arm=Arm(row["arm"]),
        study_uid=row["study_uid"],
        site_id=row["site_id"],
        modality=row["modality"],
        manufacturer=row["manufacturer"],
        manufacturer_model=row["manufacturer_model"],
        protocol_name=row["protocol_name"],
        sex=Sex(row["sex"]),
        age_years=row["age_years"],
        age_band=row["age_band"],
        raw_score=row["raw_score"],
        probability=row["probability"],
        decision=row["decision"],
        threshold=row["threshold"],
        descriptors=json.loads(row["descriptors"]) if features else None,
        embedding=tuple(row["embedding"]) if features else None,
        read_id=str(row["read_id"]) if row["read_id"] is not None else None,
        label=row["label"],
        outcome=Outcome(row["outcome"]) if row["outcome"] is not None else None,
        read_time=row["read_time"],
        read_count=row["read_count"] or 0,
    )


class PostgresLedgerQueries:
    """LedgerQueries over asyncpg."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Create the adapter.

        Args:
            pool: Connections to the ledger database.
        """
        self._pool = pool

    async def _fetch(self, sql: str, *values: Any) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self._pool.fetch(sql, *values)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        return rows

    async def window(self, spec: WindowSpec) -> LedgerWindow:
        columns = _WINDOW_COLUMNS + (_FEATURE_COLUMNS if spec.include_features else "")
        sql, values = window_query(spec, columns)
        rows = await self._fetch(sql, *values)
        return LedgerWindow(spec, tuple(_labelled_prediction(row, spec.include_features) for row in rows))

    async def maturity(self, spec: WindowSpec) -> Maturity:
        sql, values = window_query(spec, "prediction_id, event_time, label")
        (row,) = await self._fetch(f"select count(*) as n, count(label) as labelled from ({sql}) w", *values)  # noqa: S608
        return Maturity(row["n"], row["labelled"])

    async def served_twin_reads(
        self, model_name: str, model_version: str, start: datetime, end: datetime
    ) -> dict[str, tuple[int, datetime, str]]:
        """Reads of the served predictions that a version's shadow predictions in [start, end) are paired with.

        A shadow prediction is never returned, so no read names it; its study's read is recorded against the
        served prediction of the same request (``served_prediction_id``). The read's label is the study's, not
        the model's, so it labels the shadow prediction too (the outcome, agree/override, does not carry over).

        Returns:
            Shadow prediction id → (label, read time, read id) of the served twin's latest read.
        """
        rows = await self._fetch(
            "select s.prediction_id, t.label, t.read_time, t.read_id from ledger_predictions s "
            "join ledger_labelled_predictions t on t.prediction_id = s.served_prediction_id "
            "where s.model_name = $1 and s.model_version = $2 and s.arm = 'shadow' "
            "and s.event_time >= $3 and s.event_time < $4 and t.label is not null",
            model_name,
            model_version,
            start,
            end,
        )
        return {str(r["prediction_id"]): (int(r["label"]), r["read_time"], str(r["read_id"])) for r in rows}

    async def orphan_reads(self, limit: int = 100) -> list[OrphanRead]:
        rows = await self._fetch(
            "select read_id, prediction_id, read_time, recorded_at from ledger_orphan_reads "
            "order by recorded_at, read_id limit $1",
            limit,
        )
        return [
            OrphanRead(str(row["read_id"]), str(row["prediction_id"]), row["read_time"], row["recorded_at"])
            for row in rows
        ]

    async def counts(self) -> LedgerCounts:
        (row,) = await self._fetch(
            """
            select
                (select count(*) from ledger_predictions) as predictions,
                (select count(*) from ledger_reads) as reads,
                (select count(distinct r.prediction_id) from ledger_reads r
                    join ledger_predictions p using (prediction_id)) as labelled,
                (select count(*) from ledger_orphan_reads) as orphans,
                (select count(*) from ledger_rejects) as rejects
            """
        )
        return LedgerCounts(row["predictions"], row["reads"], row["labelled"], row["orphans"], row["rejects"])

    async def stored_offsets(self, group: str | None = None) -> list[StoredOffset]:
        rows = await self._fetch(
            "select consumer_group, topic, partition, next_offset, records, duplicates, rejected, updated_at "
            "from ledger_consumer_offsets where $1::text is null or consumer_group = $1 "
            "order by consumer_group, topic, partition",
            group,
        )
        return [
            StoredOffset(
                group=row["consumer_group"],
                topic=row["topic"],
                partition=row["partition"],
                next_offset=row["next_offset"],
                records=row["records"],
                duplicates=row["duplicates"],
                rejected=row["rejected"],
                updated_at=row["updated_at"],
            )
            for row in rows
        ]
