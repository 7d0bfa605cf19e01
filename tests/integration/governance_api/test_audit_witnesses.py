"""Tamper evidence beyond the database, on the real stack: signed checkpoints and the published entries.

The governance service runs with its own checkpoint key, checkpoint file and audit topic. After a few
commands it has signed a checkpoint of the head and the relay has published every entry. Then, connected as
the database superuser with the append-only trigger disabled, the test (1) rewrites the chain consistently
from one entry on (every later hash and the head recomputed, so the database's own check passes), (2)
truncates it and moves the head back, (3) edits one entry; ``radguard audit verify`` must name the bad seq
each time, from the checkpoints and the published copies. Each tamper is undone before the next. Last, a
checkpoint with a forged signature on the topic is rejected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import grpc.aio
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka.admin import KafkaAdminClient
from typer.testing import CliRunner, Result

from governance.domain.audit import GENESIS, content_of, entry_hash
from governance.domain.checkpoint import CheckpointSigner, write_checkpoint_key
from governance.domain.model import AuditRecord, Role
from radguard.governance.v1 import governance_pb2 as pb
from services.cli import governance_commands
from services.cli.governance_commands import version_from_repo
from services.cli.main import app as cli_app
from services.governance_api.adapters.audit_topic import checkpoint_record
from services.runtime.kafka import AsyncKafkaProducer, ensure_topics
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints
from tests.integration.governance_api.conftest import GovHarness, running_governance

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

COLUMNS = "seq, prev_hash, hash, actor, actor_role, action, subject, before_json, after_json, time, request_id"


@pytest.fixture
def audit_topic(stack: StackEndpoints) -> Iterator[str]:
    """An audit topic of the test's own."""
    name = f"govtest.{uuid.uuid4().hex[:10]}.audit"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, 1)])
    yield name
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="gov-tests")
    try:
        admin.delete_topics([name], timeout_ms=10_000)
    finally:
        admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def witnessed(
    stack: StackEndpoints, gov_dsn: str, findings_topic: str, audit_topic: str, tmp_path: Path
) -> AsyncIterator[GovHarness]:
    """Governance signing checkpoints every half second onto its own topic and file."""
    write_checkpoint_key(tmp_path / "key.pem", tmp_path / "key.pub.pem")
    env = {
        "RADGUARD_AUDIT_TOPIC": audit_topic,
        "RADGUARD_AUDIT_CHECKPOINT_KEY_FILE": str(tmp_path / "key.pem"),
        "RADGUARD_AUDIT_CHECKPOINT_FILE": str(tmp_path / "checkpoints.jsonl"),
        "RADGUARD_AUDIT_CHECKPOINT_INTERVAL_S": "0.5",
    }
    async with running_governance(
        stack, gov_dsn, findings_topic, name="gov-witness", controller_interval_s=3600, more_env=env
    ) as gov:
        yield gov


def admin_dsn(stack: StackEndpoints, gov_dsn: str) -> str:
    """The stack's superuser, connected to the test's database."""
    parts = urlsplit(stack.postgres_dsn)
    return urlunsplit((parts.scheme, parts.netloc, urlsplit(gov_dsn).path, parts.query, parts.fragment))


def record_of(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(**{**dict(row), "actor_role": Role(row["actor_role"])})


async def tamper(dsn: str, sql: str, *args: object) -> None:
    """Run statements as the superuser with the append-only trigger off."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("alter table gov_audit disable trigger user")
            await conn.execute(sql, *args) if args else await conn.execute(sql)
            await conn.execute("alter table gov_audit enable trigger user")
    finally:
        await conn.close()


async def put_chain(dsn: str, records: list[AuditRecord]) -> None:
    """Replace the stored chain and its head with ``records``."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("alter table gov_audit disable trigger user")
            await conn.execute("delete from gov_audit")
            await conn.executemany(
                f"insert into gov_audit ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [tuple(getattr(r, f.name) for f in dataclasses.fields(AuditRecord)) for r in records],
            )
            await conn.execute("update gov_audit_head set seq = $1, hash = $2", records[-1].seq, records[-1].hash)
            await conn.execute("alter table gov_audit enable trigger user")
    finally:
        await conn.close()


async def verify(gov: GovHarness, stack: StackEndpoints, topic: str, key_dir: Path) -> Result:
    args = [
        "audit", "verify", "--target", gov.target, "--token", gov.tokens["bert"],
        "--public-key", str(key_dir / "key.pub.pem"), "--bootstrap", stack.kafka_bootstrap,
        "--audit-topic", topic, "--checkpoints-file", str(key_dir / "checkpoints.jsonl"),
    ]  # fmt: skip
    return await asyncio.to_thread(CliRunner().invoke, cli_app, args)


async def test_rewrite_truncation_edit_and_forged_checkpoint_are_named(
    witnessed: GovHarness,
    stack: StackEndpoints,
    gov_dsn: str,
    audit_topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(governance_commands._out, "width", 250)
    gov = witnessed
    for who, n in (("olga", 1), ("olga", 2), ("clara", 1)):  # the clinician is refused: an access.denied entry
        message = version_from_repo(REPO_ROOT / "model_repo", "chest_nodule", n, policy="e2e")
        request = pb.RegisterVersionRequest(version=message, request_id=f"w-{uuid.uuid4().hex}")
        try:
            await gov.stub.RegisterVersion(request, metadata=gov.md(who))
        except grpc.aio.AioRpcError as error:
            assert (who, error.code()) == ("clara", grpc.StatusCode.PERMISSION_DENIED)
    head = await gov.stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=gov.md("bert"))
    assert head.ok and head.entries_checked >= 3
    n = head.entries_checked
    publisher = gov.app.checkpoints
    assert publisher is not None
    deadline = time.monotonic() + 20
    while publisher.last is None or publisher.last.seq < n or await gov.app.relay.pending():
        assert time.monotonic() < deadline, "no checkpoint of the head, or entries left unpublished"
        await asyncio.sleep(0.1)
    assert publisher.last.head_hash == head.head_hash

    result = await verify(gov, stack, audit_topic, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"audit chain verified: {n} entries" in result.output

    dsn = admin_dsn(stack, gov_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        original = [record_of(r) for r in await conn.fetch(f"select {COLUMNS} from gov_audit order by seq")]
    finally:
        await conn.close()
    assert len(original) == n

    # (1) A consistent rewrite from seq 2: the database's own chain and head agree with themselves.
    forged: list[AuditRecord] = original[:1]
    prev = original[0].hash
    for record in original[1:]:
        changed = dataclasses.replace(record, prev_hash=prev)
        if record.seq == 2:
            changed = dataclasses.replace(changed, actor="mallory")
        changed = dataclasses.replace(changed, hash=entry_hash(prev, content_of(changed)))
        forged.append(changed)
        prev = changed.hash
    await put_chain(dsn, forged)
    result = await verify(gov, stack, audit_topic, tmp_path)
    assert result.exit_code == 1, result.output
    assert f"database        ok: {n} entries verify" in result.output
    assert "audit topic     BAD (seq 2): entry 2 differs from its published copy in hash, actor" in result.output
    assert "checkpoints     BAD" in result.output and "does not reach the head signed" in result.output
    assert "first bad seq 2 (disagreeing: checkpoints, audit topic)" in result.output
    # The service will not sign the rewritten history either.
    deadline = time.monotonic() + 10
    while publisher.refused is None:
        assert time.monotonic() < deadline, "the checkpoint publisher signed over a rewritten chain"
        await asyncio.sleep(0.1)
    await put_chain(dsn, original)

    # (2) Truncation with the head moved back.
    await put_chain(dsn, original[:-2])
    result = await verify(gov, stack, audit_topic, tmp_path)
    assert result.exit_code == 1, result.output
    assert f"checkpoints     BAD (seq {n - 1}): the database ends at seq {n - 2}" in result.output
    assert "published but missing from the database (the log was truncated)" in result.output
    assert f"first bad seq {n - 1}" in result.output
    await put_chain(dsn, original)

    # (3) One entry edited in place (hashes left as they were).
    await tamper(dsn, "update gov_audit set subject = 'model/elsewhere' where seq = 2")
    result = await verify(gov, stack, audit_topic, tmp_path)
    assert result.exit_code == 1, result.output
    assert "database        BAD (seq 2): hash mismatch" in result.output
    assert "audit topic     BAD (seq 2): entry 2 differs from its published copy in subject" in result.output
    assert "first bad seq 2 (disagreeing: database, checkpoints, audit topic)" in result.output
    await put_chain(dsn, original)
    result = await verify(gov, stack, audit_topic, tmp_path)
    assert result.exit_code == 0, result.output

    # A checkpoint claiming the service's key but signed by another is rejected.
    impostor = CheckpointSigner(Ed25519PrivateKey.generate())
    fake = dataclasses.replace(impostor.sign(n, GENESIS, n, publisher.last.time), key_id=publisher.key_id)
    async with AsyncKafkaProducer(stack.kafka_bootstrap, client_id="gov-tests") as producer:
        record = checkpoint_record(fake, audit_topic, "impostor")
        await producer.send(record.topic, record.value, record.key)
    result = await verify(gov, stack, audit_topic, tmp_path)
    assert result.exit_code == 1, result.output
    assert (
        f"checkpoint on the audit topic for seq {n} rejected: signature does not verify (forged or altered)"
        in result.output
    )
