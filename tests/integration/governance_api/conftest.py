"""An in-process governance service on the real stack: its own database, tokens, keyring and findings topic.

Each test gets a fresh database (foundation, ledger and governance migrations), a tokens file with one
operator, two board members and a clinician, an empty keyring (signers are enrolled on first signature),
a policy folder holding the shipped policies plus ``e2e`` (fast-test without the shadow prediction count,
which would need ledger traffic in this private database), and its own findings topic for the
controller. Routes and audit events go to the real topics, like in production.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio
import yaml
from kafka.admin import KafkaAdminClient

from governance.domain.policy import POLICY_DIR
from radguard.governance.v1 import governance_pb2_grpc
from services.gateway.app import Gateway, build_gateway, start_gateway
from services.governance_api.app import Governance, build_governance, start_governance
from services.governance_api.auth import add_token
from services.governance_api.settings import GovernanceSettings
from services.runtime.config import load_settings
from services.runtime.kafka import AsyncKafkaConsumer, TopicPartition, ensure_topics
from services.runtime.migrate import FOUNDATION_MIGRATIONS
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, scratch_database, service_dsn
from tests.integration.gateway.conftest import gateway_settings

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "services" / "monitors" / "migrations",
    REPO_ROOT / "governance" / "migrations",
]
PEOPLE = {"olga": "operator", "bert": "board", "bianca": "board", "clara": "clinician"}


@pytest_asyncio.fixture(loop_scope="session")
async def gov_dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    """A new database with the ledger, findings and governance schema, dropped after the test."""
    async with scratch_database(stack.postgres_dsn, "gov_test", MIGRATION_DIRS) as dsn:
        yield dsn


@pytest.fixture
def findings_topic(stack: StackEndpoints) -> Iterator[str]:
    """A findings topic of the test's own (the controller listens to it)."""
    name = f"govtest.{uuid.uuid4().hex[:10]}.findings"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, 1)])
    yield name
    try:
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="gov-tests")
    except Exception:
        return
    try:
        admin.delete_topics([name], timeout_ms=10_000)
    except Exception:
        pass
    finally:
        admin.close()


@dataclass
class GovHarness:
    """The running governance service and how to call it."""

    app: Governance
    target: str
    tokens: dict[str, str]
    channel: grpc.aio.Channel
    stub: governance_pb2_grpc.GovernanceStub
    state_dir: Path

    def md(self, principal: str) -> tuple[tuple[str, str], ...]:
        """Call metadata authenticating as ``principal``."""
        return (("authorization", f"Bearer {self.tokens[principal]}"),)


def _policies(folder: Path) -> Path:
    for path in POLICY_DIR.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    shutil.copy(POLICY_DIR / "policy.schema.json", folder / "policy.schema.json")
    policy = yaml.safe_load((POLICY_DIR / "fast-test.yaml").read_text())
    policy["name"] = "e2e"
    policy["description"] = "fast-test without the shadow prediction count (no ledger traffic in a test database)"
    policy["shadow"]["min_predictions"] = 0
    (folder / "e2e.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return folder


def _policy_folder(folder: Path, more_policies: Path | None) -> Path:
    folder.mkdir()
    _policies(folder)
    for path in more_policies.glob("*.yaml") if more_policies is not None else ():
        shutil.copy(path, folder / path.name)
    return folder


@asynccontextmanager
async def running_governance(
    stack: StackEndpoints,
    gov_dsn: str,
    findings_topic: str,
    *,
    name: str,
    controller_interval_s: float,
    more_policies: Path | None = None,
    more_env: dict[str, str] | None = None,
) -> AsyncIterator[GovHarness]:
    """The governance service in this process on a free port, with its own state folder, tokens and policies.

    Args:
        stack: The real stack's endpoints.
        gov_dsn: The test's database.
        findings_topic: The findings topic its controller listens to.
        name: Prefix of the state folder and the instance id.
        controller_interval_s: Seconds between the controller's evaluations.
        more_policies: A folder whose policy files are added to the shipped ones and ``e2e``.
        more_env: Further settings (``RADGUARD_*``), e.g. an audit checkpoint key.
    """
    state = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    tokens_file = state / "tokens.json"
    tokens = {principal: add_token(tokens_file, principal, role) for principal, role in PEOPLE.items()}
    policies = _policy_folder(state / "policies", more_policies)
    env = {
        "RADGUARD_POSTGRES_DSN": service_dsn(gov_dsn, "governance"),
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_TRITON_GRPC_URL": stack.triton_grpc_url,
        "RADGUARD_MODEL_REPO": str(REPO_ROOT / "model_repo"),
        # The tests' profiles are written under pytest's temporary folders.
        "RADGUARD_REFERENCE_ROOTS": json.dumps([tempfile.gettempdir()]),
        "RADGUARD_GOVERNANCE_TOKENS_FILE": str(tokens_file),
        "RADGUARD_GOVERNANCE_KEYRING_FILE": str(state / "keyring.json"),
        "RADGUARD_POLICIES_DIR": str(policies),
        "RADGUARD_FINDINGS_TOPIC": findings_topic,
        "RADGUARD_CONTROLLER_INTERVAL_S": str(controller_interval_s),
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
        "RADGUARD_INSTANCE_ID": f"{name}-{uuid.uuid4().hex[:6]}",
        **(more_env or {}),
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
        await channel.close(None)
        await app.server.stop(0)
        shutil.rmtree(state, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def governance(stack: StackEndpoints, gov_dsn: str, findings_topic: str) -> AsyncIterator[GovHarness]:
    """The governance service in this process on a free port (its controller evaluates hourly: tests drive it)."""
    async with running_governance(stack, gov_dsn, findings_topic, name="gov-test", controller_interval_s=3600) as gov:
        yield gov


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(stack: StackEndpoints) -> AsyncIterator[Gateway]:
    """An in-process gateway following the real routes topic."""
    spool = Path(tempfile.mkdtemp(prefix="gov-gw-spool-"))
    gw = build_gateway(gateway_settings(stack, spool))
    await start_gateway(gw)
    await asyncio.wait_for(gw.follower.caught_up.wait(), 30)
    try:
        yield gw
    finally:
        await gw.server.stop(0)
        shutil.rmtree(spool, ignore_errors=True)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Current end offset of every partition of ``topic``."""
    from kafka import KafkaConsumer

    def read() -> dict[TopicPartition, int]:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            return dict(consumer.end_offsets(parts))
        finally:
            consumer.close()

    return await asyncio.to_thread(read)


async def read_topic(
    bootstrap: str, topic: str, start: dict[TopicPartition, int], until: object, timeout_s: float = 20.0
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) records written after ``start``, read until ``until(records)`` holds or the timeout."""
    consumer = AsyncKafkaConsumer([topic], bootstrap_servers=bootstrap, group_id=None, client_id="gov-tests-reader")
    await consumer.start()
    try:
        for tp, offset in start.items():
            await consumer.seek(tp, offset)
        records: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_s=0.25)
            records += [(r.key, r.value) for r in batch if r.value is not None]
            if until(records):  # type: ignore[operator]
                break
        return records
    finally:
        await consumer.close()
