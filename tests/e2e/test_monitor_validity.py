"""The monitors are right in the running system: simulator → gateway → Kafka → ledger → runner → findings.

Simulated studies go through a real in-process gateway to the real Triton (chest_nodule v2, stable, routed on
the shared routes topic); predictions reach the test's database through Kafka and the real ledger writer, and
each answer is followed by the simulated radiologist's read (reads, never ground truth, are the labels).
The runner follows the routes topic (it is told no version), judges consecutive blocks of 250 predictions
with all four monitors (drift, calibration, bias, performance) and their scoped CUSUM charts, and publishes
findings through its outbox. The planted changes are this suite's own scenarios (``bench/scenarios/``):

- a healthy hospital: no breach from any monitor;
- a silent gain change of one site's scanner: a drift breach that names that site and no other;
- a blurrier, noisier detector at another site (not a gain change): a drift breach for that site's chart;
- a wrong temperature in one gateway's ``calibration.json``: a calibration breach on the first block;
- a model failure in men aged 50-69: a bias breach whose chart names that subgroup (or one containing it);
- half the prevalence with the model unchanged: no calibration, performance or bias breach;
- older patients: a drift breach on the case mix (``patient.age_band``).

CI sizes; the targets' larger matrix (detection power and delay over many simulated hospitals) is
``bench/monitor_validity.py``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from kafka.admin import KafkaAdminClient

from radguard.events.v1 import events_pb2
from services.gateway.app import Gateway, build_gateway, start_gateway
from services.monitors.ledger.app import LedgerProcess
from services.monitors.runner.app import MonitorRunner, build_monitor_runner
from services.monitors.runner.ports import IssuedFinding, MonitorTarget
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import load_settings
from services.runtime.kafka import ensure_topics
from sim import Hospital, load_scenario
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.e2e.traffic import MODEL, Traffic, ledger_counts, wait_ledger
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import gateway_settings, set_route
from tests.integration.ledger.conftest import Topics, ledger_dsn, start_writer, writer_env  # noqa: F401 - fixture
from tests.integration.monitors.test_monitor_run import consume_findings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(420)]

VERSION = "2"
BLOCK = 250
SCENARIOS = REPO_ROOT / "bench" / "scenarios"


@pytest.fixture
def validity_findings_topic(stack: StackEndpoints) -> Iterator[str]:
    """The test's own findings topic."""
    name = f"validity.{uuid.uuid4().hex[:10]}.findings"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, 1)])
    yield name
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="validity-tests")
    try:
        admin.delete_topics([name], timeout_ms=10_000)
    except Exception:
        pass  # best effort: uniquely named
    finally:
        admin.close()


@dataclass
class Loop:
    """What one test drives: a gateway, the ledger writer on the test's database, and the runner."""

    gateway: Gateway
    topics: Topics
    dsn: str
    runner: MonitorRunner
    findings_topic: str


@pytest_asyncio.fixture(loop_scope="session")
async def loop(
    stack: StackEndpoints,
    gateways: list[Gateway],
    e2e_topics: Topics,
    ledger_dsn: str,  # noqa: F811 - the fixture imported above
    validity_findings_topic: str,
    tmp_path: Path,
) -> AsyncIterator[Loop]:
    """v2 routed as stable; a ledger writer and a route-following runner on the test's database."""
    await set_route(gateways[0], stack.kafka_bootstrap, MODEL, VERSION)
    writer: LedgerProcess = await start_writer(writer_env(stack, ledger_dsn, e2e_topics))
    env = {
        "RADGUARD_POSTGRES_DSN": ledger_dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_FINDINGS_TOPIC": validity_findings_topic,
        "RADGUARD_MONITOR_KINDS": '["drift", "calibration", "bias", "performance"]',
        "RADGUARD_MONITOR_MODEL_REPO": str(REPO_ROOT / "model_repo"),
        "RADGUARD_MONITOR_REPORTS_DIR": str(tmp_path / "reports"),
        "RADGUARD_MONITOR_BLOCK_SIZE": str(BLOCK),
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
    }
    runner = await build_monitor_runner(load_settings(MonitorRunnerSettings, env))
    try:
        yield Loop(gateways[0], e2e_topics, ledger_dsn, runner, validity_findings_topic)
    finally:
        await runner.close()
        await writer.stop()


async def _run(
    loop: Loop, stack: StackEndpoints, scenario: str, seed: int, studies: int, gateway: Gateway | None = None
) -> list[IssuedFinding]:
    traffic = Traffic(
        Hospital(load_scenario(scenario), seed=seed),
        f"127.0.0.1:{(gateway or loop.gateway).server.port}",
        stack.kafka_bootstrap,
        loop.topics.reads,
        concurrency=8,
    )
    for _ in range(studies // 100):
        await traffic.send(100)
    assert traffic.answered == {("stable", VERSION): studies}
    await wait_ledger(loop.dsn, "stable", VERSION, studies, timeout_s=60)
    await _wait_reads(loop.dsn, studies)
    # The runner was told no version: it monitors v2 because the routes topic says it is served.
    assert MonitorTarget(MODEL, VERSION, "stable") in loop.runner.targets.targets()
    issued = await loop.runner.run_once()
    mine = [item for item in issued if item.finding.model_version == VERSION]
    for kind in ("drift", "calibration", "bias", "performance"):
        assert [item.finding.maturity.total for item in _by_kind(mine, kind)] == [BLOCK] * (studies // BLOCK), kind
    return mine


async def _wait_reads(dsn: str, studies: int, timeout_s: float = 60.0) -> None:
    """Wait until every prediction of v2 has its read in the ledger (the label monitors judge reads)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        _, read = (await ledger_counts(dsn)).get(("stable", VERSION), (0, 0))
        if read >= studies:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{read} of {studies} predictions have their read"
        await asyncio.sleep(0.2)


def _by_kind(issued: list[IssuedFinding], kind: str) -> list[IssuedFinding]:
    return [item for item in issued if item.finding.kind.value == kind]


def _breaches(issued: list[IssuedFinding], kind: str) -> list[IssuedFinding]:
    return [item for item in _by_kind(issued, kind) if item.finding.severity.value == "breach"]


async def _published(loop: Loop, stack: StackEndpoints, issued: list[IssuedFinding]) -> set[str]:
    deadline = asyncio.get_running_loop().time() + 30
    while await loop.runner.relay.pending() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    records = await asyncio.to_thread(consume_findings, stack.kafka_bootstrap, loop.findings_topic, len(issued))
    return {events_pb2.Finding.FromString(value).finding_id for _, value in records}


async def test_a_healthy_hospital_gives_no_breach(loop: Loop, stack: StackEndpoints) -> None:
    issued = await _run(loop, stack, "baseline", seed=101, studies=1000)
    assert {item.finding.kind.value for item in issued} == {"drift", "calibration", "bias", "performance"}
    breaches = [item.finding.summary for item in issued if item.finding.severity.value == "breach"]
    assert breaches == []
    charts = [item.finding.chart for item in issued]
    assert all(chart is not None and chart.limit is not None and chart.value <= chart.limit for chart in charts)
    # The label monitors judged reads: every block of 250 had them.
    assert all(item.finding.maturity.labelled == BLOCK for item in _by_kind(issued, "calibration"))
    assert await _published(loop, stack, issued) == {item.finding_id for item in issued}


async def test_a_silent_gain_change_at_one_site_is_a_breach_for_that_site(loop: Loop, stack: StackEndpoints) -> None:
    issued = await _run(loop, stack, str(SCENARIOS / "site_c_gain_drift.yaml"), seed=102, studies=500)
    breaches = [item for item in issued if item.finding.severity.value == "breach"]
    assert breaches, [item.finding.summary for item in issued]
    first = _by_kind(issued, "drift").index(breaches[0])
    print(f"\nsite-C gain drift (-1.0 SD): first breach on block {first + 1} ({(first + 1) * BLOCK} predictions)")
    for item in breaches:
        breached = [s for s in item.finding.statistics if s.severity.value == "breach" and s.name != "cusum"]
        # The evidence behind the alarm names site C (its stratum), never another site.
        sites = {s.subgroup for s in breached if s.subgroup}
        chart = item.finding.chart
        assert chart is not None
        assert sites == {"site=site-C"} or (not sites and chart.value > 0), sites
    drift = _by_kind(issued, "drift")
    assert [item for item in breaches if item.finding.kind.value != "drift"] == []
    # The chart that alarmed is site C's, or the whole window's (a 1-SD shift of a fifth of the traffic moves it
    # too); never another site's.
    scopes = {item.finding.chart.subgroup for item in breaches if item.finding.chart is not None}
    assert scopes and scopes <= {"site=site-C", ""}, scopes
    strongest = min(
        (s for item in drift for s in item.finding.statistics if s.p_value is not None and s.name != "cusum"),
        key=lambda s: s.p_value if s.p_value is not None else 1.0,
    )
    assert strongest.subgroup == "site=site-C", strongest
    assert await _published(loop, stack, issued) == {item.finding_id for item in issued}


async def test_a_blurrier_noisier_detector_at_one_site_is_a_drift_breach_for_that_site(
    loop: Loop, stack: StackEndpoints
) -> None:
    issued = await _run(loop, stack, str(SCENARIOS / "site_b_detector_blur.yaml"), seed=107, studies=1500)
    drift = _by_kind(issued, "drift")
    breaches = _breaches(issued, "drift")
    assert breaches, [item.finding.summary for item in drift]
    first = drift.index(breaches[0])
    print(f"\nsite-B detector blur and noise: first drift breach on block {first + 1} ({(first + 1) * BLOCK} studies)")
    scopes = {item.finding.chart.subgroup for item in breaches if item.finding.chart is not None}
    assert scopes and scopes <= {"site=site-B", ""}, scopes
    shifts = [s for item in drift for s in item.finding.select("mean_shift") if s.p_value is not None]
    assert min(shifts, key=lambda s: s.p_value if s.p_value is not None else 1.0).subgroup == "site=site-B"


@pytest.fixture
def doubled_temperature_repo(tmp_path: Path) -> Iterator[Path]:
    """A copy of the model repository whose v2 ``calibration.json`` has twice the validated temperature."""
    repo = Path(tempfile.mkdtemp(prefix="validity-repo-"))
    shutil.copytree(REPO_ROOT / "model_repo" / MODEL, repo / MODEL)
    path = repo / MODEL / VERSION / "calibration.json"
    calibration = json.loads(path.read_text(encoding="utf-8"))
    calibration["temperature"] = 2.0 * float(calibration["temperature"])
    path.write_text(json.dumps(calibration), encoding="utf-8")
    yield repo
    shutil.rmtree(repo, ignore_errors=True)


async def test_a_wrong_temperature_at_a_gateway_is_a_calibration_breach(
    loop: Loop, stack: StackEndpoints, doubled_temperature_repo: Path, tmp_path: Path
) -> None:
    settings = gateway_settings(
        stack,
        tmp_path / "spool",
        RADGUARD_PREDICTIONS_TOPIC=loop.topics.predictions,
        RADGUARD_METRICS_ENABLED="false",
        RADGUARD_MODEL_REPO=str(doubled_temperature_repo),
    )
    gateway = build_gateway(settings)
    await start_gateway(gateway)
    try:
        await asyncio.wait_for(gateway.follower.caught_up.wait(), 30)
        issued = await _run(loop, stack, "baseline", seed=103, studies=500, gateway=gateway)
    finally:
        await gateway.server.stop(0)
    calibration = _by_kind(issued, "calibration")
    assert calibration[0].finding.severity.value == "breach", calibration[0].finding.summary
    served = calibration[0].finding.get("served_temperature_ratio")
    assert served.value == pytest.approx(2.0, rel=0.01)
    print(f"\nwrong temperature: calibration breach on block 1 ({BLOCK} predictions): {served.note}")


async def test_a_model_failure_in_one_subgroup_is_a_bias_breach_for_that_subgroup(
    loop: Loop, stack: StackEndpoints
) -> None:
    issued = await _run(loop, stack, str(SCENARIOS / "men_50_69_fainter.yaml"), seed=104, studies=1000)
    breaches = _breaches(issued, "bias")
    assert breaches, [item.finding.summary for item in _by_kind(issued, "bias")]
    first = _by_kind(issued, "bias").index(breaches[0])
    chart = breaches[0].finding.chart
    assert chart is not None
    print(f"\nmen 50-69 fainter nodules: bias breach on block {first + 1}, chart scope {chart.subgroup!r}")
    # The alarm names the failing group: men, patients 50-69, or their intersection; never another group.
    alarmed = {part for part in chart.subgroup.split(",")}
    assert alarmed <= {"sex=male", "age_band=50-69"} and alarmed, chart.subgroup
    evidence = [s for s in breaches[0].finding.statistics if s.name == "sensitivity_evidence" and s.subgroup]
    worst = min(evidence, key=lambda s: s.p_value if s.p_value is not None else 1.0)
    assert set(worst.subgroup.split(",")) <= {"sex=male", "age_band=50-69"}, worst


async def test_half_the_prevalence_is_not_called_a_model_failure(loop: Loop, stack: StackEndpoints) -> None:
    issued = await _run(loop, stack, str(SCENARIOS / "half_prevalence.yaml"), seed=105, studies=1000)
    for kind in ("calibration", "performance", "bias"):
        assert _breaches(issued, kind) == [], [item.finding.summary for item in _breaches(issued, kind)]
    ratios = [item.finding.get("prevalence_ratio").value for item in _by_kind(issued, "performance")]
    print(f"\nhalf prevalence: estimated prevalence ratio per block {[round(r, 2) for r in ratios]}")
    assert sum(ratios) / len(ratios) < 0.8


async def test_older_patients_are_a_case_mix_drift(loop: Loop, stack: StackEndpoints) -> None:
    issued = await _run(loop, stack, str(SCENARIOS / "older_patients.yaml"), seed=106, studies=500)
    breaches = _breaches(issued, "drift")
    assert breaches, [item.finding.summary for item in _by_kind(issued, "drift")]
    breached = {s.feature for item in breaches for s in item.finding.statistics if s.severity.value == "breach"}
    assert "patient.age_band" in breached, breached
