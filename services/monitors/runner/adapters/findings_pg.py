"""The findings table (``monitor_findings``) and the window marks (``monitor_window_marks``) over asyncpg."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import asyncpg

from services.monitors.core.findings import MonitorKind, Severity, Statistic
from services.monitors.runner.ports import IssuedFinding, StoredFinding, WindowMark
from services.runtime.errors import Unavailable
from services.runtime.postgres import DATABASE_DOWN

_INSERT = """
insert into monitor_findings (
    finding_id, kind, model_name, model_version, arm, window_start, window_end, window_count,
    window_labelled, severity, summary, statistics, spec_ref, report_uri, created_at
) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)
on conflict (finding_id) do nothing
"""

_RECENT = """
select finding_id::text as finding_id, kind, model_name, model_version, arm, severity, summary, window_count,
       window_labelled, report_uri, created_at
from monitor_findings
where ($1::text is null or model_name = $1) and ($2::text is null or severity = $2)
order by created_at desc, finding_id desc
limit $3
"""

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

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Create the adapter.

        Args:
            pool: Connections to the database holding ``monitor_findings``.
        """
        self._pool = pool

    async def save(self, issued: IssuedFinding) -> bool:
        finding = issued.finding
        try:
            status: str = await self._pool.execute(
                _INSERT,
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
