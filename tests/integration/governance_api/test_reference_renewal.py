"""Reference renewal on the real stack: gRPC with tokens → PostgreSQL → audit chain, routes → Kafka.

chest_nodule v1 is registered under the standard plan and made production; a board member proposes a new
reference (a file on this host, hashed by governance); the proposer and the registrant may not sign; a
board and a clinician signature put it in force. The old profile stays on record, GetVersion returns the
new one, the model's route gets a new revision, concurrent retries of one request id make one renewal, and
the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kernel.topics import ROUTES_TOPIC
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.governance.v1 import governance_pb2 as pb
from services.cli.governance_commands import version_from_repo
from stack.settings import REPO_ROOT
from tests.integration.conftest import StackEndpoints
from tests.integration.governance_api.conftest import GovHarness, end_offsets, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MODEL = "chest_nodule"
V1 = common_pb2.ModelRef(model_name=MODEL, model_version="1")


def rid(tag: str) -> str:
    return f"it-{tag}-{uuid.uuid4().hex[:8]}"


def _stamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def _profile(path: Path, sha: str) -> pb.ReferenceProfile:
    return pb.ReferenceProfile(
        uri=path.as_uri(),
        sha256=sha,
        period=pb.ReferencePeriod(
            labelled_by="reads",
            description="production period of v1, all sites",
            studies=3000,
            reads=2900,
            read_positives=610,
            start_time=_stamp("2026-11-01T00:00:00Z"),
            end_time=_stamp("2026-11-30T00:00:00Z"),
        ),
    )


async def _move(gov: GovHarness, state: int, signers: tuple[str, ...]) -> pb.Transition:
    t: pb.Transition = await gov.stub.RequestTransition(
        pb.RequestTransitionRequest(model=V1, to_state=state, reason="renewal test", request_id=rid("tr")),
        metadata=gov.md("olga"),
    )
    for who in signers:
        if t.status != pb.TRANSITION_STATUS_PENDING:
            break
        reply = await gov.stub.Approve(
            pb.ApproveRequest(transition_id=t.transition_id, meaning="approve", request_id=rid("sign")),
            metadata=gov.md(who),
        )
        t = reply.transition
    assert t.status == pb.TRANSITION_STATUS_APPLIED, t.unmet_requirements
    return t


async def _sign(gov: GovHarness, renewal_id: str, who: str) -> pb.ApproveResponse:
    reply: pb.ApproveResponse = await gov.stub.Approve(
        pb.ApproveRequest(renewal_id=renewal_id, meaning="approve reference", request_id=rid("rsign")),
        metadata=gov.md(who),
    )
    return reply


async def _route(gov: GovHarness) -> common_pb2.RouteTable:
    """The model's current route table as WatchRoutes streams it to route followers."""
    stream = gov.stub.WatchRoutes(pb.WatchRoutesRequest(model_names=[MODEL]), metadata=gov.md("clara"))
    table: common_pb2.RouteTable = await asyncio.wait_for(stream.read(), 5)
    stream.cancel()
    return table


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value.code()


async def test_renewal_through_two_signatures(governance: GovHarness, stack: StackEndpoints, tmp_path: Path) -> None:
    gov = governance
    message = version_from_repo(REPO_ROOT / "model_repo", MODEL, 1, policy="standard")
    registered = await gov.stub.RegisterVersion(
        pb.RegisterVersionRequest(version=message, request_id=rid("reg")), metadata=gov.md("olga")
    )
    await _move(gov, pb.LIFECYCLE_STATE_VALIDATED, ("bert",))
    await _move(gov, pb.LIFECYCLE_STATE_PRODUCTION, ("bert", "clara"))
    routes_before = await gov.app.service.get_routes(MODEL)

    path = tmp_path / "reference_profile.npz"
    path.write_bytes(b"a reference profile drawn from production " + uuid.uuid4().bytes)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    # Bad input names the field; an unknown version is NOT_FOUND.
    bad = _profile(path, "00" * 32)
    request = pb.ProposeReferenceRequest(model=V1, profile=bad, reason="x", request_id=rid("bad"))
    assert (
        await _code(gov.stub.ProposeReference(request, metadata=gov.md("bianca"))) == grpc.StatusCode.INVALID_ARGUMENT
    )
    unknown = pb.ProposeReferenceRequest(
        model=common_pb2.ModelRef(model_name=MODEL, model_version="99"),
        profile=_profile(path, sha),
        request_id=rid("unknown"),
    )
    assert await _code(gov.stub.ProposeReference(unknown, metadata=gov.md("bianca"))) == grpc.StatusCode.NOT_FOUND
    # A file outside the folders governance reads profiles from is refused before it is touched: a proposal
    # cannot probe the governance host (an existing file and a missing one get the same answer).
    for outside in (Path("/etc/hostname"), Path("/etc/no-such-profile.npz")):
        probe = pb.ProposeReferenceRequest(model=V1, profile=_profile(outside, sha), request_id=rid("probe"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await gov.stub.ProposeReference(probe, metadata=gov.md("bianca"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "profile.uri" in (refused.value.details() or "") and "reference_roots" in (refused.value.details() or "")

    # Concurrent retries of one request id: one renewal.
    same = pb.ProposeReferenceRequest(
        model=V1, profile=_profile(path, sha), reason="quarterly renewal", request_id=rid("propose")
    )
    replies = await asyncio.gather(*(gov.stub.ProposeReference(same, metadata=gov.md("bianca")) for _ in range(6)))
    assert len({r.renewal_id for r in replies}) == 1
    renewal = replies[0]
    assert renewal.status == pb.TRANSITION_STATUS_PENDING and renewal.requested_by == "bianca"
    assert renewal.proposed.period.chosen_by == "bianca"
    assert renewal.previous.sha256 == registered.reference_profile.sha256
    assert list(renewal.unmet_requirements) == ["2 more approvals from board or clinician for reference renewal"]

    # Separation of duties: neither the proposer nor the registrant signs; an operator cannot either.
    for who in ("bianca", "olga"):
        assert await _code(_sign(gov, renewal.renewal_id, who)) == grpc.StatusCode.PERMISSION_DENIED
    both = pb.ApproveRequest(transition_id="t", renewal_id=renewal.renewal_id, meaning="x", request_id=rid("both"))
    assert await _code(gov.stub.Approve(both, metadata=gov.md("bert"))) == grpc.StatusCode.INVALID_ARGUMENT

    routes_start = await end_offsets(stack.kafka_bootstrap, ROUTES_TOPIC)
    first = await _sign(gov, renewal.renewal_id, "bert")
    assert first.renewal.status == pb.TRANSITION_STATUS_PENDING and first.approval.renewal_id == renewal.renewal_id
    assert not first.HasField("transition")
    assert (
        await gov.stub.GetVersion(pb.GetVersionRequest(model=V1), metadata=gov.md("clara"))
    ).reference_profile.sha256 == (registered.reference_profile.sha256)
    second = await _sign(gov, renewal.renewal_id, "clara")
    applied = second.renewal
    assert applied.status == pb.TRANSITION_STATUS_APPLIED and not applied.unmet_requirements
    assert [a.signer for a in applied.approvals] == ["bert", "clara"]
    assert applied.route_revision == routes_before.revision + 1

    # The new reference is in force; the old one stays on record.
    now = await gov.stub.GetVersion(pb.GetVersionRequest(model=V1), metadata=gov.md("clara"))
    assert (now.reference_profile.uri, now.reference_profile.sha256) == (path.as_uri(), sha)
    assert now.reference_profile.period.chosen_by == "bianca" and now.reference_profile.period.reads == 2900
    history = await gov.stub.ListReferenceRenewals(
        pb.ListReferenceRenewalsRequest(model_name=MODEL, model_version="1"), metadata=gov.md("clara")
    )
    assert [(r.renewal_id, r.previous.sha256) for r in history.renewals] == [
        (renewal.renewal_id, registered.reference_profile.sha256)
    ]

    # The route was republished for route followers.
    routes_after = await gov.app.service.get_routes(MODEL)
    assert routes_after.revision == applied.route_revision and routes_after.stable_version == "1"
    assert routes_after.reason.startswith("reference renewed for version '1'")
    table = await _route(gov)
    assert table.revision == applied.route_revision
    assert [(s.version, s.reference_uri, s.reference_sha256) for s in table.served] == [("1", path.as_uri(), sha)]

    # ... and on the compacted routes topic every gateway and the monitor runner follow.
    def tables(records: list[tuple[bytes | None, bytes]]) -> list[common_pb2.RouteTable]:
        events = (events_pb2.RouteTableEvent.FromString(v) for k, v in records if k == MODEL.encode())
        return [e.table for e in events]

    published = await read_topic(
        stack.kafka_bootstrap,
        ROUTES_TOPIC,
        routes_start,
        lambda records: any(t.revision == applied.route_revision for t in tables(records)),
    )
    (renewed,) = [t for t in tables(published) if t.revision == applied.route_revision]
    assert [(s.reference_uri, s.reference_sha256) for s in renewed.served] == [(path.as_uri(), sha)]

    # A second proposal can be withdrawn by its proposer; nothing changes.
    other = tmp_path / "other.npz"
    other.write_bytes(b"another period")
    pending = await gov.stub.ProposeReference(
        pb.ProposeReferenceRequest(
            model=V1, profile=_profile(other, hashlib.sha256(b"another period").hexdigest()), request_id=rid("p2")
        ),
        metadata=gov.md("olga"),
    )
    withdrawn = await gov.stub.RejectReferenceRenewal(
        pb.RejectReferenceRenewalRequest(renewal_id=pending.renewal_id, reason="wrong period", request_id=rid("rej")),
        metadata=gov.md("olga"),
    )
    assert withdrawn.status == pb.TRANSITION_STATUS_REJECTED and withdrawn.rejection_reason == "wrong period"

    audit = await gov.stub.QueryAudit(pb.QueryAuditRequest(page_size=1000), metadata=gov.md("clara"))
    actions = [e.action for e in audit.entries if e.action.startswith("reference.")]
    assert actions == [
        "reference.proposed",
        "reference.approved",
        "reference.update",
        "reference.approved",
        "reference.renewed",
        "reference.applied",
        "reference.proposed",
        "reference.rejected",
    ]
    denied = [
        e for e in audit.entries if e.action == "access.denied" and e.subject == f"reference/{renewal.renewal_id}"
    ]
    assert sorted(e.actor for e in denied) == ["bianca", "olga"]
    verdict = await gov.stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=gov.md("clara"))
    assert verdict.ok, verdict.reason


async def test_cli_propose_approve_list(
    governance: GovHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``radguard reference propose/approve/list`` against the service, with a profile as the builder writes it."""
    import json
    import re

    import numpy as np
    from typer.testing import CliRunner

    from services.cli import governance_commands
    from services.cli.main import app as cli
    from services.monitors.core.reference_build import write_profile

    monkeypatch.setattr(governance_commands._out, "width", 300)  # lines unwrapped in the captured output
    gov = governance
    message = version_from_repo(REPO_ROOT / "model_repo", MODEL, 1, policy="e2e")
    await gov.stub.RegisterVersion(
        pb.RegisterVersionRequest(version=message, request_id=rid("reg")), metadata=gov.md("olga")
    )
    metadata = {
        "labels": "reads",
        "period": {
            "model_name": MODEL,
            "model_version": "1",
            "since": "2026-11-01T00:00:00+00:00",
            "until": "2026-12-01T00:00:00+00:00",
            "arms": ["stable"],
        },
        "studies": 3000,
        "n": 2900,
        "reads": 2900,
        "read_positives": 610,
        "threshold": 0.5,
    }
    profile = tmp_path / "reference_profile.npz"
    write_profile(profile, {"logits": np.zeros(3, np.float32), "metadata": np.array(json.dumps(metadata))})
    runner = CliRunner()
    common = ["--target", gov.target]

    def run(*args: str, who: str) -> str:
        done = runner.invoke(cli, [*args, *common, "--token", gov.tokens[who]], terminal_width=200)
        assert done.exit_code == 0, (done.output, done.exception)
        return done.output

    proposed = await asyncio.to_thread(
        run, "reference", "propose", MODEL, "1", "--profile", str(profile), "--reason", "November period", who="olga"
    )
    match = re.search(r"reference renewal (\S+) of chest_nodule 1: pending", proposed)
    assert match, proposed
    renewal_id = match.group(1)
    assert "1 more approval from board for reference renewal" in proposed
    assert "2,900 reads, 610 positive; chosen by olga" in proposed

    signed = await asyncio.to_thread(run, "reference", "approve", renewal_id, who="bert")
    assert "signed by bert" in signed and "applied" in signed and "version on no route" in signed

    listed = await asyncio.to_thread(run, "reference", "list", MODEL, "1", who="clara")
    sha = hashlib.sha256(profile.read_bytes()).hexdigest()
    assert f"in force for {MODEL} 1: {profile.resolve().as_uri()} ({sha[:12]}" in listed
    assert listed.count("reference renewal ") == 1 and "signed by bert" in listed
