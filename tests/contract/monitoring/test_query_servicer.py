"""radguard.monitoring.v1 on a real grpc.aio server (port 0) over a fake findings reader: answers and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from radguard.monitoring.v1 import monitoring_pb2 as pb
from radguard.monitoring.v1 import monitoring_pb2_grpc
from services.monitors.query.servicer import MonitoringQueryServicer
from services.monitors.query.store import FindingsQuery, SeriesPoint, SeriesQuery, StoredFinding
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.server import RadguardServer

pytestmark = pytest.mark.asyncio(loop_scope="session")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
FID = "01900000-0000-7000-8000-000000000001"


def _finding(kind: str = "calibration") -> StoredFinding:
    stats = [
        {"name": "ece", "value": 0.04, "ci_low": 0.02, "ci_high": 0.06, "ci_level": 0.95, "severity": "info", "n": 300},
        {"name": "reliability_bin", "value": 0.2, "ci_low": 0.1, "ci_high": 0.3, "n": 40,
         "feature": "probability[0.10,0.20)", "note": "mean predicted 0.150"},
    ]  # fmt: skip
    return StoredFinding(FID, kind, "chest_nodule", "2", "canary", NOW, NOW, 300, 300, "info", "ok", "calibration@1",
                         "", NOW, stats)  # fmt: skip


class FakeReader:
    def __init__(self) -> None:
        self.queries: list[object] = []

    async def findings(self, query: FindingsQuery) -> list[StoredFinding]:
        self.queries.append(query)
        return [_finding()] * (query.limit + 1)

    async def finding(self, finding_id: str) -> StoredFinding | None:
        return _finding() if finding_id == FID else None

    async def latest(self, model_name: str, model_version: str, arm: str, kind: str) -> StoredFinding | None:
        return None

    async def series(self, query: SeriesQuery) -> list[SeriesPoint]:
        self.queries.append(query)
        return [SeriesPoint(FID, NOW, NOW, NOW, 0.04, 0.02, 0.06, 300, "info")]


@pytest_asyncio.fixture(loop_scope="session")
async def stub(tmp_path: Path) -> AsyncIterator[tuple[monitoring_pb2_grpc.MonitoringQueryStub, FakeReader]]:
    env = {"RADGUARD_GRPC_HOST": "127.0.0.1", "RADGUARD_GRPC_PORT": "0", "RADGUARD_METRICS_ENABLED": "false"}
    server = RadguardServer(load_settings(ServiceSettings, env))
    reader = FakeReader()
    servicer = MonitoringQueryServicer(reader, tmp_path)  # type: ignore[arg-type]
    server.add_service(
        "radguard.monitoring.v1.MonitoringQuery",
        lambda s: monitoring_pb2_grpc.add_MonitoringQueryServicer_to_server(servicer, s),
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield monitoring_pb2_grpc.MonitoringQueryStub(channel), reader
    await server.stop(0)


async def test_findings_page_carries_statistics_and_a_next_token(stub: tuple) -> None:
    client, reader = stub
    reply = await client.QueryFindings(
        pb.QueryFindingsRequest(model_name="chest_nodule", kind="calibration", page_size=2)
    )
    assert len(reply.findings) == 2 and reply.next_page_token == "2"
    ece = reply.findings[0].statistics[0]
    assert (ece.name, ece.value, ece.ci_low, ece.ci_high, ece.n) == ("ece", 0.04, 0.02, 0.06, 300)
    assert reader.queries[-1].kind == "calibration" and reader.queries[-1].model_name == "chest_nodule"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.QueryFindingsRequest(kind="weather"), "kind"),
        (pb.QueryFindingsRequest(arm="left"), "arm"),
        (pb.QueryFindingsRequest(min_severity="loud"), "min_severity"),
        (pb.QueryFindingsRequest(model_name="bad name!"), "model_name"),
        (pb.QueryFindingsRequest(page_size=100000), "page_size"),
        (pb.QueryFindingsRequest(page_token="abc"), "page_token"),
    ],
)
async def test_bad_findings_filters_name_their_field(
    stub: tuple, request_: pb.QueryFindingsRequest, field: str
) -> None:
    client, _ = stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.QueryFindings(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in (caught.value.details() or "")


async def test_series_requires_its_target_and_answers_points(stub: tuple) -> None:
    client, _ = stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.GetMetricSeries(pb.GetMetricSeriesRequest(model_name="chest_nodule", model_version="2"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "arm" in (caught.value.details() or "")
    reply = await client.GetMetricSeries(
        pb.GetMetricSeriesRequest(model_name="chest_nodule", model_version="2", arm="canary", kind="calibration",
                                  metric="ece")
    )  # fmt: skip
    assert [(p.value, p.ci_low, p.ci_high) for p in reply.points] == [(0.04, 0.02, 0.06)]


async def test_reliability_bins_and_missing_things(stub: tuple) -> None:
    client, _ = stub
    reply = await client.GetReliabilityDiagram(pb.GetReliabilityDiagramRequest(finding_id=FID))
    assert [(b.lower, b.upper, b.mean_predicted, b.observed_rate, b.count) for b in reply.bins] == [
        (0.1, 0.2, 0.15, 0.2, 40)
    ]
    for request in (
        pb.GetReliabilityDiagramRequest(model_name="chest_nodule", model_version="2", arm="stable"),
        pb.GetReliabilityDiagramRequest(finding_id="01900000-0000-7000-8000-0000000000ff"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.GetReliabilityDiagram(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.GetWindowReport(pb.GetWindowReportRequest(finding_id=FID))  # it names no report
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.GetWindowReport(pb.GetWindowReportRequest(finding_id="not-a-uuid"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "finding_id" in (caught.value.details() or "")


async def test_a_report_inside_the_reports_folder_is_sent(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    page = reports / "drift.html"
    page.write_text("<html>evidently</html>")

    class WithReport(FakeReader):
        async def finding(self, finding_id: str) -> StoredFinding | None:
            found = _finding("drift")
            return StoredFinding(**{**found.__dict__, "report_uri": str(page)})

    env = {"RADGUARD_GRPC_HOST": "127.0.0.1", "RADGUARD_GRPC_PORT": "0", "RADGUARD_METRICS_ENABLED": "false"}
    server = RadguardServer(load_settings(ServiceSettings, env))
    servicer = MonitoringQueryServicer(WithReport(), reports)  # type: ignore[arg-type]
    server.add_service(
        "radguard.monitoring.v1.MonitoringQuery",
        lambda s: monitoring_pb2_grpc.add_MonitoringQueryServicer_to_server(servicer, s),
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = await monitoring_pb2_grpc.MonitoringQueryStub(channel).GetWindowReport(
                pb.GetWindowReportRequest(finding_id=FID)
            )
    finally:
        await server.stop(0)
    assert (reply.media_type, reply.content) == ("text/html", b"<html>evidently</html>")
