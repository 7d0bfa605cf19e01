"""Fixtures of the end-to-end tests: the real stack, governance, gateways, a ledger writer, all on a test's own
database and topics.

The stack (Kafka, PostgreSQL, Triton) and the governance harness come from the integration fixtures. On top:

* ``e2e_topics``: the test's own predictions and reads topics and ledger consumer group;
* ``sim_governance``: the governance service in this process on the test's database, with the ``e2e-sim``
  policy (see ``policies/``) and a controller that evaluates running rollouts every ``EVALUATE_S``;
* ``gateways``: two in-process gateways following the shared routes topic; both publish predictions to the
  test's topic;
* ``ledger``: an in-process ledger writer storing that traffic in the test's database (the database
  governance's ``PostgresEvidenceSource`` reads).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc.aio
import pytest
import pytest_asyncio
from kafka.admin import KafkaAdminClient

from radguard.governance.v1 import governance_pb2_grpc
from services.gateway.app import Gateway, build_gateway, start_gateway
from services.governance_api.app import build_governance, start_governance
from services.governance_api.auth import add_token
from services.governance_api.settings import GovernanceSettings
from services.monitors.ledger.app import LedgerProcess
from services.runtime.config import load_settings
from services.runtime.kafka import ensure_topics
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, real_stack, stack  # noqa: F401 - fixtures
from tests.integration.gateway.conftest import gateway_settings
from tests.integration.governance_api.conftest import (  # noqa: F401 - fixtures
    PEOPLE,
    GovHarness,
    _policies,
    findings_topic,
    gov_dsn,
)
from tests.integration.ledger.conftest import Topics, start_writer, writer_env

#: Seconds between the controller's evaluations of running rollouts.
EVALUATE_S = 1.0
POLICIES = Path(__file__).resolve().parent / "policies"


@pytest.fixture
def e2e_topics(stack: StackEndpoints) -> Iterator[Topics]:  # noqa: F811
    """The test's predictions and reads topics (one partition each) and its ledger group."""
    tag = uuid.uuid4().hex[:10]
    made = Topics(f"e2etest.{tag}.predictions", f"e2etest.{tag}.reads", f"e2etest-{tag}")
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(made.predictions, 1), TopicSpec(made.reads, 1)])
    yield made
    try:
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="e2e-tests")
    except Exception:
        return
    try:
        admin.delete_topics([made.predictions, made.reads], timeout_ms=10_000)
    except Exception:
        pass
    finally:
        admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def sim_governance(
    stack: StackEndpoints,  # noqa: F811
    gov_dsn: str,  # noqa: F811
    findings_topic: str,  # noqa: F811
) -> AsyncIterator[GovHarness]:
    """The governance service in this process, its controller evaluating every ``EVALUATE_S``."""
    state = Path(tempfile.mkdtemp(prefix="gov-e2e-"))
    tokens_file = state / "tokens.json"
    tokens = {principal: add_token(tokens_file, principal, role) for principal, role in PEOPLE.items()}
    policies = state / "policies"
    policies.mkdir()
    _policies(policies)
    for path in POLICIES.glob("*.yaml"):
        shutil.copy(path, policies / path.name)
    env = {
        "RADGUARD_POSTGRES_DSN": gov_dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_TRITON_GRPC_URL": stack.triton_grpc_url,
        "RADGUARD_MODEL_REPO": str(REPO_ROOT / "model_repo"),
        "RADGUARD_GOVERNANCE_TOKENS_FILE": str(tokens_file),
        "RADGUARD_GOVERNANCE_KEYRING_FILE": str(state / "keyring.json"),
        "RADGUARD_POLICIES_DIR": str(policies),
        "RADGUARD_FINDINGS_TOPIC": findings_topic,
        "RADGUARD_CONTROLLER_INTERVAL_S": str(EVALUATE_S),
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
        "RADGUARD_INSTANCE_ID": f"gov-e2e-{uuid.uuid4().hex[:6]}",
    }
    app = await build_governance(load_settings(GovernanceSettings, env))
    await start_governance(app)
    assert app.findings_feed is not None
    await asyncio.wait_for(app.findings_feed.listening.wait(), 30)
    target = f"127.0.0.1:{app.server.port}"
    channel = grpc.aio.insecure_channel(target)
    try:
        yield GovHarness(app, target, tokens, channel, governance_pb2_grpc.GovernanceStub(channel), state)
    finally:
        await channel.close()
        await app.server.stop(0)
        shutil.rmtree(state, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def gateways(stack: StackEndpoints, e2e_topics: Topics) -> AsyncIterator[list[Gateway]]:  # noqa: F811
    """Two in-process gateways following the shared routes topic; predictions go to the test's topic."""
    spools = [Path(tempfile.mkdtemp(prefix=f"e2e-gw{i}-spool-")) for i in range(2)]
    started: list[Gateway] = []
    try:
        for spool in spools:
            settings = gateway_settings(
                stack, spool, RADGUARD_PREDICTIONS_TOPIC=e2e_topics.predictions, RADGUARD_METRICS_ENABLED="false"
            )
            gw = build_gateway(settings)
            await start_gateway(gw)
            started.append(gw)
        for gw in started:
            await asyncio.wait_for(gw.follower.caught_up.wait(), 30)
        yield started
    finally:
        for gw in started:
            await gw.server.stop(0)
        for spool in spools:
            shutil.rmtree(spool, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def ledger(stack: StackEndpoints, gov_dsn: str, e2e_topics: Topics) -> AsyncIterator[LedgerProcess]:  # noqa: F811
    """A ledger writer storing the test's predictions and reads in the test's database."""
    process = await start_writer(writer_env(stack, gov_dsn, e2e_topics))
    try:
        yield process
    finally:
        await process.stop()
