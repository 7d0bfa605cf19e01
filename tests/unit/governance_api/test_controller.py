"""The rollout controller over the in-memory governance service: breach findings and ticks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from governance.adapters.memory import FakeEvidence, FakeTriton, ManualClock, MemoryStore
from governance.domain.gates import ArmEvidence
from governance.domain.lifecycle import State
from governance.domain.model import Actor, Role, RolloutStatus
from governance.domain.policy import PolicyCatalog
from governance.domain.signing import Keyring
from governance.service import GovernanceService
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.cli.governance_commands import version_from_repo
from services.governance_api.adapters import convert
from services.governance_api.adapters.findings_kafka import notice_of
from services.governance_api.app import BreachKindsOf
from services.governance_api.controller import FindingNotice, RolloutController

REPO = Path(__file__).resolve().parents[3] / "model_repo"
OPERATOR = Actor("olga", Role.OPERATOR)
BOARD = Actor("bert", Role.BOARD)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def running_canary() -> tuple[GovernanceService, MemoryStore, str]:
    store = MemoryStore()
    evidence = FakeEvidence()
    keyring = Keyring()
    keyring.generate("bert")
    policies = PolicyCatalog()
    service = GovernanceService(store, FakeTriton(), evidence, policies, keyring, ManualClock())

    def rid() -> str:
        return uuid.uuid4().hex

    for n in (1, 2):
        spec = convert.spec_from_proto(version_from_repo(REPO, "chest_nodule", n, policy="fast-test"))
        await service.register_version(OPERATOR, spec, rid())
        await service.request_transition(OPERATOR, "chest_nodule", str(n), State.VALIDATED, "", rid())

    async def move(version: str, to: State) -> None:
        t = await service.request_transition(OPERATOR, "chest_nodule", version, to, "", rid())
        if t.unmet:
            await service.approve(BOARD, t.transition_id, "approve", rid())

    await move("1", State.PRODUCTION)
    await move("2", State.SHADOW)
    evidence.set("chest_nodule", "2", "shadow", ArmEvidence(scores=[0.5] * 25))
    await move("2", State.CANARY)
    rollout = await service.start_rollout(OPERATOR, "chest_nodule", "2", "test", rid())
    assert rollout.status is RolloutStatus.RUNNING
    return service, store, rollout.rollout_id


def finding(version: str, severity: int, kind: int = events_pb2.MONITOR_KIND_DRIFT) -> FindingNotice:
    return notice_of(
        events_pb2.Finding(
            finding_id=str(uuid.uuid4()),
            kind=kind,
            model=common_pb2.ModelRef(model_name="chest_nodule", model_version=version),
            arm=common_pb2.ARM_CANARY,
            severity=severity,
            summary="test finding",
        )
    )


async def test_breach_on_the_canary_aborts_and_routes_to_stable() -> None:
    service, store, rollout_id = await running_canary()
    controller = RolloutController(service, BreachKindsOf(PolicyCatalog()))
    assert await controller.on_finding(finding("2", events_pb2.SEVERITY_WARNING)) == []
    assert await controller.on_finding(finding("1", events_pb2.SEVERITY_BREACH)) == []  # about stable, not the canary
    breach = finding("2", events_pb2.SEVERITY_BREACH)
    (reaction,) = await controller.on_finding(breach)
    assert (reaction.rollout_id, reaction.action, reaction.status_after) == (rollout_id, "abort", "aborted")
    routes = await service.get_routes("chest_nodule")
    assert (routes.stable_version, routes.canary_version, routes.canary_weight_bp) == ("1", "", 0)
    assert (await service.get_version("chest_nodule", "2")).state is State.ROLLED_BACK
    aborts = [r for r in store.audit_rows if r.action.startswith("rollout.abort")]
    assert aborts and aborts[-1].actor == "rollout-controller" and aborts[-1].actor_role is Role.SERVICE
    assert breach.finding_id in aborts[-1].after_json or breach.finding_id in aborts[-1].request_id
    # A redelivered finding changes nothing (same request id) and no rollout runs any more.
    assert await controller.on_finding(breach) == []


async def test_tick_evaluates_running_rollouts() -> None:
    service, _, rollout_id = await running_canary()
    controller = RolloutController(service, BreachKindsOf(PolicyCatalog()))
    (after,) = await controller.tick()
    assert after.rollout_id == rollout_id
    assert after.last_decision is not None  # no reads yet: the gates hold
    assert after.status is RolloutStatus.RUNNING
