"""The monitors are right in the running system: simulator → gateway → Kafka → ledger → runner → findings.

Simulated studies go through a real in-process gateway to the real Triton (chest_nodule v2, stable, routed on
the shared routes topic); predictions reach the test's database through Kafka and the real ledger writer, and
each answer is followed by the simulated radiologist's read. The runner follows the routes topic (it is told
no version), judges consecutive blocks of 250 predictions with the drift monitor and its CUSUM, and publishes
findings through its outbox. A healthy hospital must produce no breach; a silent gain change of one site's
scanner (``bench/scenarios/site_c_gain_drift.yaml``, a scenario of this suite) must be a breach that names
that site and no other. The label-based monitors are measured by ``bench/monitor_validity.py`` (larger runs).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from kafka.admin import KafkaAdminClient

from radguard.events.v1 import events_pb2
from services.gateway.app import Gateway
from services.monitors.ledger.app import LedgerProcess
from services.monitors.runner.app import MonitorRunner, build_monitor_runner
from services.monitors.runner.ports import IssuedFinding, MonitorTarget
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import load_settings
from services.runtime.kafka import ensure_topics
from sim import Hospital, load_scenario
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.e2e.traffic import MODEL, Traffic, wait_ledger
from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import set_route
from tests.integration.ledger.conftest import Topics, ledger_dsn, start_writer, writer_env  # noqa: F401 - fixture
from tests.integration.monitors.test_monitor_run import consume_findings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

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
        "RADGUARD_MONITOR_KINDS": '["drift"]',
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


async def _run(loop: Loop, stack: StackEndpoints, scenario: str, seed: int, studies: int) -> list[IssuedFinding]:
    traffic = Traffic(
        Hospital(load_scenario(scenario), seed=seed),
        f"127.0.0.1:{loop.gateway.server.port}",
        stack.kafka_bootstrap,
        loop.topics.reads,
        concurrency=8,
    )
    for _ in range(studies // 100):
        await traffic.send(100)
    assert traffic.answered == {("stable", VERSION): studies}
    await wait_ledger(loop.dsn, "stable", VERSION, studies, timeout_s=60)
    # The runner was told no version: it monitors v2 because the routes topic says it is served.
    assert MonitorTarget(MODEL, VERSION, "stable") in loop.runner.targets.targets()
    issued = await loop.runner.run_once()
    mine = [item for item in issued if item.finding.model_version == VERSION]
    assert [item.finding.maturity.total for item in mine] == [BLOCK] * (studies // BLOCK)
    return mine


async def _published(loop: Loop, stack: StackEndpoints, issued: list[IssuedFinding]) -> set[str]:
    deadline = asyncio.get_running_loop().time() + 30
    while await loop.runner.relay.pending() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    records = await asyncio.to_thread(consume_findings, stack.kafka_bootstrap, loop.findings_topic, len(issued))
    return {events_pb2.Finding.FromString(value).finding_id for _, value in records}


async def test_a_healthy_hospital_gives_no_breach(loop: Loop, stack: StackEndpoints) -> None:
    issued = await _run(loop, stack, "baseline", seed=101, studies=1000)
    severities = [item.finding.severity.value for item in issued]
    assert "breach" not in severities, [item.finding.summary for item in issued]
    charts = [item.finding.get("cusum") for item in issued]
    assert all(chart.limit is not None and chart.value <= chart.limit for chart in charts)
    assert await _published(loop, stack, issued) == {item.finding_id for item in issued}


async def test_a_silent_gain_change_at_one_site_is_a_breach_for_that_site(loop: Loop, stack: StackEndpoints) -> None:
    issued = await _run(loop, stack, str(SCENARIOS / "site_c_gain_drift.yaml"), seed=102, studies=500)
    breaches = [item for item in issued if item.finding.severity.value == "breach"]
    assert breaches, [item.finding.summary for item in issued]
    first = issued.index(breaches[0])
    print(f"\nsite-C gain drift (-1.0 SD): first breach on block {first + 1} ({(first + 1) * BLOCK} predictions)")
    for item in breaches:
        breached = [s for s in item.finding.statistics if s.severity.value == "breach" and s.name != "cusum"]
        # The evidence behind the alarm names site C (its stratum), never another site.
        sites = {s.subgroup for s in breached if s.subgroup}
        assert sites == {"site=site-C"} or (not sites and item.finding.get("cusum").value > 0), sites
    strongest = min(
        (s for item in issued for s in item.finding.statistics if s.p_value is not None and s.name != "cusum"),
        key=lambda s: s.p_value if s.p_value is not None else 1.0,
    )
    assert strongest.subgroup == "site=site-C", strongest
    assert await _published(loop, stack, issued) == {item.finding_id for item in issued}
