"""The findings table (``monitor_findings``), its outbox, the CUSUM charts and the window marks over asyncpg."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from kernel.topics import FINDINGS_TOPIC
from services.monitors.alerting.sequential import CusumParameters, CusumState
from services.monitors.core.findings import MonitorKind, Severity, Statistic
from services.monitors.runner.adapters.findings_kafka import finding_to_proto
from services.monitors.runner.adapters.findings_sql import RECENT_FINDINGS
from services.monitors.runner.ports import (
    BlockCursor,
    Chart,
    IssuedFinding,
    MonitorTarget,
    StoredFinding,
    WindowMark,
)
from services.runtime.errors import Unavailable
from services.runtime.postgres import DATABASE_DOWN

_INSERT = """
insert into monitor_findings (
    finding_id, kind, model_name, model_version, arm, window_start, window_end, window_count,
    window_labelled, severity, summary, statistics, spec_ref, report_uri, created_at
) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)
on conflict (finding_id) do nothing
"""

_RECENT = RECENT_FINDINGS

_MARK = """
select window_count, window_labelled, last_event_time, last_prediction_id
from monitor_window_marks
where model_name = $1 and model_version = $2 and arm = $3
"""

_SAVE_MARK = """
insert into monitor_window_marks (
    model_name, model_version, arm, window_count, window_labelled, last_event_time, last_prediction_id
) values ($1, $2, $3, $4, $5, $6, $7)
on conflict (model_name, model_version, arm) do update set
    window_count = excluded.window_count,
    window_labelled = excluded.window_labelled,
    last_event_time = excluded.last_event_time,
    last_prediction_id = excluded.last_prediction_id,
    updated_at = now()
"""


_OUTBOX = """
insert into monitor_findings_outbox (event_id, topic, key, payload) values ($1, $2, $3, $4)
"""

_CHARTS = """
select kind, statistic, steps, alarms, since_alarm, scopes, last_event_time, last_prediction_id, cusum_k, cusum_h,
    reference
from monitor_sequential_state
where model_name = $1 and model_version = $2 and arm = $3
"""

_SAVE_CHART = """
insert into monitor_sequential_state (
    model_name, model_version, arm, kind, statistic, steps, alarms, since_alarm, cusum_k, cusum_h,
    last_event_time, last_prediction_id, scopes, reference
) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
on conflict (model_name, model_version, arm, kind) do update set
    statistic = excluded.statistic,
    steps = excluded.steps,
    alarms = excluded.alarms,
    since_alarm = excluded.since_alarm,
    cusum_k = excluded.cusum_k,
    cusum_h = excluded.cusum_h,
    last_event_time = excluded.last_event_time,
    last_prediction_id = excluded.last_prediction_id,
    scopes = excluded.scopes,
    reference = excluded.reference,
    updated_at = now()
"""


def statistics_json(statistics: tuple[Statistic, ...]) -> str:
    """The statistics as a JSON array of objects (field names as in the domain type; NaN becomes null)."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):  # NaN is not JSON
            return None
        return value.value if isinstance(value, Severity) else value

    rows = [{key: plain(value) for key, value in dataclasses.asdict(stat).items()} for stat in statistics]
    return json.dumps(rows, allow_nan=False)


class PostgresFindingStore:
    """FindingStore over an asyncpg pool (the runner's and the CLI's)."""

    def __init__(self, pool: asyncpg.Pool, *, topic: str = FINDINGS_TOPIC, producer: str = "monitor-runner") -> None:
        """Create the adapter.

        Args:
            pool: Connections to the database holding ``monitor_findings``.
            topic: Where the outbox rows of new findings are to be published.
            producer: ``<service>/<instance>`` stamped on their events.
        """
        self._pool = pool
        self._topic = topic
        self._producer = producer

    def _finding_args(self, issued: IssuedFinding) -> tuple[Any, ...]:
        finding = issued.finding
        return (
            issued.finding_id,
            finding.kind.value,
            finding.model_name,
            finding.model_version,
            finding.arm,
            finding.start,
            finding.end,
            finding.maturity.total,
            finding.maturity.labelled,
            finding.severity.value,
            finding.summary,
            statistics_json(finding.statistics),
            finding.spec_ref,
            finding.report_uri,
            issued.issued_at,
        )

    async def charts(self, target: MonitorTarget) -> tuple[BlockCursor | None, dict[MonitorKind, Chart]]:
        try:
            rows = await self._pool.fetch(_CHARTS, target.model_name, target.model_version, target.arm)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        states = {
            MonitorKind(row["kind"]): Chart(
                CusumState(
                    row["statistic"],
                    row["steps"],
                    row["alarms"],
                    row["since_alarm"],
                    tuple(sorted((str(scope), float(value)) for scope, value in json.loads(row["scopes"]).items())),
                ),
                CusumParameters(row["cusum_k"], row["cusum_h"]),
                row["reference"],
            )
            for row in rows
        }
        # Every chart of a target moves with the same block, so any row's cursor is the target's; the newest
        # one wins should a monitor have been added later.
        marked = [row for row in rows if row["last_event_time"] is not None]
        if not marked:
            return None, states
        newest = max(marked, key=lambda row: (row["last_event_time"], row["last_prediction_id"]))
        return BlockCursor(newest["last_event_time"], newest["last_prediction_id"]), states

    async def commit_block(
        self,
        target: MonitorTarget,
        cursor: BlockCursor,
        findings: Sequence[IssuedFinding],
        charts: Mapping[MonitorKind, Chart],
    ) -> None:
        events = [
            (
                uuid.UUID(issued.finding_id),
                self._topic,
                issued.finding.model_name.encode("utf-8"),
                finding_to_proto(issued, self._producer).SerializeToString(),
            )
            for issued in findings
        ]
        chart_rows = [
            (
                target.model_name,
                target.model_version,
                target.arm,
                kind.value,
                chart.state.statistic,
                chart.state.steps,
                chart.state.alarms,
                chart.state.since_alarm,
                chart.parameters.k,
                chart.parameters.h,
                cursor.last_event_time,
                cursor.last_prediction_id,
                json.dumps(dict(chart.state.scopes)),
                chart.reference,
            )
            for kind, chart in charts.items()
        ]
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                if findings:
                    await connection.executemany(_INSERT, [self._finding_args(issued) for issued in findings])
                    await connection.executemany(_OUTBOX, events)
                if chart_rows:
                    await connection.executemany(_SAVE_CHART, chart_rows)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error

    async def save(self, issued: IssuedFinding) -> bool:
        try:
            status: str = await self._pool.execute(_INSERT, *self._finding_args(issued))
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        return status.endswith(" 1")

    async def recent(
        self, *, model_name: str | None = None, severity: Severity | None = None, limit: int = 20
    ) -> list[StoredFinding]:
        try:
            rows = await self._pool.fetch(_RECENT, model_name, severity.value if severity else None, limit)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        return [
            StoredFinding(
                finding_id=row["finding_id"],
                kind=MonitorKind(row["kind"]),
                model_name=row["model_name"],
                model_version=row["model_version"],
                arm=row["arm"],
                severity=Severity(row["severity"]),
                summary=row["summary"],
                window_count=row["window_count"],
                window_labelled=row["window_labelled"],
                report_uri=row["report_uri"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def window_mark(self, model_name: str, model_version: str, arm: str) -> WindowMark | None:
        try:
            row = await self._pool.fetchrow(_MARK, model_name, model_version, arm)
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        if row is None:
            return None
        return WindowMark(
            count=row["window_count"],
            labelled=row["window_labelled"],
            last_event_time=row["last_event_time"],
            last_prediction_id=row["last_prediction_id"],
        )

    async def save_window_mark(self, model_name: str, model_version: str, arm: str, mark: WindowMark) -> None:
        try:
            await self._pool.execute(
                _SAVE_MARK,
                model_name,
                model_version,
                arm,
                mark.count,
                mark.labelled,
                mark.last_event_time,
                mark.last_prediction_id,
            )
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
