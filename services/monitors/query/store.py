"""Read-only queries over the monitor's own findings table, returning plain domain records."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

KINDS = ("drift", "calibration", "bias", "performance")
ARMS = ("stable", "canary", "shadow")
SEVERITIES = ("info", "warning", "breach")

_BIN_FEATURE = re.compile(r"^probability\[(?P<lo>[0-9.]+),(?P<hi>[0-9.]+)\)$")
_BIN_NOTE = re.compile(r"mean predicted (?P<mean>[0-9.]+)")


@dataclass(frozen=True)
class StoredFinding:
    """One row of ``monitor_findings``; ``statistics`` are the stored JSON objects."""

    finding_id: str
    kind: str
    model_name: str
    model_version: str
    arm: str
    window_start: datetime | None
    window_end: datetime | None
    window_count: int
    window_labelled: int
    severity: str
    summary: str
    spec_ref: str
    report_uri: str
    created_at: datetime
    statistics: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FindingsQuery:
    """Filters of a findings page; None matches everything."""

    model_name: str | None = None
    model_version: str | None = None
    kind: str | None = None
    arm: str | None = None
    min_severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0
    with_statistics: bool = True


@dataclass(frozen=True)
class SeriesQuery:
    """One statistic of one target over a time range."""

    model_name: str
    model_version: str
    arm: str
    kind: str
    metric: str
    subgroup: str = ""
    feature: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


@dataclass(frozen=True)
class SeriesPoint:
    """One window's value of a statistic."""

    finding_id: str
    window_start: datetime | None
    window_end: datetime | None
    created_at: datetime
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int | None
    severity: str


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability diagram."""

    lower: float
    upper: float
    mean_predicted: float
    observed_rate: float
    ci_low: float | None
    ci_high: float | None
    count: int


class Connection(Protocol):
    """What the store needs of an asyncpg pool."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...


_COLUMNS = (
    "finding_id::text as finding_id, kind, model_name, model_version, arm, window_start, window_end, window_count, "
    "window_labelled, severity, summary, spec_ref, report_uri, created_at"
)


def _finding(row: Any, with_statistics: bool) -> StoredFinding:
    stats: list[dict[str, Any]] = []
    if with_statistics and row.get("statistics") is not None:
        raw = row["statistics"]
        stats = json.loads(raw) if isinstance(raw, str) else list(raw)
    return StoredFinding(
        finding_id=row["finding_id"],
        kind=row["kind"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        arm=row["arm"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        window_count=row["window_count"],
        window_labelled=row["window_labelled"],
        severity=row["severity"],
        summary=row["summary"],
        spec_ref=row["spec_ref"],
        report_uri=row["report_uri"],
        created_at=row["created_at"],
        statistics=stats,
    )


def reliability_bins(finding: StoredFinding) -> list[Bin]:
    """The reliability diagram's bins stored in a calibration finding (``reliability_bin`` statistics)."""
    bins = []
    for stat in finding.statistics:
        if stat.get("name") != "reliability_bin":
            continue
        match = _BIN_FEATURE.match(str(stat.get("feature", "")))
        if match is None:
            continue
        mean = _BIN_NOTE.search(str(stat.get("note", "")))
        lower, upper = float(match["lo"]), float(match["hi"])
        bins.append(
            Bin(
                lower=lower,
                upper=upper,
                mean_predicted=float(mean["mean"]) if mean else (lower + upper) / 2,
                observed_rate=float(stat["value"]),
                ci_low=stat.get("ci_low"),
                ci_high=stat.get("ci_high"),
                count=int(stat.get("n") or 0),
            )
        )
    return sorted(bins, key=lambda b: b.lower)


class FindingsReader:
    """Findings, series and diagrams from ``monitor_findings`` (read-only)."""

    def __init__(self, pool: Connection) -> None:
        """Create the reader over the monitor's own pool."""
        self._pool = pool

    async def findings(self, query: FindingsQuery) -> list[StoredFinding]:
        """A page of findings, newest first (one more than ``limit`` when there is a next page)."""
        where: list[str] = ["true"]
        args: list[Any] = []
        for column, value in (
            ("model_name", query.model_name),
            ("model_version", query.model_version),
            ("kind", query.kind),
            ("arm", query.arm),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        if query.min_severity is not None:
            allowed = list(SEVERITIES[SEVERITIES.index(query.min_severity) :])
            args.append(allowed)
            where.append(f"severity = any(${len(args)}::text[])")
        if query.since is not None:
            args.append(query.since)
            where.append(f"created_at >= ${len(args)}")
        if query.until is not None:
            args.append(query.until)
            where.append(f"created_at < ${len(args)}")
        stats = ", statistics::text as statistics" if query.with_statistics else ""
        args.extend([query.limit + 1, query.offset])
        # Only fixed column names and $n placeholders are formatted in; every value is a parameter.
        sql = (
            f"select {_COLUMNS}{stats} from monitor_findings where {' and '.join(where)} "  # noqa: S608
            f"order by created_at desc, finding_id desc limit ${len(args) - 1} offset ${len(args)}"
        )
        rows = await self._pool.fetch(sql, *args)
        return [_finding(dict(row), query.with_statistics) for row in rows]

    async def finding(self, finding_id: str) -> StoredFinding | None:
        """One finding with its statistics."""
        row = await self._pool.fetchrow(
            f"select {_COLUMNS}, statistics::text as statistics from monitor_findings where finding_id = $1::uuid",  # noqa: S608
            finding_id,
        )
        return None if row is None else _finding(dict(row), True)

    async def latest(self, model_name: str, model_version: str, arm: str, kind: str) -> StoredFinding | None:
        """The newest finding of one kind for a version and arm."""
        row = await self._pool.fetchrow(
            f"select {_COLUMNS}, statistics::text as statistics from monitor_findings "  # noqa: S608
            "where model_name = $1 and model_version = $2 and arm = $3 and kind = $4 "
            "order by created_at desc limit 1",
            model_name,
            model_version,
            arm,
            kind,
        )
        return None if row is None else _finding(dict(row), True)

    async def series(self, query: SeriesQuery) -> list[SeriesPoint]:
        """The statistic's value per window, oldest first (the newest ``limit`` windows of the range)."""
        args: list[Any] = [
            query.model_name,
            query.model_version,
            query.arm,
            query.kind,
            query.metric,
            query.subgroup,
            query.feature,
        ]
        where = ""
        if query.since is not None:
            args.append(query.since)
            where += f" and f.created_at >= ${len(args)}"
        if query.until is not None:
            args.append(query.until)
            where += f" and f.created_at < ${len(args)}"
        args.append(query.limit)
        sql = (
            "select * from (select f.finding_id::text as finding_id, f.window_start, f.window_end, f.created_at, "  # noqa: S608
            "f.severity as finding_severity, s.value as stat from monitor_findings f "
            "cross join lateral jsonb_array_elements(f.statistics) s(value) "
            "where f.model_name = $1 and f.model_version = $2 and f.arm = $3 and f.kind = $4 "
            "and s.value->>'name' = $5 and coalesce(s.value->>'subgroup', '') = $6 "
            f"and coalesce(s.value->>'feature', '') = $7{where} "
            f"order by f.created_at desc limit ${len(args)}) newest order by created_at"
        )
        points = []
        for row in await self._pool.fetch(sql, *args):
            raw = row["stat"]
            stat = json.loads(raw) if isinstance(raw, str) else dict(raw)
            if stat.get("value") is None:
                continue
            points.append(
                SeriesPoint(
                    finding_id=row["finding_id"],
                    window_start=row["window_start"],
                    window_end=row["window_end"],
                    created_at=row["created_at"],
                    value=float(stat["value"]),
                    ci_low=stat.get("ci_low"),
                    ci_high=stat.get("ci_high"),
                    n=stat.get("n"),
                    severity=str(stat.get("severity") or row["finding_severity"]),
                )
            )
        return points


def read_report(uri: str, reports_dir: Path, max_bytes: int) -> bytes:
    """The bytes of a report the runner wrote into ``reports_dir`` (nothing outside that folder is read).

    Raises:
        FileNotFoundError: The URI is empty, outside the folder, or gone.
        ValueError: The report is larger than ``max_bytes``.
    """
    if not uri:
        raise FileNotFoundError("no report")
    path = Path(uri).resolve()
    root = reports_dir.resolve()
    if root not in path.parents or not path.is_file():
        raise FileNotFoundError("no report")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"report is {size} bytes, more than the {max_bytes} this service sends")
    return path.read_bytes()
