"""Monitor findings (the ``monitor_findings`` table the monitor runner writes) read for QueryFindings.

Pages run newest first on ``(created_at, finding_id)``; the page token is that key of the last row,
so a page never repeats or skips a row when new findings arrive between calls.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.runtime.errors import InvalidArgument, Unavailable
from services.runtime.postgres import DATABASE_DOWN

_KINDS: dict[int, str] = {
    events_pb2.MONITOR_KIND_DRIFT: "drift",
    events_pb2.MONITOR_KIND_CALIBRATION: "calibration",
    events_pb2.MONITOR_KIND_BIAS: "bias",
    events_pb2.MONITOR_KIND_PERFORMANCE: "performance",
}
_KIND_PROTO: dict[str, Any] = {text: kind for kind, text in _KINDS.items()}
_ARMS: dict[int, str] = {
    common_pb2.ARM_STABLE: "stable",
    common_pb2.ARM_CANARY: "canary",
    common_pb2.ARM_SHADOW: "shadow",
}
_ARM_PROTO: dict[str, Any] = {text: arm for arm, text in _ARMS.items()}
_SEVERITY_RANK = {"info": 1, "warning": 2, "breach": 3}
_SEVERITY_PROTO: dict[str, Any] = {
    "info": events_pb2.SEVERITY_INFO,
    "warning": events_pb2.SEVERITY_WARNING,
    "breach": events_pb2.SEVERITY_BREACH,
}

_QUERY = """
select finding_id::text as finding_id, kind, model_name, model_version, arm, window_start, window_end,
       window_count, window_labelled, severity, summary, statistics::text as statistics, spec_ref, report_uri,
       created_at
from monitor_findings
where ($1::text is null or model_name = $1)
  and ($2::text is null or model_version = $2)
  and ($3::text is null or kind = $3)
  and ($4::text is null or arm = $4)
  and severity = any($5::text[])
  and ($6::timestamptz is null or window_end >= $6)
  and ($7::timestamptz is null or window_end < $7)
  and ($8::timestamptz is null or (created_at, finding_id) < ($8, $9::uuid))
order by created_at desc, finding_id desc
limit $10
"""


@dataclass(frozen=True)
class FindingsFilter:
    """What QueryFindings asks for, validated."""

    model_name: str | None
    model_version: str | None
    kind: str | None
    arm: str | None
    min_severity: str
    since: datetime | None
    until: datetime | None
    page_size: int
    page_token: str


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _statistic(raw: dict[str, object]) -> events_pb2.Statistic:
    message = events_pb2.Statistic(
        name=str(raw.get("name", "")),
        value=_float(raw.get("value")) or 0.0,
        test=str(raw.get("test") or ""),
        adjustment=str(raw.get("adjustment") or ""),
        subgroup=str(raw.get("subgroup") or ""),
        feature=str(raw.get("feature") or ""),
        breached=raw.get("severity") == "breach",
    )
    for field in ("ci_low", "ci_high", "ci_level", "p_value", "p_value_adjusted", "limit"):
        value = _float(raw.get(field))
        if value is not None:
            setattr(message, field, value)
    return message


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(float(value)):
        return float(value)
    return None


def encode_token(created_at: datetime, finding_id: str) -> str:
    """Page token for the key of the last row of a page."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{finding_id}".encode()).decode()


def decode_token(token: str) -> tuple[datetime, str]:
    """The key a page token holds.

    Raises:
        InvalidArgument: The token was not made by :func:`encode_token`.
    """
    try:
        moment, _, finding_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(moment), finding_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "not a token from a previous page") from None


class PostgresFindings:
    """Reads findings for the Governance API."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Create the reader over a pool on the database holding ``monitor_findings``."""
        self._pool = pool

    async def query(self, query: FindingsFilter) -> tuple[list[events_pb2.Finding], str]:
        """One page of findings, newest first, and the next page's token ("" on the last page).

        Raises:
            InvalidArgument: A bad page token.
            Unavailable: PostgreSQL cannot be reached, or the monitors' tables are missing.
        """
        after_time: datetime | None = None
        after_id: str | None = None
        if query.page_token:
            after_time, after_id = decode_token(query.page_token)
        rank = _SEVERITY_RANK.get(query.min_severity, 0)
        severities = [name for name, level in _SEVERITY_RANK.items() if level >= rank]
        try:
            rows = await self._pool.fetch(
                _QUERY,
                query.model_name,
                query.model_version,
                query.kind,
                query.arm,
                severities,
                query.since,
                query.until,
                after_time,
                after_id,
                query.page_size + 1,
            )
        except asyncpg.exceptions.UndefinedTableError as error:
            raise Unavailable("postgres", "the monitors' findings table does not exist in this database") from error
        except DATABASE_DOWN as error:
            raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
        more = len(rows) > query.page_size
        rows = rows[: query.page_size]
        findings = [self._finding(row) for row in rows]
        token = encode_token(rows[-1]["created_at"], rows[-1]["finding_id"]) if more and rows else ""
        return findings, token

    @staticmethod
    def _finding(row: asyncpg.Record) -> events_pb2.Finding:
        window = events_pb2.Window(count=row["window_count"], labelled_count=row["window_labelled"])
        if (start := _timestamp(row["window_start"])) is not None:
            window.start.CopyFrom(start)
        if (end := _timestamp(row["window_end"])) is not None:
            window.end.CopyFrom(end)
        statistics = json.loads(row["statistics"]) if row["statistics"] else []
        meta = common_pb2.EventMeta(schema_version=1, event_id=row["finding_id"], producer="monitors")
        if (created := _timestamp(row["created_at"])) is not None:
            meta.event_time.CopyFrom(created)
        return events_pb2.Finding(
            meta=meta,
            finding_id=row["finding_id"],
            kind=_KIND_PROTO.get(row["kind"], events_pb2.MONITOR_KIND_UNSPECIFIED),
            model=common_pb2.ModelRef(model_name=row["model_name"], model_version=row["model_version"]),
            arm=_ARM_PROTO.get(row["arm"], common_pb2.ARM_UNSPECIFIED),
            window=window,
            severity=_SEVERITY_PROTO.get(row["severity"], events_pb2.SEVERITY_UNSPECIFIED),
            summary=row["summary"],
            statistics=[_statistic(s) for s in statistics if isinstance(s, dict)],
            report_uri=row["report_uri"],
            spec_ref=row["spec_ref"],
        )


def kind_name(kind: int, field: str = "kind") -> str | None:
    """Table value of a MonitorKind (None for unspecified).

    Raises:
        InvalidArgument: A value the contract does not define (never read as "no filter").
    """
    if kind == 0:
        return None
    if kind not in _KINDS:
        raise InvalidArgument(field, f"unknown value {kind}")
    return _KINDS[kind]


def arm_name(arm: int, field: str = "arm") -> str | None:
    """Table value of an Arm (None for unspecified).

    Raises:
        InvalidArgument: A value the contract does not define.
    """
    if arm == 0:
        return None
    if arm not in _ARMS:
        raise InvalidArgument(field, f"unknown value {arm}")
    return _ARMS[arm]


def severity_name(severity: int, field: str = "min_severity") -> str:
    """Table value of a minimum Severity ("" for unspecified: every severity).

    Raises:
        InvalidArgument: A value the contract does not define.
    """
    if severity == 0:
        return ""
    names = {proto: name for name, proto in _SEVERITY_PROTO.items()}
    if severity not in names:
        raise InvalidArgument(field, f"unknown value {severity}")
    return names[severity]
