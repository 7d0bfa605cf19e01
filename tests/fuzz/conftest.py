"""The services under fuzz: gateway, feedback and governance in this process, on the real stack.

Each runs on its own scratch database and state (the integration fixtures' helpers), so hostile calls that
happen to be valid (a registration with an odd name) never touch another test's data.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from services.feedback.app import Feedback, build_feedback, start_feedback
from services.feedback.settings import FeedbackSettings
from services.gateway.app import Gateway, build_gateway, start_gateway
from services.monitors.query.servicer import register_query_service
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.kafka import ensure_topics
from services.runtime.migrate import FOUNDATION_MIGRATIONS
from services.runtime.postgres import create_pool
from services.runtime.server import RadguardServer
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, real_stack, scratch_database, stack
from tests.integration.gateway.conftest import PSEUDONYM_KEY, gateway_settings
from tests.integration.governance_api.conftest import GovHarness, running_governance

__all__ = ["real_stack", "stack"]

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "services" / "monitors" / "migrations",
    REPO_ROOT / "governance" / "migrations",
    REPO_ROOT / "services" / "feedback" / "migrations",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    """One scratch database with every schema, for the module's services."""
    async with scratch_database(stack.postgres_dsn, "fuzz", MIGRATION_DIRS) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def fuzz_topic(stack: StackEndpoints) -> Iterator[str]:
    """A topic of the module's own for what the services publish."""
    name = f"fuzz.{uuid.uuid4().hex[:10]}"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, 1)])
    yield name


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_gateway(stack: StackEndpoints, fuzz_topic: str) -> AsyncIterator[Gateway]:
    """An in-process gateway over the real Triton, publishing to the module's topic."""
    spool = Path(tempfile.mkdtemp(prefix="fuzz-gw-spool-"))
    gateway = build_gateway(
        gateway_settings(stack, spool, RADGUARD_PREDICTIONS_TOPIC=fuzz_topic, RADGUARD_HTTP_PORT="0")
    )
    await start_gateway(gateway)
    try:
        yield gateway
    finally:
        await gateway.server.stop(0)
        shutil.rmtree(spool, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_feedback(stack: StackEndpoints, fuzz_dsn: str, fuzz_topic: str) -> AsyncIterator[Feedback]:
    """An in-process feedback service on the module's database."""
    env = {
        "RADGUARD_POSTGRES_DSN": fuzz_dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_READS_TOPIC": fuzz_topic,
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
        "RADGUARD_DRAIN_GRACE_S": "1",
        # The fuzz suite is about input, not callers: authentication has its own tests (tests/integration/security).
        "RADGUARD_AUTH_MODE": "insecure-dev",
        "RADGUARD_PSEUDONYM_KEY": PSEUDONYM_KEY,
    }
    feedback = await build_feedback(load_settings(FeedbackSettings, env))
    await start_feedback(feedback)
    try:
        yield feedback
    finally:
        await feedback.server.stop(0)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_governance(stack: StackEndpoints, fuzz_dsn: str, fuzz_topic: str) -> AsyncIterator[GovHarness]:
    """An in-process governance service on the module's database (controller idle: calls drive it)."""
    async with running_governance(stack, fuzz_dsn, fuzz_topic, name="fuzz-gov", controller_interval_s=3600) as gov:
        yield gov


@dataclass(frozen=True)
class MonitoringHarness:
    """The monitor runner's query API (radguard.monitoring.v1) over the module's scratch database."""

    server: RadguardServer
    reports: Path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_monitoring(fuzz_dsn: str) -> AsyncIterator[MonitoringHarness]:
    """MonitoringQuery as the runner serves it: its own pool, its reports folder, a real grpc.aio server."""
    reports = Path(tempfile.mkdtemp(prefix="fuzz-reports-"))
    pool = await create_pool(fuzz_dsn, min_size=1, max_size=4)
    env = {"RADGUARD_GRPC_HOST": "127.0.0.1", "RADGUARD_GRPC_PORT": "0", "RADGUARD_METRICS_ENABLED": "false"}
    server = RadguardServer(load_settings(ServiceSettings, env))
    register_query_service(server, pool, reports)
    await server.start()
    try:
        yield MonitoringHarness(server, reports)
    finally:
        await server.stop(0)
        await pool.close()
        shutil.rmtree(reports, ignore_errors=True)
