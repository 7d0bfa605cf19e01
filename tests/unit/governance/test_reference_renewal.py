"""Reference renewals over the in-memory store: policy rule, validation, signatures, routes, history."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import pytest

from governance.domain.lifecycle import State
from governance.domain.model import ReferencePeriod, Role, TransitionStatus
from governance.domain.policy import DEFAULT_REFERENCE_RENEWAL_RULE, PolicyCatalog, parse_policy
from governance.domain.signing import renewal_record, verify_approval
from services.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from tests.unit.governance.builders import (
    BOARD,
    BOARD2,
    CLINICIAN,
    MODEL,
    OPERATOR,
    OPERATOR2,
    World,
    keyring,
    memory_world,
)

pytestmark = pytest.mark.asyncio

NEW_SHA = "ef" * 32
PERIOD = ReferencePeriod(
    labelled_by="reads",
    description="production, site A and B, 2026-11",
    studies=5000,
    reads=4800,
    read_positives=1000,
    start=datetime(2026, 11, 1, tzinfo=UTC),
    end=datetime(2026, 11, 30, tzinfo=UTC),
)


@pytest.fixture
def world() -> World:
    return memory_world()


async def _propose(world: World, version: str = "1", *, actor=OPERATOR2, sha: str = NEW_SHA, period=PERIOD, uri=""):
    return await world.service.propose_reference(
        actor, MODEL, version, uri or f"s3://refs/{sha[:8]}.npz", sha, period, "quarterly renewal", world.rid()
    )


async def test_policy_default_is_the_production_rule():
    catalog = PolicyCatalog()
    standard = catalog.get("standard")
    assert standard.reference_renewal is None
    assert standard.reference_renewal_rule() == standard.approvals["canary->production"]
    assert standard.reference_renewal_rule().count == 2
    fast = catalog.get("fast-test")
    assert fast.reference_renewal_rule() == fast.approvals["canary->production"]


async def test_policy_explicit_rule_and_fallbacks():
    base = PolicyCatalog().get("fast-test").model_dump(mode="json")
    explicit = {**base, "reference_renewal": {"count": 3, "roles": ["board"], "distinct_signers": True}}
    policy = parse_policy(explicit, "fast-test.yaml")
    assert (policy.reference_renewal_rule().count, policy.reference_renewal_rule().roles) == (3, (Role.BOARD,))
    free = parse_policy({**base, "reference_renewal": {"count": 0, "roles": ["board"]}}, "fast-test.yaml")
    assert free.reference_renewal_rule() is None
    bare = parse_policy({**base, "approvals": {}}, "fast-test.yaml")
    assert bare.reference_renewal_rule() == DEFAULT_REFERENCE_RENEWAL_RULE
    with pytest.raises(Exception, match=r"reference_renewal\.roles: must not repeat a role"):
        parse_policy({**base, "reference_renewal": {"count": 1, "roles": ["board", "board"]}}, "fast-test.yaml")


async def test_propose_sign_apply_keeps_history(world):
    v1 = await world.register("1", policy="standard")
    r = await _propose(world)
    assert (r.status, r.requested_by, r.proposed.chosen_by) == (TransitionStatus.PENDING, "otto", "otto")
    assert r.previous.sha256 == v1.spec.reference_sha256 and r.previous.chosen_by == "olga"
    assert r.unmet == ("2 more approvals from board or clinician for reference renewal",)
    assert (await world.service.get_version(MODEL, "1")).spec.reference_sha256 == v1.spec.reference_sha256

    approval, r = await world.service.approve_reference(BOARD, r.renewal_id, "approve reference", world.rid())
    assert r.status == TransitionStatus.PENDING and len(r.unmet) == 1
    fields = renewal_record(r.renewal_id, NEW_SHA, "bea", "board", "approve reference", approval.signed_at)
    assert verify_approval(keyring(), fields, approval.signature, approval.algorithm, approval.key_id)
    assert not verify_approval(
        keyring(), {**fields, "reference_sha256": "00" * 32}, approval.signature, approval.algorithm, approval.key_id
    )
    _, r = await world.service.approve_reference(CLINICIAN, r.renewal_id, "", world.rid())
    assert r.status == TransitionStatus.APPLIED and r.unmet == () and r.decided_at is not None
    assert r.route_revision == 0  # on no route

    now = await world.service.get_version(MODEL, "1")
    assert (now.spec.reference_sha256, now.spec.reference_period, now.reference.chosen_by) == (NEW_SHA, PERIOD, "otto")
    assert now.reference_renewal_id == r.renewal_id and now.state == State.REGISTERED
    history = await world.service.list_reference_renewals(MODEL, "1")
    assert [h.renewal_id for h in history] == [r.renewal_id]
    assert history[0].previous.sha256 == v1.spec.reference_sha256
    assert [a.signer for a in history[0].approvals] == ["bea", "cleo"]
    records, _ = await world.service.query_audit(page_size=1000)
    actions = [x.action for x in records if x.action.startswith("reference.")]
    assert actions == [
        "reference.proposed",
        "reference.approved",
        "reference.update",
        "reference.approved",
        "reference.renewed",
        "reference.applied",
    ]
    assert (await world.service.verify_audit()).ok


async def test_separation_of_duties_and_roles(world):
    await world.register("1", policy="standard")  # registered by olga
    r = await _propose(world, actor=BOARD2)
    for actor, message in (
        (BOARD2, "proposed reference renewal"),
        (OPERATOR, "may not approve"),
    ):
        with pytest.raises(PermissionDenied, match=message):
            await world.service.approve_reference(actor, r.renewal_id, "x", world.rid())
    registrant_world = memory_world()
    await registrant_world.register("1", actor=BOARD, policy="standard")
    r2 = await _propose(registrant_world)
    with pytest.raises(PermissionDenied, match="registered model/chest-nodule/1"):
        await registrant_world.service.approve_reference(BOARD, r2.renewal_id, "x", registrant_world.rid())
    _, r = await world.service.approve_reference(BOARD, r.renewal_id, "x", world.rid())
    with pytest.raises(FailedPrecondition, match="already approved"):
        await world.service.approve_reference(BOARD, r.renewal_id, "x", world.rid())
    with pytest.raises(PermissionDenied, match="may not propose reference"):
        await _propose(world, "1", actor=CLINICIAN)
    records, _ = await world.service.query_audit(action="access.denied", page_size=100)
    assert len(records) == 3


async def test_validation_names_the_field(world):
    await world.register("1")
    cases = [
        ({"sha": "XYZ"}, "profile.sha256"),
        ({"period": None}, "profile.period"),
        ({"period": ReferencePeriod("votes", "x", 1, 1, 0)}, "profile.period.labelled_by"),
        ({"period": ReferencePeriod("ground_truth", "x", 1, 1, 0)}, "profile.period.labelled_by"),
        ({"period": ReferencePeriod("reads", "x", -1, 0, 0, PERIOD.start, PERIOD.end)}, "profile.period.studies"),
        ({"period": ReferencePeriod("reads", "x", 10, 11, 0, PERIOD.start, PERIOD.end)}, "profile.period.reads"),
        (
            {"period": ReferencePeriod("reads", "x", 10, 5, 6, PERIOD.start, PERIOD.end)},
            "profile.period.read_positives",
        ),
        ({"period": ReferencePeriod("reads", "x", 10, 5, 1, PERIOD.end, PERIOD.start)}, "profile.period.start_time"),
        ({"period": ReferencePeriod("reads", "x", 10, 5, 1, None, PERIOD.end)}, "profile.period.start_time"),
        ({"sha": "cd" * 32}, "profile.sha256"),  # the reference already in force
        ({"uri": "file:///nonexistent/reference_profile.npz"}, "profile.uri"),
        ({"uri": "file:///dev/zero"}, "profile.uri"),
        ({"uri": "file:///tmp/a%00b"}, "profile.uri"),
        ({"uri": "file:///proc/self/status"}, "profile.uri"),
    ]
    for changes, field in cases:
        with pytest.raises(InvalidArgument) as error:
            await _propose(world, **changes)
        assert error.value.field == field, (changes, error.value)
    with pytest.raises(NotFound):
        await _propose(world, "9")


async def test_local_file_must_hash_to_sha(world, tmp_path):
    await world.register("1")
    path = tmp_path / "reference_profile.npz"
    path.write_bytes(b"profile bytes")
    digest = hashlib.sha256(b"profile bytes").hexdigest()
    with pytest.raises(InvalidArgument, match=r"profile\.sha256: does not match the bytes of"):
        await _propose(world, uri=path.as_uri())
    r = await _propose(world, uri=path.as_uri(), sha=digest)
    assert r.proposed.uri == path.as_uri()


async def test_terminal_version_and_one_pending(world):
    await world.production("1")
    await world.register("2")
    await world.move("2", State.REJECTED, approvers=())
    with pytest.raises(FailedPrecondition, match="version is rejected"):
        await _propose(world, "2")
    await world.register("3")
    await world.move("3", State.VALIDATED, approvers=())
    await world.move("3", State.RETIRED, approvers=())
    with pytest.raises(FailedPrecondition, match="version is retired"):
        await _propose(world, "3")
    r = await _propose(world, "1")
    with pytest.raises(FailedPrecondition, match=f"{r.renewal_id} is already pending"):
        await _propose(world, "1", sha="aa" * 32)
    rejected = await world.service.reject_reference(BOARD, r.renewal_id, "period too short", world.rid())
    assert (rejected.status, rejected.rejection_reason) == (TransitionStatus.REJECTED, "period too short")
    with pytest.raises(FailedPrecondition, match="is rejected, not pending"):
        await world.service.approve_reference(BOARD, r.renewal_id, "x", world.rid())
    again = await _propose(world, "1", sha="aa" * 32)
    with pytest.raises(PermissionDenied, match="only their own proposal"):
        await world.service.reject_reference(OPERATOR, again.renewal_id, "", world.rid())
    assert (await world.service.reject_reference(OPERATOR2, again.renewal_id, "", world.rid())).status == "rejected"
    assert (await world.service.get_version(MODEL, "1")).spec.reference_sha256 == "cd" * 32


async def test_renewal_of_a_routed_version_republishes_its_route(world):
    await world.production("1")
    before = await world.service.get_routes(MODEL)
    r = await _propose(world, "1")
    _, r = await world.service.approve_reference(BOARD, r.renewal_id, "approve reference", world.rid())
    assert r.status == TransitionStatus.APPLIED
    after = await world.service.get_routes(MODEL)
    assert after.revision == before.revision + 1 == r.route_revision
    assert after.stable_version == "1" and after.reason.startswith("reference renewed for version '1'")
    # Route followers (gateways, the monitor runner) read the version's reference from the table's served entry.
    served = {s.version: s for s in after.served}
    assert (served["1"].reference_uri, served["1"].reference_sha256) == (r.proposed.uri, NEW_SHA)
    assert {s.version: s.reference_sha256 for s in before.served} == {"1": "cd" * 32}


async def test_concurrent_retries_of_one_request_id_apply_once(world):
    await world.register("1")
    calls = [
        world.service.propose_reference(OPERATOR2, MODEL, "1", "s3://r.npz", NEW_SHA, PERIOD, "", "same-id")
        for _ in range(8)
    ]
    results = await asyncio.gather(*calls)
    assert len({r.renewal_id for r in results}) == 1
    assert len(await world.service.list_reference_renewals(MODEL)) == 1


async def test_a_request_id_of_a_transition_approval_is_not_reused_for_a_renewal(world):
    await world.register("1", policy="standard")
    t = await world.service.request_transition(OPERATOR, MODEL, "1", State.VALIDATED, "", world.rid())
    await world.service.approve(BOARD, t.transition_id, "approve", "sign-1")
    r = await _propose(world)
    with pytest.raises(InvalidArgument, match="request_id: already used for approve"):
        await world.service.approve_reference(BOARD, r.renewal_id, "approve", "sign-1")


async def test_a_local_profile_must_lie_in_the_roots_after_links_are_resolved(tmp_path):
    from governance.domain.references import check_local_file

    root, outside = tmp_path / "references", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    inside = root / "reference_profile.npz"
    inside.write_bytes(b"profile bytes")
    digest = hashlib.sha256(b"profile bytes").hexdigest()
    check_local_file(inside.as_uri(), digest, roots=(root,))
    secret = outside / "secret.npz"
    secret.write_bytes(b"profile bytes")
    escape = root / "escape.npz"
    escape.symlink_to(secret)
    for uri in (secret.as_uri(), escape.as_uri(), (root / ".." / "elsewhere" / "secret.npz").as_uri()):
        with pytest.raises(InvalidArgument, match=r"profile\.uri: is outside the folders") as refused:
            check_local_file(uri, digest, roots=(root,))
        assert refused.value.field == "profile.uri"
    # Unrestricted when no roots are configured (library use), still checked for its bytes.
    check_local_file(secret.as_uri(), digest, roots=None)
