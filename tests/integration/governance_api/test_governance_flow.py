"""Governance end to end on the real stack: gRPC with tokens → PostgreSQL → outbox → Kafka → gateway, Triton.

chest_nodule v1 and v2 are registered over gRPC; v1 becomes production with a board signature, v2 goes
through shadow to canary with approvals and a rollout; each route table is checked on the routes topic
and in a gateway's route book. A clinician's promote is refused and audited; the audit entries reach
Kafka; ``radguard audit verify`` over the CLI says ok. A breach finding on the controller's topic rolls
the canary back to 100% stable, and the time from the finding to the gateway applying it is measured.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from kernel.topics import AUDIT_TOPIC, ROUTES_TOPIC
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.governance.v1 import governance_pb2 as pb
from services.cli import governance_commands
from services.cli.governance_commands import version_from_repo
from services.cli.main import app as cli_app
from services.gateway.app import Gateway
from services.governance_api.adapters.triton import TritonModelControl
from services.runtime.kafka import AsyncKafkaProducer
from stack.settings import REPO_ROOT
from tests.integration.conftest import StackEndpoints
from tests.integration.governance_api.conftest import GovHarness, end_offsets, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MODEL = "chest_nodule"
V1 = common_pb2.ModelRef(model_name=MODEL, model_version="1")
V2 = common_pb2.ModelRef(model_name=MODEL, model_version="2")


def rid(tag: str) -> str:
    return f"it-{tag}-{uuid.uuid4().hex[:8]}"


def distributed_revision(gateway: Gateway) -> int:
    """The model's route revision the gateway holds: what the shared routes topic already distributed.

    The governance database of this test starts empty, so its first table must continue from the topic
    (``RouteRevisionFloor``), or every gateway would ignore it as old.
    """
    current = gateway.routes.get(MODEL)
    return current.revision if current is not None else 0


async def wait_for_route(gateway: Gateway, revision: int, timeout_s: float = 10.0) -> float:
    """Seconds until the gateway applies ``revision`` of the model's route (or fail)."""
    started = time.monotonic()
    while (route := gateway.routes.get(MODEL)) is None or route.revision < revision:
        assert time.monotonic() - started < timeout_s, f"gateway did not apply revision {revision}: {route}"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def move(gov: GovHarness, ref: common_pb2.ModelRef, state: int, who: str = "olga") -> pb.Transition:
    request = pb.RequestTransitionRequest(model=ref, to_state=state, reason="integration test", request_id=rid("tr"))
    result: pb.Transition = await gov.stub.RequestTransition(request, metadata=gov.md(who))
    return result


async def sign(gov: GovHarness, transition: pb.Transition, who: str, meaning: str) -> pb.Transition:
    request = pb.ApproveRequest(transition_id=transition.transition_id, meaning=meaning, request_id=rid("sign"))
    reply: pb.ApproveResponse = await gov.stub.Approve(request, metadata=gov.md(who))
    assert (
        reply.approval.signer == who and reply.approval.algorithm == "ed25519" and len(reply.approval.signature) == 64
    )
    return reply.transition


async def routes_now(gov: GovHarness) -> common_pb2.RouteTable:
    stream = gov.stub.WatchRoutes(pb.WatchRoutesRequest(model_names=[MODEL]), metadata=gov.md("clara"))
    table: common_pb2.RouteTable = await asyncio.wait_for(stream.read(), 5)
    stream.cancel()
    return table


@pytest_asyncio.fixture(loop_scope="session")
async def restore_triton(stack: StackEndpoints) -> AsyncIterator[None]:
    """Leave chest_nodule with versions 1 and 2 loaded (an abort unloads the rolled-back version)."""
    yield
    control = TritonModelControl(stack.triton_grpc_url, REPO_ROOT / "model_repo")
    try:
        await control.load(MODEL, {1, 2})
    finally:
        await control.close()


async def test_register_approve_shadow_canary_and_refusals(
    governance: GovHarness,
    gateway: Gateway,
    gov_dsn: str,
    stack: StackEndpoints,
    findings_topic: str,
    restore_triton: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(governance_commands._out, "width", 200)  # tables unabridged in the captured output
    gov = governance
    floor = distributed_revision(gateway)
    routes_start = await end_offsets(stack.kafka_bootstrap, ROUTES_TOPIC)
    audit_start = await end_offsets(stack.kafka_bootstrap, AUDIT_TOPIC)

    # Register both versions from the model repository as the operator.
    repo = REPO_ROOT / "model_repo"
    for n in (1, 2):
        message = version_from_repo(repo, MODEL, n, policy="e2e")
        registered = await gov.stub.RegisterVersion(
            pb.RegisterVersionRequest(version=message, request_id=rid(f"reg{n}")), metadata=gov.md("olga")
        )
        assert registered.state == pb.LIFECYCLE_STATE_REGISTERED and registered.policy_ref == "e2e@1"
        validated = await move(gov, registered.ref, pb.LIFECYCLE_STATE_VALIDATED)
        assert validated.status == pb.TRANSITION_STATUS_APPLIED, validated.unmet_requirements

    # v1: first deployment straight to production, with a board signature; the registrant may not sign.
    to_production = await move(gov, V1, pb.LIFECYCLE_STATE_PRODUCTION)
    assert to_production.status == pb.TRANSITION_STATUS_PENDING and to_production.unmet_requirements
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await sign(gov, to_production, "olga", "approve production")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    applied = await sign(gov, to_production, "bert", "approve production")
    assert applied.status == pb.TRANSITION_STATUS_APPLIED
    table = await routes_now(gov)
    assert (table.stable_version, table.canary_version, table.revision) == ("1", "", floor + 1)
    await wait_for_route(gateway, floor + 1)

    # v2: shadow (one board signature), then canary (board or clinician), then the rollout starts traffic.
    to_shadow = await move(gov, V2, pb.LIFECYCLE_STATE_SHADOW)
    if to_shadow.status == pb.TRANSITION_STATUS_PENDING:
        to_shadow = await sign(gov, to_shadow, "bianca", "approve shadow")
    assert to_shadow.status == pb.TRANSITION_STATUS_APPLIED
    table = await routes_now(gov)
    assert list(table.shadow_versions) == ["2"]
    await wait_for_route(gateway, table.revision)
    assert gateway.routes.get(MODEL).shadow_versions == ("2",)  # type: ignore[union-attr]

    to_canary = await move(gov, V2, pb.LIFECYCLE_STATE_CANARY)
    assert to_canary.status == pb.TRANSITION_STATUS_PENDING
    to_canary = await sign(gov, to_canary, "clara", "approve canary")
    assert to_canary.status == pb.TRANSITION_STATUS_APPLIED
    started = time.monotonic()
    rollout = await gov.stub.StartRollout(
        pb.StartRolloutRequest(candidate=V2, reason="canary of v2", request_id=rid("start")), metadata=gov.md("olga")
    )
    assert rollout.status == pb.ROLLOUT_STATUS_RUNNING and rollout.stable_version == "1"
    assert rollout.weight_bp == rollout.plan[0].weight_bp == 2000
    table = await routes_now(gov)
    assert (table.stable_version, table.canary_version, table.canary_weight_bp) == ("1", "2", 2000)
    assert table.rollout_id == rollout.rollout_id
    await wait_for_route(gateway, table.revision)
    assert time.monotonic() - started < 2.0, "the canary route took more than 2 s to reach the gateway"
    applied_route = gateway.routes.get(MODEL)
    assert applied_route is not None and (applied_route.canary_version, applied_route.canary_weight_bp) == ("2", 2000)
    assert await gov.app.service.get_version(MODEL, "2")  # still readable
    assert {1, 2} <= await gov_triton_loaded(stack)

    # Unauthorised promote: PERMISSION_DENIED and an access.denied entry naming the clinician.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await gov.stub.PromoteRollout(
            pb.PromoteRolloutRequest(rollout_id=rollout.rollout_id, reason="let me", request_id=rid("promote")),
            metadata=gov.md("clara"),
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    audit = await gov.stub.QueryAudit(pb.QueryAuditRequest(action="access.denied"), metadata=gov.md("bert"))
    assert [e.actor for e in audit.entries if e.subject == f"rollout/{rollout.rollout_id}"] == ["clara"]

    # Every route revision went to the compacted topic keyed by model name, in order.
    want = table.revision
    records = await read_topic(
        stack.kafka_bootstrap,
        ROUTES_TOPIC,
        routes_start,
        lambda rs: any(
            events_pb2.RouteTableEvent.FromString(v).table.revision >= want for k, v in rs if k == b"chest_nodule"
        ),
    )
    revisions = [events_pb2.RouteTableEvent.FromString(v).table.revision for k, v in records if k == MODEL.encode()]
    mine = [r for r in revisions if r > floor]
    assert mine == sorted(mine) and mine[0] == floor + 1 and mine[-1] == want

    # The audit chain reached Kafka and verifies over the CLI.
    head = await gov.stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=gov.md("clara"))
    assert head.ok, head.reason
    audit_records = await read_topic(
        stack.kafka_bootstrap,
        AUDIT_TOPIC,
        audit_start,
        lambda rs: any(events_pb2.AuditEvent.FromString(v).entry.hash == head.head_hash for _, v in rs),
    )
    hashes = {events_pb2.AuditEvent.FromString(v).entry.hash for _, v in audit_records}
    assert head.head_hash in hashes
    result = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["audit", "verify", "--target", gov.target, "--token", gov.tokens["clara"]]
    )
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and f"{head.entries_checked} entries verify" in result.output
    shown = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        [
            "audit",
            "show",
            "--target",
            gov.target,
            "--token",
            gov.tokens["bert"],
            "--no-changes",
            "--action",
            "access.denied",
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert "access.denied" in shown.output

    # A breach finding about the canary: the controller aborts at once and every route goes back to stable.
    finding = events_pb2.Finding(
        finding_id=str(uuid.uuid4()),
        kind=events_pb2.MONITOR_KIND_CALIBRATION,
        model=V2,
        arm=common_pb2.ARM_CANARY,
        severity=events_pb2.SEVERITY_BREACH,
        summary="ECE 0.31 > 0.15 (integration test)",
    )
    producer = AsyncKafkaProducer(stack.kafka_bootstrap, client_id="gov-tests")
    await producer.start()
    try:
        sent_at = time.monotonic()
        await producer.send(findings_topic, finding.SerializeToString(), MODEL.encode())
    finally:
        await producer.close()
    deadline = time.monotonic() + 10
    while (route := gateway.routes.get(MODEL)) is None or route.canary_weight_bp != 0:
        assert time.monotonic() < deadline, f"the gateway still routes to the canary: {route}"
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - sent_at
    print(f"breach finding → gateway 100% stable in {elapsed * 1000:.0f} ms")
    assert elapsed <= 2.0
    assert route.stable_version == "1" and route.canary_version == ""
    after = await gov.stub.GetRollout(pb.GetRolloutRequest(rollout_id=rollout.rollout_id), metadata=gov.md("olga"))
    assert after.status == pb.ROLLOUT_STATUS_ABORTED and after.weight_bp == 0
    v2 = await gov.stub.GetVersion(pb.GetVersionRequest(model=V2), metadata=gov.md("olga"))
    assert v2.state == pb.LIFECYCLE_STATE_ROLLED_BACK
    # The abort is counted once for the Kubernetes alert RadguardRolloutAborted.
    exported = gov.app.server.metrics.render().decode()
    assert f'radguard_governance_rollouts_aborted_total{{model="{MODEL}"}} 1.0' in exported
    final = await gov.stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=gov.md("olga"))
    assert final.ok and final.entries_checked > head.entries_checked


async def gov_triton_loaded(stack: StackEndpoints) -> set[int]:
    control = TritonModelControl(stack.triton_grpc_url, REPO_ROOT / "model_repo")
    try:
        return await control.loaded_versions(MODEL)
    finally:
        await control.close()
