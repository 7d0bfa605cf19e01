"""``radguard.monitoring.v1.MonitoringQuery``: protobuf in, a findings read, protobuf out."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from radguard.monitoring.v1 import monitoring_pb2 as pb
from radguard.monitoring.v1 import monitoring_pb2_grpc
from services.monitors.query.store import (
    ARMS,
    KINDS,
    SEVERITIES,
    Connection,
    FindingsQuery,
    FindingsReader,
    SeriesQuery,
    StoredFinding,
    read_report,
    reliability_bins,
)
from services.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from services.runtime.server import RadguardServer

MONITORING_QUERY_SERVICE = "radguard.monitoring.v1.MonitoringQuery"
DEFAULT_PAGE = 50
MAX_PAGE = 500
DEFAULT_SERIES = 500
MAX_SERIES = 5000
#: Reports above this size are refused (an Evidently page is about 5 MB; clients must accept that much).
MAX_REPORT_BYTES = 16_000_000
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_TEXT_LIMIT = 200


def _name(value: str, field: str, *, required: bool = False) -> str | None:
    if not value:
        if required:
            raise InvalidArgument(field, "required")
        return None
    if not _NAME.match(value):
        raise InvalidArgument(field, "must be 1-128 letters, digits, '_', '.' or '-'")
    return value


def _choice(value: str, field: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
    if not value:
        if required:
            raise InvalidArgument(field, "required")
        return None
    if value not in choices:
        raise InvalidArgument(field, f"must be one of {', '.join(choices)}, got {value[:40]!r}")
    return value


def _text(value: str, field: str) -> str:
    if len(value) > _TEXT_LIMIT or any(ord(c) < 32 for c in value):
        raise InvalidArgument(field, f"must be at most {_TEXT_LIMIT} printable characters")
    return value


def _time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    if not -62135596800 <= stamp.seconds <= 253402300799:
        raise InvalidArgument(name, "must be within years 1-9999")
    return stamp.ToDatetime(tzinfo=UTC)


def _uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(field, "must be a finding id (a UUID)") from None


def _stamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _statistic(raw: dict[str, Any]) -> pb.Statistic:
    stat = pb.Statistic(
        name=str(raw.get("name", "")),
        value=float(raw.get("value") or 0.0),
        test=str(raw.get("test") or ""),
        adjustment=str(raw.get("adjustment") or ""),
        subgroup=str(raw.get("subgroup") or ""),
        feature=str(raw.get("feature") or ""),
        severity=str(raw.get("severity") or "info"),
        note=str(raw.get("note") or ""),
    )
    for key in ("ci_low", "ci_high", "ci_level", "p_value", "p_value_adjusted", "limit"):
        if raw.get(key) is not None:
            setattr(stat, key, float(raw[key]))
    if raw.get("n") is not None:
        stat.n = int(raw["n"])
    return stat


def finding_to_proto(finding: StoredFinding) -> pb.Finding:
    """The wire form of a stored finding."""
    return pb.Finding(
        finding_id=finding.finding_id,
        kind=finding.kind,
        model_name=finding.model_name,
        model_version=finding.model_version,
        arm=finding.arm,
        window_start=_stamp(finding.window_start),
        window_end=_stamp(finding.window_end),
        window_count=finding.window_count,
        window_labelled=finding.window_labelled,
        severity=finding.severity,
        summary=finding.summary,
        statistics=[_statistic(s) for s in finding.statistics],
        spec_ref=finding.spec_ref,
        has_report=bool(finding.report_uri),
        created_at=_stamp(finding.created_at),
    )


class MonitoringQueryServicer(monitoring_pb2_grpc.MonitoringQueryServicer):
    """Read-only evidence queries over the monitor's findings."""

    def __init__(self, reader: FindingsReader, reports_dir: Path) -> None:
        """Create the servicer over a reader and the folder the runner writes its reports into."""
        self._reader = reader
        self._reports = reports_dir

    async def QueryFindings(self, request: pb.QueryFindingsRequest, context: Any) -> pb.QueryFindingsResponse:
        """A page of findings, newest first."""
        size = request.page_size or DEFAULT_PAGE
        if size > MAX_PAGE:
            raise InvalidArgument("page_size", f"must be at most {MAX_PAGE}")
        offset = 0
        if request.page_token:
            if not request.page_token.isdigit() or len(request.page_token) > 9:
                raise InvalidArgument("page_token", "is not a token this service issued")
            offset = int(request.page_token)
        query = FindingsQuery(
            model_name=_name(request.model_name, "model_name"),
            model_version=_name(request.model_version, "model_version"),
            kind=_choice(request.kind, "kind", KINDS),
            arm=_choice(request.arm, "arm", ARMS),
            min_severity=_choice(request.min_severity, "min_severity", SEVERITIES),
            since=_time(request, "since"),
            until=_time(request, "until"),
            limit=size,
            offset=offset,
            with_statistics=not request.omit_statistics,
        )
        found = await self._reader.findings(query)
        token = str(offset + size) if len(found) > size else ""
        return pb.QueryFindingsResponse(findings=[finding_to_proto(f) for f in found[:size]], next_page_token=token)

    async def GetMetricSeries(self, request: pb.GetMetricSeriesRequest, context: Any) -> pb.GetMetricSeriesResponse:
        """One statistic per window, oldest first."""
        limit = request.limit or DEFAULT_SERIES
        if limit > MAX_SERIES:
            raise InvalidArgument("limit", f"must be at most {MAX_SERIES}")
        query = SeriesQuery(
            model_name=str(_name(request.model_name, "model_name", required=True)),
            model_version=str(_name(request.model_version, "model_version", required=True)),
            arm=str(_choice(request.arm, "arm", ARMS, required=True)),
            kind=str(_choice(request.kind, "kind", KINDS, required=True)),
            metric=str(_name(request.metric, "metric", required=True)),
            subgroup=_text(request.subgroup, "subgroup"),
            feature=_text(request.feature, "feature"),
            since=_time(request, "since"),
            until=_time(request, "until"),
            limit=limit,
        )
        points = await self._reader.series(query)
        return pb.GetMetricSeriesResponse(
            points=[
                pb.SeriesPoint(
                    finding_id=p.finding_id,
                    window_start=_stamp(p.window_start),
                    window_end=_stamp(p.window_end),
                    created_at=_stamp(p.created_at),
                    value=p.value,
                    ci_low=p.ci_low,
                    ci_high=p.ci_high,
                    n=p.n,
                    severity=p.severity,
                )
                for p in points
            ]
        )

    async def GetReliabilityDiagram(
        self, request: pb.GetReliabilityDiagramRequest, context: Any
    ) -> pb.GetReliabilityDiagramResponse:
        """The reliability bins of one calibration finding."""
        if request.finding_id:
            finding = await self._reader.finding(_uuid(request.finding_id, "finding_id"))
            if finding is None or finding.kind != "calibration":
                raise NotFound(f"calibration finding {request.finding_id}")
        else:
            model = str(_name(request.model_name, "model_name", required=True))
            version = str(_name(request.model_version, "model_version", required=True))
            arm = str(_choice(request.arm, "arm", ARMS, required=True))
            finding = await self._reader.latest(model, version, arm, "calibration")
            if finding is None:
                raise NotFound(f"calibration finding of model '{model}' version '{version}' arm {arm}")
        return pb.GetReliabilityDiagramResponse(
            finding=finding_to_proto(finding),
            bins=[
                pb.ReliabilityBin(
                    lower=b.lower,
                    upper=b.upper,
                    mean_predicted=b.mean_predicted,
                    observed_rate=b.observed_rate,
                    ci_low=b.ci_low,
                    ci_high=b.ci_high,
                    count=b.count,
                )
                for b in reliability_bins(finding)
            ],
        )

    async def GetWindowReport(self, request: pb.GetWindowReportRequest, context: Any) -> pb.GetWindowReportResponse:
        """A finding's full report (Evidently HTML)."""
        finding_id = _uuid(request.finding_id, "finding_id")
        finding = await self._reader.finding(finding_id)
        if finding is None:
            raise NotFound(f"finding {finding_id}")
        try:
            content = read_report(finding.report_uri, self._reports, MAX_REPORT_BYTES)
        except FileNotFoundError:
            raise NotFound(f"report of finding {finding_id}") from None
        except ValueError as error:
            raise FailedPrecondition(str(error)) from None
        return pb.GetWindowReportResponse(media_type="text/html", content=content)


def register_query_service(server: RadguardServer, pool: Connection, reports_dir: Path) -> None:
    """Serve MonitoringQuery over the monitor's own pool on ``server``."""
    servicer = MonitoringQueryServicer(FindingsReader(pool), reports_dir)
    server.add_service(
        MONITORING_QUERY_SERVICE,
        lambda s: monitoring_pb2_grpc.add_MonitoringQueryServicer_to_server(servicer, s),
    )
