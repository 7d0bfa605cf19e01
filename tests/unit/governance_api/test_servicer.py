"""The Governance servicer on a real grpc.aio server (port 0) over the in-memory store and fakes.

Covers the edge's own work: authentication, request validation (INVALID_ARGUMENT naming the field),
translation both ways, PERMISSION_DENIED with its audit entry, and WatchRoutes streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from click.testing import Result
from typer.testing import CliRunner

from governance.adapters.memory import FakeEvidence, FakeTriton, ManualClock, MemoryStore
from governance.domain.policy import PolicyCatalog
from governance.domain.signing import Keyring
from governance.service import GovernanceService
from radguard.common.v1 import common_pb2
from radguard.governance.v1 import governance_pb2 as pb
from radguard.governance.v1 import governance_pb2_grpc
from services.cli import governance_commands
from services.cli.governance_commands import version_from_repo
from services.cli.main import app as cli_app
from services.governance_api.adapters.notifying import CommitSignal, NotifyingStore
from services.governance_api.auth import BearerAuthInterceptor, Identity, TokenStore, hash_token
from services.governance_api.servicer import GovernanceServicer, register
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.server import RadguardServer

REPO = Path(__file__).resolve().parents[3] / "model_repo"
TOKENS = {
    "op": Identity("olga", "operator"),
    "board": Identity("bert", "board"),
    "board2": Identity("bianca", "board"),
    "clin": Identity("clara", "clinician"),
}

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Running:
    stub: governance_pb2_grpc.GovernanceStub
    store: MemoryStore
    triton: FakeTriton
    target: str


def md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


@pytest_asyncio.fixture(loop_scope="session")
async def gov() -> AsyncIterator[Running]:
    settings = load_settings(
        ServiceSettings,
        {
            "RADGUARD_GRPC_HOST": "127.0.0.1",
            "RADGUARD_GRPC_PORT": "0",
            "RADGUARD_METRICS_ENABLED": "false",
            "RADGUARD_LOG_LEVEL": "warning",
        },
    )
    store = MemoryStore()
    triton = FakeTriton()
    keyring = Keyring()
    signal = CommitSignal()
    service = GovernanceService(
        NotifyingStore(store, signal), triton, FakeEvidence(), PolicyCatalog(), keyring, ManualClock()
    )

    async def ensure_signer(principal: str) -> None:
        if principal not in keyring.principals():
            keyring.generate(principal)

    tokens = TokenStore(tokens={hash_token(token): identity for token, identity in TOKENS.items()})
    server = RadguardServer(settings, interceptors=[BearerAuthInterceptor(tokens)])
    register(
        server,
        GovernanceServicer(service, route_changes=signal.wait, watch_poll_s=0.5, ensure_signer=ensure_signer),
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Running(governance_pb2_grpc.GovernanceStub(channel), store, triton, f"127.0.0.1:{server.port}")
    finally:
        await channel.close()
        await server.stop(0)


def registration(version: int = 1, model: str = "chest_nodule", **changes: object) -> pb.RegisterVersionRequest:
    message = version_from_repo(REPO, "chest_nodule", version, model_name=model, policy="fast-test")
    for path, value in changes.items():
        target: object = message
        *parents, leaf = path.split("__")
        for name in parents:
            target = getattr(target, name)
        if value is None:
            target.ClearField(leaf)  # type: ignore[attr-defined]
        else:
            setattr(target, leaf, value)
    return pb.RegisterVersionRequest(version=message, request_id=f"reg-{model}-{version}-{len(changes)}")


async def expect_error(call: object, code: grpc.StatusCode, text: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == code, raised.value.details()
    assert text in (raised.value.details() or ""), raised.value.details()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ref__model_name": ""}, "version.ref.model_name: required"),
        ({"ref__model_version": "bad version"}, "version.ref.model_version: must be 1-128"),
        ({"triton__model_version": 0}, "version.triton.model_version: must be >= 1"),
        ({"artifact_sha256": "ABC"}, "version.artifact_sha256: must be 64 lowercase hex"),
        ({"model_card": ""}, "version.model_card: required"),
        ({"calibration__temperature": 0.0}, "version.calibration.temperature: must be > 0"),
        ({"operating_threshold": 1.5}, "version.operating_threshold: must be within [0, 1]"),
        ({"reference_profile__sha256": ""}, "version.reference_profile.sha256: must be 64"),
        ({"validation__dataset": ""}, "version.validation.dataset: required"),
        ({"lineage__code_revision": ""}, "version.lineage.code_revision: required"),
        ({"reference_profile__uri": "u" * 1_100_000}, "version: must be at most 262144 bytes encoded"),
        ({"reference_profile__uri": "u" * 3000}, "version.reference_profile.uri: must be at most 2048 characters"),
        ({"model_card": "card\x00"}, "version.model_card: must not contain control characters"),
        ({"lineage__parent_version": "v404"}, "version.lineage.parent_version: unknown version 'v404'"),
    ],
)
async def test_register_validation_names_the_field(gov: Running, changes: dict[str, object], message: str) -> None:
    request = registration(1, "invalid_model", **changes)
    await expect_error(gov.stub.RegisterVersion(request, metadata=md("op")), grpc.StatusCode.INVALID_ARGUMENT, message)


async def test_register_needs_request_id_and_version(gov: Running) -> None:
    request = registration(1, "invalid_model")
    request.request_id = ""
    await expect_error(
        gov.stub.RegisterVersion(request, metadata=md("op")), grpc.StatusCode.INVALID_ARGUMENT, "request_id: required"
    )
    await expect_error(
        gov.stub.RegisterVersion(pb.RegisterVersionRequest(request_id="x"), metadata=md("op")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "version: required",
    )


async def test_unauthenticated_calls_are_refused(gov: Running) -> None:
    await expect_error(
        gov.stub.ListVersions(pb.ListVersionsRequest()), grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"
    )
    await expect_error(
        gov.stub.ListVersions(pb.ListVersionsRequest(), metadata=md("forged")),
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown bearer token",
    )


async def test_register_round_trips_and_a_repeat_is_idempotent(gov: Running) -> None:
    request = registration(1, "roundtrip")
    first = await gov.stub.RegisterVersion(request, metadata=md("op"))
    again = await gov.stub.RegisterVersion(request, metadata=md("op"))
    assert again == first
    assert first.state == pb.LIFECYCLE_STATE_REGISTERED
    assert first.registered_by == "olga"
    assert first.policy_ref == "fast-test@1"
    got = await gov.stub.GetVersion(
        pb.GetVersionRequest(model=common_pb2.ModelRef(model_name="roundtrip", model_version="1")), metadata=md("clin")
    )
    assert got == first
    sent = request.version
    assert got.artifact_sha256 == sent.artifact_sha256
    assert got.validation == sent.validation
    assert got.calibration.temperature == pytest.approx(sent.calibration.temperature)
    assert got.lineage == sent.lineage
    duplicate = registration(1, "roundtrip")
    duplicate.request_id = "another-id"
    await expect_error(
        gov.stub.RegisterVersion(duplicate, metadata=md("op")), grpc.StatusCode.ALREADY_EXISTS, "already exists"
    )
    await expect_error(
        gov.stub.GetVersion(
            pb.GetVersionRequest(model=common_pb2.ModelRef(model_name="roundtrip", model_version="9")),
            metadata=md("op"),
        ),
        grpc.StatusCode.NOT_FOUND,
        "not found",
    )


async def test_wrong_role_is_denied_and_audited(gov: Running) -> None:
    request = registration(1, "denied_model")
    await expect_error(
        gov.stub.RegisterVersion(request, metadata=md("clin")), grpc.StatusCode.PERMISSION_DENIED, "clinician"
    )
    audit = await gov.stub.QueryAudit(pb.QueryAuditRequest(action="access.denied"), metadata=md("op"))
    assert any(e.actor == "clara" and e.actor_role == common_pb2.ROLE_CLINICIAN for e in audit.entries)


async def test_lifecycle_to_canary_streams_routes(gov: Running) -> None:
    ref1 = common_pb2.ModelRef(model_name="flow", model_version="1")
    ref2 = common_pb2.ModelRef(model_name="flow", model_version="2")
    await gov.stub.RegisterVersion(registration(1, "flow"), metadata=md("op"))
    await gov.stub.RegisterVersion(registration(2, "flow"), metadata=md("op"))

    async def move(ref: common_pb2.ModelRef, state: int, rid: str) -> pb.Transition:
        request = pb.RequestTransitionRequest(model=ref, to_state=state, reason="test", request_id=rid)
        result: pb.Transition = await gov.stub.RequestTransition(request, metadata=md("op"))
        return result

    async def sign(transition: pb.Transition, who: str, rid: str) -> pb.ApproveResponse:
        request = pb.ApproveRequest(transition_id=transition.transition_id, meaning="approve", request_id=rid)
        result: pb.ApproveResponse = await gov.stub.Approve(request, metadata=md(who))
        return result

    for ref in (ref1, ref2):
        moved = await move(ref, pb.LIFECYCLE_STATE_VALIDATED, f"val-{ref.model_version}")
        assert moved.status == pb.TRANSITION_STATUS_APPLIED, moved.unmet_requirements
    to_production = await move(ref1, pb.LIFECYCLE_STATE_PRODUCTION, "prod-1")
    assert to_production.status == pb.TRANSITION_STATUS_PENDING
    assert to_production.unmet_requirements
    signed = await sign(to_production, "board", "sign-prod-1")
    assert signed.transition.status == pb.TRANSITION_STATUS_APPLIED
    assert signed.approval.signer == "bert" and signed.approval.algorithm == "ed25519" and signed.approval.signature

    stream = gov.stub.WatchRoutes(pb.WatchRoutesRequest(model_names=["flow"]), metadata=md("clin"))
    first = await asyncio.wait_for(stream.read(), 5)
    assert first.stable_version == "1" and first.canary_version == ""

    shadow = await move(ref2, pb.LIFECYCLE_STATE_SHADOW, "shadow-2")
    if shadow.status == pb.TRANSITION_STATUS_PENDING:
        await sign(shadow, "board", "sign-shadow-2")
    table = await asyncio.wait_for(stream.read(), 5)
    assert list(table.shadow_versions) == ["2"] and table.revision > first.revision
    assert gov.triton.loaded["chest_nodule"] == {1, 2}
    stream.cancel()

    version = await gov.stub.GetVersion(pb.GetVersionRequest(model=ref2), metadata=md("op"))
    assert version.state == pb.LIFECYCLE_STATE_SHADOW
    verdict = await gov.stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=md("clin"))
    assert verdict.ok and verdict.entries_checked > 5 and len(verdict.head_hash) == 64


async def test_read_validation(gov: Running) -> None:
    await expect_error(
        gov.stub.GetVersion(pb.GetVersionRequest(), metadata=md("op")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "model.model_name: required",
    )
    await expect_error(
        gov.stub.ListVersions(pb.ListVersionsRequest(states=[pb.LIFECYCLE_STATE_UNSPECIFIED]), metadata=md("op")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "states[0]",
    )
    await expect_error(
        gov.stub.GetRollout(pb.GetRolloutRequest(), metadata=md("op")), grpc.StatusCode.INVALID_ARGUMENT, "key"
    )
    await expect_error(
        gov.stub.Approve(pb.ApproveRequest(transition_id="t", request_id="r"), metadata=md("board")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "meaning: required",
    )
    await expect_error(
        gov.stub.VerifyAudit(pb.VerifyAuditRequest(from_seq=5, to_seq=2), metadata=md("op")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "to_seq",
    )
    await expect_error(
        gov.stub.QueryFindings(pb.QueryFindingsRequest(), metadata=md("op")), grpc.StatusCode.UNAVAILABLE, "findings"
    )


async def test_cli_reads_and_commands(gov: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(governance_commands._out, "width", 200)  # tables unabridged in the captured output
    runner = CliRunner()

    def cli(*args: str, token: str = "op") -> Result:
        return runner.invoke(cli_app, [*args, "--target", gov.target, "--token", token])

    registered = await asyncio.to_thread(
        cli,
        "models",
        "register",
        "chest_nodule",
        "2",
        "--model",
        "cli_model",
        "--policy",
        "fast-test",
        "--repo",
        str(REPO),
    )
    assert registered.exit_code == 0, registered.output
    assert "registered cli_model 2 (fast-test@1)" in registered.output
    listed = await asyncio.to_thread(cli, "models", "list", "--model", "cli_model")
    assert listed.exit_code == 0 and "registered" in listed.output and "chest_nodule/2" in listed.output
    shown = await asyncio.to_thread(cli, "models", "show", "cli_model", "2")
    assert shown.exit_code == 0 and "auroc" in shown.output and "site=site-A" in shown.output
    moved = await asyncio.to_thread(cli, "models", "transition", "cli_model", "2", "--to", "validated")
    assert moved.exit_code == 0 and "applied" in moved.output, moved.output
    denied = await asyncio.to_thread(cli, "models", "transition", "cli_model", "2", "--to", "shadow", token="clin")
    assert denied.exit_code == 1 and "PERMISSION_DENIED" in str(denied.exception)
    verified = await asyncio.to_thread(cli, "audit", "verify")
    assert verified.exit_code == 0 and "ok" in verified.output
    audit = await asyncio.to_thread(cli, "audit", "show", "--subject", "model/cli_model/2")
    assert audit.exit_code == 0 and "version.register" in audit.output
    missing = await asyncio.to_thread(cli, "rollout", "status", "cli_model")
    assert missing.exit_code == 1 and "NOT_FOUND" in str(missing.exception)
    unauthenticated = await asyncio.to_thread(cli, "models", "list", token="nobody")
    assert unauthenticated.exit_code == 1 and "UNAUTHENTICATED" in str(unauthenticated.exception)


async def test_heavy_and_out_of_range_reads_are_invalid_argument(gov: Running) -> None:
    many = pb.ListVersionsRequest(states=[pb.LIFECYCLE_STATE_REGISTERED] * 1_000_000)
    await expect_error(
        gov.stub.ListVersions(many, metadata=md("op")), grpc.StatusCode.INVALID_ARGUMENT, "states: must list at most 16"
    )
    watch = gov.stub.WatchRoutes(pb.WatchRoutesRequest(model_names=["m"] * 100_000), metadata=md("op"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await watch.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "model_names: must list at most 256 models"
    for token in ("²", "9" * 40, "1" * 1_000_000):
        await expect_error(
            gov.stub.ListVersions(pb.ListVersionsRequest(page_token=token), metadata=md("op")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token: is not a token this service issued",
        )
    await expect_error(
        gov.stub.QueryAudit(pb.QueryAuditRequest(from_seq=2**63), metadata=md("op")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "from_seq: must be at most 9223372036854775807",
    )
    await expect_error(
        gov.stub.VerifyAudit(pb.VerifyAuditRequest(to_seq=2**31), metadata=md("op")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "to_seq: must be at most 2147483647",
    )
    request = pb.QueryAuditRequest()
    request.since.seconds = 2**62
    await expect_error(
        gov.stub.QueryAudit(request, metadata=md("op")), grpc.StatusCode.INVALID_ARGUMENT, "since: must be a valid time"
    )
