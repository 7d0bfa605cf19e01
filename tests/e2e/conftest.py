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

import pytest
import pytest_asyncio
from kafka.admin import KafkaAdminClient

from services.gateway.app import Gateway, build_gateway, start_gateway
from services.monitors.ledger.app import LedgerProcess
from services.runtime.kafka import ensure_topics
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, real_stack, stack  # noqa: F401 - fixtures
from tests.integration.gateway.conftest import gateway_settings
from tests.integration.governance_api.conftest import (  # noqa: F401 - fixtures
    GovHarness,
    findings_topic,
    gov_dsn,
    running_governance,
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
    async with running_governance(
        stack, gov_dsn, findings_topic, name="gov-e2e", controller_interval_s=EVALUATE_S, more_policies=POLICIES
    ) as gov:
        yield gov


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
