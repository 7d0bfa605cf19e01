"""Governance commands over the in-memory store: results, refusals, idempotency and no partial state."""

from __future__ import annotations

import dataclasses

import pytest

from governance.adapters.memory import MemoryStore
from governance.domain.gates import FindingRef
from governance.domain.lifecycle import State
from governance.domain.model import GateDecision, RolloutStatus, TransitionStatus
from governance.domain.policy import POLICY_DIR, PolicyCatalog
from governance.domain.signing import approval_record, verify_approval
from governance.service import GovernanceService
from services.runtime.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from tests.unit.governance.builders import (
    BOARD,
    BOARD2,
    BOARD_REGISTRANT,
    CLINICIAN,
    MODEL,
    OPERATOR,
    SERVICE,
    World,
    evidence,
    keyring,
    memory_world,
    spec,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def world() -> World:
    return memory_world()


async def _actions(world: World) -> list[str]:
    records, _ = await world.service.query_audit(page_size=1000)
    return [r.action for r in records]


async def test_register_and_read(world):
    v = await world.register("1")
    assert (v.state, v.registered_by, v.policy_ref, v.row_version) == (State.REGISTERED, "olga", "fast-test@1", 1)
    assert await world.service.get_version(MODEL, "1") == v
    page, token = await world.service.list_versions(MODEL)
    assert page == [v] and token == ""
    assert await _actions(world) == ["version.register"]


async def test_duplicate_registration(world):
    await world.register("1")
    with pytest.raises(AlreadyExists, match="model 'chest-nodule' version '1' already exists"):
        await world.register("1", model_card="a correction must be a new version")
    assert len((await world.service.list_versions())[0]) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"artifact_sha256": "xyz"}, "spec.artifact_sha256: must be 64 lowercase hex digits"),
        ({"policy_name": "nope"}, "spec.policy_name: unknown policy 'nope'"),
        ({"operating_threshold": 1.5}, "spec.operating_threshold: must be within [0, 1]"),
        ({"parent_version": "0"}, "spec.parent_version: unknown version '0'"),
        ({"model_name": " "}, "spec.model_name: must not be empty"),
    ],
)
async def test_invalid_registration(world, changes, message):
    with pytest.raises(InvalidArgument) as info:
        await world.service.register_version(OPERATOR, spec("1", **changes), world.rid())
    assert info.value.message == message
    assert await _actions(world) == []


async def test_idempotent_request_id(world):
    first = await world.service.register_version(OPERATOR, spec("1"), "same")
    again = await world.service.register_version(OPERATOR, spec("1"), "same")
    assert again == first
    t1 = await world.service.request_transition(OPERATOR, MODEL, "1", State.VALIDATED, "ok", "t")
    t2 = await world.service.request_transition(OPERATOR, MODEL, "1", State.VALIDATED, "ok", "t")
    assert t1 == t2 and t1.status == TransitionStatus.APPLIED
    assert (await _actions(world)).count("version.register") == 1
    with pytest.raises(InvalidArgument, match="request_id: already used for register_version"):
        await world.service.request_transition(OPERATOR, MODEL, "1", State.SHADOW, "x", "same")


async def test_unknown_version(world):
    with pytest.raises(NotFound, match="model 'chest-nodule' version '9' not found"):
        await world.service.get_version(MODEL, "9")
    with pytest.raises(NotFound):
        await world.service.request_transition(OPERATOR, MODEL, "9", State.VALIDATED, "", world.rid())
    with pytest.raises(NotFound, match="transition 'nope' not found"):
        await world.service.approve(BOARD, "nope", "", world.rid())


async def test_illegal_transition_names_missing_condition(world):
    await world.register("1")
    with pytest.raises(FailedPrecondition) as info:
        await world.service.request_transition(OPERATOR, MODEL, "1", State.CANARY, "", world.rid())
    assert info.value.message == "canary requires state validated or shadow; version is registered"
    await world.move("1", State.VALIDATED)
    with pytest.raises(FailedPrecondition, match="canary requires a production version of model 'chest-nodule'"):
        await world.service.request_transition(OPERATOR, MODEL, "1", State.CANARY, "", world.rid())


async def test_shadow_predictions_required_for_canary(world):
    await world.production("1")
    await world.shadow("2", predictions=5)
    with pytest.raises(FailedPrecondition, match="canary requires 20 shadow predictions; version has 5"):
        await world.service.request_transition(OPERATOR, MODEL, "2", State.CANARY, "", world.rid())


async def test_registrant_cannot_approve_and_is_audited(world):
    await world.register("1", actor=BOARD_REGISTRANT)
    await world.move("1", State.VALIDATED)
    t = await world.service.request_transition(OPERATOR, MODEL, "1", State.PRODUCTION, "first", world.rid())
    assert t.status == TransitionStatus.PENDING and t.unmet == ("1 more approval from board for validated->production",)
    with pytest.raises(PermissionDenied, match="bree registered model/chest-nodule/1 and may not approve"):
        await world.service.approve(BOARD_REGISTRANT, t.transition_id, "approve", world.rid())
    records, _ = await world.service.query_audit(action="access.denied")
    assert [(r.actor, r.subject) for r in records] == [("bree", f"transition/{t.transition_id}")]
    assert (await world.service.get_version(MODEL, "1")).state == State.VALIDATED


async def test_wrong_role_is_denied_and_audited(world):
    with pytest.raises(PermissionDenied, match="role clinician may not register version"):
        await world.service.register_version(CLINICIAN, spec("1"), world.rid())
    await world.register("1")
    await world.move("1", State.VALIDATED)
    t = await world.service.request_transition(OPERATOR, MODEL, "1", State.PRODUCTION, "", world.rid())
    with pytest.raises(PermissionDenied, match="role clinician may not approve validated->production"):
        await world.service.approve(CLINICIAN, t.transition_id, "", world.rid())
    with pytest.raises(PermissionDenied):
        await world.service.approve(OPERATOR, t.transition_id, "", world.rid())
    assert (await _actions(world)).count("access.denied") == 3
    assert (await world.service.verify_audit()).ok


async def test_approval_is_signed_and_applies(world):
    await world.production("1")
    routes = await world.service.get_routes(MODEL)
    assert (routes.stable_version, routes.revision) == ("1", 1)
    assert world.triton.loaded == {"chest_nodule": {1}}
    transitions = await world.service.list_transitions(MODEL, "1")
    approval = transitions[-1].approvals[0]
    fields = approval_record(
        approval.transition_id, approval.signer, approval.role, approval.meaning, approval.signed_at
    )
    assert verify_approval(keyring(), fields, approval.signature, approval.algorithm, approval.key_id)
    assert [m.kind for m in world.store.outbox].count("route") == 1


async def test_route_tables_carry_what_serves_and_judges_every_version(world):
    await world.production("1")
    await world.shadow("2")
    await world.register("3", triton_model="chest_nodule_big", triton_version=7, reference_uri="file:///r3.npz")
    await world.move("3", State.VALIDATED)
    await world.move("3", State.SHADOW)
    routes = await world.service.get_routes(MODEL)
    assert (routes.stable_version, routes.shadow_versions) == ("1", ("2", "3"))
    assert [(s.version, s.triton_model, s.triton_version, s.reference_uri) for s in routes.served] == [
        ("1", "chest_nodule", 1, "model_repo/chest_nodule/reference.json"),
        ("2", "chest_nodule", 2, "model_repo/chest_nodule/reference.json"),
        ("3", "chest_nodule_big", 7, "file:///r3.npz"),
    ]
    assert {s.reference_sha256 for s in routes.served} == {"cd" * 32}
    assert world.triton.loaded == {"chest_nodule": {1, 2}, "chest_nodule_big": {7}}
    last = [m for m in world.store.outbox if m.kind == "route"][-1]
    assert [entry["version"] for entry in last.payload["served"]] == ["1", "2", "3"]


async def test_a_registry_name_of_its_own_is_served_by_another_triton_model(world):
    name = "chest_nodule-demo-1"
    await world.service.register_version(OPERATOR, spec("1", model_name=name), world.rid())
    for to in (State.VALIDATED, State.PRODUCTION):
        t = await world.service.request_transition(OPERATOR, name, "1", to, "", world.rid())
        if t.status == TransitionStatus.PENDING:
            await world.service.approve(BOARD, t.transition_id, "", world.rid())
    routes = await world.service.get_routes(name)
    assert routes.stable_version == "1"
    assert [(s.version, s.triton_model, s.triton_version) for s in routes.served] == [("1", "chest_nodule", 1)]
    assert world.triton.loaded == {"chest_nodule": {1}}


async def test_a_triton_version_another_models_route_serves_stays_loaded(world):
    await world.production("1")
    await world.shadow("2")  # chest-nodule shadows v2 on Triton chest_nodule 2
    other = "chest_nodule-demo-2"
    for label in ("1", "2"):
        await world.service.register_version(OPERATOR, spec(label, model_name=other), world.rid())
    moves = (("1", State.VALIDATED), ("1", State.PRODUCTION), ("2", State.VALIDATED), ("2", State.SHADOW))
    for label, to in (*moves, ("2", State.REJECTED)):
        t = await world.service.request_transition(OPERATOR, other, label, to, "", world.rid())
        if t.status == TransitionStatus.PENDING:
            await world.service.approve(BOARD, t.transition_id, "", world.rid())
    assert (await world.service.get_version(other, "2")).state == State.REJECTED
    assert (await world.service.get_routes(other)).shadow_versions == ()
    # The demo's v2 left every route of its own, but chest-nodule's route still shadows Triton chest_nodule 2.
    assert world.triton.loaded == {"chest_nodule": {1, 2}}


async def test_same_signer_twice_is_refused(world):
    await world.register("1")
    await world.move("1", State.VALIDATED)
    world.service._policies._cache["fast-test"] = world.service._policies.get("standard").model_copy(
        update={"name": "fast-test"}
    )  # two signatures needed
    t = await world.service.request_transition(OPERATOR, MODEL, "1", State.PRODUCTION, "", world.rid())
    _, t = await world.service.approve(BOARD, t.transition_id, "", world.rid())
    with pytest.raises(FailedPrecondition, match="bea has already approved"):
        await world.service.approve(BOARD, t.transition_id, "", world.rid())
    _, t = await world.service.approve(BOARD2, t.transition_id, "", world.rid())
    assert t.status == TransitionStatus.APPLIED and len(t.approvals) == 2


async def test_stale_row_version_conflicts_without_partial_state(world):
    await world.register("1")
    v = await world.service.get_version(MODEL, "1")
    store: MemoryStore = world.store
    with pytest.raises(Conflict):
        async with store.transaction() as tx:
            await tx.update_version(dataclasses.replace(v, state=State.VALIDATED), v.row_version)
            await tx.append_audit(OPERATOR, "x", "y", None, None, "r", world.clock.now())
            await tx.update_version(dataclasses.replace(v, state=State.REJECTED), v.row_version)  # stale now
    assert (await world.service.get_version(MODEL, "1")).state == State.REGISTERED
    assert len(store.audit_rows) == 1


async def test_failed_command_leaves_no_partial_state(world):
    await world.production("1")
    await world.register("2")
    await world.move("2", State.VALIDATED)
    t = await world.service.request_transition(OPERATOR, MODEL, "2", State.SHADOW, "", world.rid())
    before = (len(world.store.audit_rows), len(world.store.outbox), await world.service.get_routes(MODEL))
    world.triton.fail = True  # loading v2 for its shadow route fails inside the approving transaction
    with pytest.raises(Exception, match="triton is unavailable"):
        await world.service.approve(BOARD, t.transition_id, "", world.rid())
    assert (len(world.store.audit_rows), len(world.store.outbox), await world.service.get_routes(MODEL)) == before
    assert (await world.service.get_version(MODEL, "2")).state == State.VALIDATED
    stored = await world.service.list_transitions(MODEL, "2")
    assert stored[-1].status == TransitionStatus.PENDING and stored[-1].approvals == ()


async def test_healthy_rollout_becomes_production(world):
    r = await world.canary("2")
    assert (r.status, r.step_index, r.weight_bp) == (RolloutStatus.RUNNING, 0, 2000)
    world.evidence.set(MODEL, "2", "canary", evidence(400, seed=1))
    world.evidence.set(MODEL, "1", "stable", evidence(400, seed=2))
    r = await world.service.evaluate_rollout(SERVICE, r.rollout_id, world.rid())
    r = await world.service.evaluate_rollout(SERVICE, r.rollout_id, world.rid())
    assert (r.step_index, r.weight_bp) == (2, 10000)
    r = await world.service.evaluate_rollout(SERVICE, r.rollout_id, world.rid())
    assert r.status == RolloutStatus.RUNNING and r.last_decision == GateDecision.PROMOTE
    assert r.reasons[-1] == "final step passed; awaiting approvals for canary->production"
    t = await world.move("2", State.PRODUCTION)
    assert t.status == TransitionStatus.APPLIED
    routes = await world.service.get_routes(MODEL)
    assert (routes.stable_version, routes.canary_version, routes.canary_weight_bp) == ("2", "", 0)
    assert (await world.service.get_version(MODEL, "1")).state == State.RETIRED
    assert world.triton.loaded == {"chest_nodule": {2}}
    assert (await world.service.get_rollout(model_name=MODEL)).status == RolloutStatus.COMPLETED
    assert (await world.service.verify_audit()).ok


async def test_breach_aborts_and_rolls_back(world):
    r = await world.canary("2")
    world.evidence.breach(MODEL, "2", FindingRef("f-9", "bias"))
    r = await world.service.evaluate_rollout(SERVICE, r.rollout_id, world.rid())
    assert (r.status, r.weight_bp, r.last_decision) == (RolloutStatus.ABORTED, 0, GateDecision.ABORT)
    routes = await world.service.get_routes(MODEL)
    assert (routes.stable_version, routes.canary_version) == ("1", "")
    assert (await world.service.get_version(MODEL, "2")).state == State.ROLLED_BACK
    assert world.triton.loaded == {"chest_nodule": {1}}
    actions = await _actions(world)
    assert actions.index("rollout.abort") < actions.index("routes.update", actions.index("rollout.abort"))


async def test_pause_resume_promote_and_manual_abort(world):
    r = await world.canary("2")
    r = await world.service.pause_rollout(OPERATOR, r.rollout_id, "freeze", world.rid())
    assert r.status == RolloutStatus.PAUSED and r.reasons[-1] == "paused by olga: freeze"
    with pytest.raises(FailedPrecondition, match="pause requires a running rollout"):
        await world.service.pause_rollout(OPERATOR, r.rollout_id, "again", world.rid())
    r = await world.service.resume_rollout(OPERATOR, r.rollout_id, "go", world.rid())
    r = await world.service.promote_rollout(OPERATOR, r.rollout_id, "looks fine", world.rid())
    assert (r.step_index, r.weight_bp) == (1, 5000)
    assert (await world.service.get_routes(MODEL)).canary_weight_bp == 5000
    r = await world.service.abort_rollout(BOARD, r.rollout_id, "board decision", world.rid())
    assert r.status == RolloutStatus.ABORTED
    with pytest.raises(FailedPrecondition):
        await world.service.abort_rollout(BOARD, r.rollout_id, "twice", world.rid())


async def test_promote_refused_when_gate_fails(world):
    r = await world.canary("2")
    world.evidence.set(MODEL, "2", "canary", evidence(600, seed=1, scanner_bad="b"))
    world.evidence.set(MODEL, "1", "stable", evidence(600, seed=2))
    with pytest.raises(FailedPrecondition, match="promote refused: gate max_subgroup_sensitivity_gap failed"):
        await world.service.promote_rollout(OPERATOR, r.rollout_id, "", world.rid())
    assert (await world.service.get_rollout(r.rollout_id)).step_index == 0


async def test_unauthorised_promote_is_refused_and_audited(world):
    r = await world.canary("2")
    with pytest.raises(PermissionDenied):
        await world.service.promote_rollout(CLINICIAN, r.rollout_id, "", world.rid())
    records, _ = await world.service.query_audit(action="access.denied")
    assert records[-1].subject == f"rollout/{r.rollout_id}" and records[-1].actor == "cleo"


async def test_rollback_restores_previous_production(world):
    r = await world.canary("2")
    await world.service.promote_rollout(OPERATOR, r.rollout_id, "", world.rid())
    await world.service.promote_rollout(OPERATOR, r.rollout_id, "", world.rid())
    await world.move("2", State.PRODUCTION)
    r = await world.service.promote_rollout(OPERATOR, r.rollout_id, "", world.rid())
    assert r.status == RolloutStatus.COMPLETED
    routes, gone, restored = await world.service.rollback(OPERATOR, MODEL, None, "incident 42", world.rid())
    assert (routes.stable_version, gone.version, gone.state, restored.version, restored.state) == (
        "1", "2", State.ROLLED_BACK, "1", State.PRODUCTION,
    )  # fmt: skip
    assert world.triton.loaded == {"chest_nodule": {1}}
    at_t = await world.service.routes_at(MODEL, routes.updated_at)
    assert at_t == routes
    with pytest.raises(
        FailedPrecondition, match="rollback target must be a retired earlier production version; '2' is rolled_back"
    ):
        await world.service.rollback(OPERATOR, MODEL, None, "again", world.rid())


async def test_rollback_during_rollout_aborts_it(world):
    r = await world.canary("2")
    routes, gone, restored = await world.service.rollback(SERVICE, MODEL, None, "alarm", world.rid())
    assert (routes.canary_version, gone.state, restored.version) == ("", State.ROLLED_BACK, "1")
    assert (await world.service.get_rollout(r.rollout_id)).status == RolloutStatus.ABORTED


async def test_start_rollout_needs_approval(world):
    await world.production("1")
    await world.shadow("2")
    with pytest.raises(FailedPrecondition, match="version is not approved for canary: 1 more approval"):
        await world.service.start_rollout(OPERATOR, MODEL, "2", "", world.rid())


async def test_audit_pages_and_verify_ranges(world):
    await world.production("1")
    page1, token = await world.service.query_audit(page_size=3)
    page2, _ = await world.service.query_audit(page_size=3, page_token=token)
    assert [r.seq for r in page1 + page2] == [1, 2, 3, 4, 5, 6]
    verdict = await world.service.verify_audit(3, 5)
    assert verdict.ok and verdict.entries_checked == 3


async def test_first_route_table_continues_from_the_distributed_revision():
    asked: list[str] = []

    async def floor(model_name: str) -> int:
        asked.append(model_name)
        return 41

    world = memory_world()
    world.service = GovernanceService(
        world.store, world.triton, world.evidence, PolicyCatalog(), keyring(), world.clock, route_revision_floor=floor
    )
    await world.production("1")
    assert (await world.service.get_routes(MODEL)).revision == 42
    await world.shadow("2")
    assert (await world.service.get_routes(MODEL)).revision == 43  # later tables follow the store, not the topic
    assert asked == [MODEL]


async def test_a_version_keeps_the_policy_revision_it_was_registered_under(tmp_path):
    """A newer revision of the plan does not apply to versions registered under the old one."""
    folder = tmp_path / "policies"
    folder.mkdir()
    source = (PolicyCatalog().get("fast-test"), (POLICY_DIR / "fast-test.yaml").read_text())
    (folder / "fast-test.yaml").write_text(source[1])
    world = memory_world()
    world.service = GovernanceService(
        world.store, world.triton, world.evidence, PolicyCatalog(folder), keyring(), world.clock
    )
    await world.canary("2")
    rollout = await world.service.get_rollout(model_name=MODEL)
    assert rollout.policy_ref == f"fast-test@{source[0].revision}"

    # Revision 2 of the plan raises the weights; the running rollout's version still follows revision 1.
    revised = source[1].replace(f"revision: {source[0].revision}", f"revision: {source[0].revision + 1}")
    (folder / "history").mkdir()
    (folder / "history" / f"fast-test@{source[0].revision}.yaml").write_text(source[1])
    (folder / "fast-test.yaml").write_text(revised)
    fresh = PolicyCatalog(folder)
    world.service = GovernanceService(world.store, world.triton, world.evidence, fresh, keyring(), world.clock)
    evaluated = await world.service.evaluate_rollout(SERVICE, rollout.rollout_id, world.rid())
    assert evaluated.policy_ref == f"fast-test@{source[0].revision}"
    assert fresh.get("fast-test").revision == source[0].revision + 1

    # Without the superseded revision kept in history/, commands on that version are refused, naming why.
    (folder / "history" / f"fast-test@{source[0].revision}.yaml").unlink()
    world.service = GovernanceService(
        world.store, world.triton, world.evidence, PolicyCatalog(folder), keyring(), world.clock
    )
    with pytest.raises(FailedPrecondition, match=r"fast-test@1 \(the version's change-control plan\) is no longer"):
        await world.service.evaluate_rollout(SERVICE, rollout.rollout_id, world.rid())
