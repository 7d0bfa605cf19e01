"""Property tests over the in-memory adapters.

1. Random command sequences from random actors never reach a state the lifecycle forbids, never route to a
   version FakeTriton has not loaded, and always leave a verifying audit chain.
2. Every single-row tamper of the audit table is detected and names the right first bad seq. The issue's
   8 kinds: (1) edit actor, (2) edit action, (3) edit subject, (4) edit before/after JSON, (5) edit time,
   (6) edit request_id, (7) delete, (8) insert, plus swap (reordering). Edits of before_json and after_json
   are both checked, so the 8 kinds appear here as 10 concrete tampers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.domain.audit import AuditHead, content_of, entry_hash, verify_chain
from governance.domain.gates import FindingRef
from governance.domain.lifecycle import ALLOWED, State
from governance.domain.model import AuditRecord, RolloutStatus
from services.runtime.errors import DomainError
from tests.unit.governance.builders import ACTORS, CLINICIAN, MODEL, World, evidence, memory_world

VERSIONS = ("1", "2", "3", "4")
COMMANDS = (
    "register", "transition", "approve", "start", "pause", "resume", "abort", "promote", "evaluate", "rollback",
    "good_evidence", "bad_evidence", "breach", "tick",
)  # fmt: skip
TARGETS = tuple(State)

# Commands that move things forward are drawn more often, so deep states are reached within a sequence.
WEIGHTED = (*COMMANDS, "transition", "transition", "approve", "approve", "approve", "promote", "evaluate", "start")
FORWARD = (State.VALIDATED, State.SHADOW, State.CANARY, State.PRODUCTION)

step = st.tuples(
    st.sampled_from(WEIGHTED),
    st.sampled_from(ACTORS),
    st.sampled_from(VERSIONS),
    st.one_of(st.sampled_from(TARGETS), st.sampled_from(FORWARD)),
)


async def _latest_rollout_id(world: World) -> str:
    try:
        return (await world.service.get_rollout(model_name=MODEL)).rollout_id
    except DomainError:
        return "none"


async def _do(world: World, command: str, actor, version: str, target: State) -> None:
    s = world.service
    if command == "register":
        await s.register_version(actor, dataclasses.replace(_spec(version)), world.rid())
    elif command == "transition":
        await s.request_transition(actor, MODEL, version, target, "prop", world.rid())
    elif command == "approve":
        pending = [t for t in await s.list_transitions(MODEL, version) if t.status == "pending"]
        if pending:
            await s.approve(actor, pending[0].transition_id, "prop", world.rid())
    elif command == "start":
        await s.start_rollout(actor, MODEL, version, "prop", world.rid())
    elif command in ("pause", "resume", "abort", "promote"):
        rid = await _latest_rollout_id(world)
        method = getattr(s, f"{command}_rollout")
        await method(actor, rid, "prop", world.rid())
    elif command == "evaluate":
        await s.evaluate_rollout(actor, await _latest_rollout_id(world), world.rid())
    elif command == "rollback":
        await s.rollback(actor, MODEL, None, "prop", world.rid())
    elif command == "good_evidence":
        world.evidence.set(MODEL, version, "canary", evidence(300, seed=1))
        world.evidence.set(MODEL, version, "stable", evidence(300, seed=2))
        world.evidence.set(MODEL, version, "shadow", evidence(50, seed=3))
    elif command == "bad_evidence":
        world.evidence.set(MODEL, version, "canary", evidence(300, seed=1, scanner_bad="b"))
    elif command == "breach":
        world.evidence.breach(MODEL, version, FindingRef(f"f-{version}", "drift"))
    elif command == "tick":
        world.clock.advance(timedelta(minutes=5))


def _spec(version: str):
    from tests.unit.governance.builders import spec

    return spec(version)


async def _check(world: World, previous: dict[str, State]) -> None:
    store = world.store
    versions = {v.version: v for v in store.versions()}
    # Replay each version's state changes from the audit chain: every link allowed, ending where it is.
    for label, v in versions.items():
        state = State.REGISTERED
        for record in store.audit_rows:
            if record.action == "version.transition" and record.subject == f"model/{MODEL}/{label}":
                before, after = json.loads(record.before_json), json.loads(record.after_json)
                assert before["state"] == state, (label, before, state)
                assert State(after["state"]) in ALLOWED[state], f"{label}: {state}->{after['state']} forbidden"
                state = State(after["state"])
        assert state == v.state
        previous[label] = v.state
    for t in store.transitions():
        if t.status == "applied":
            assert t.to_state in ALLOWED[t.from_state]
    for routes in store.routes():
        loaded = world.triton.loaded.get("chest_nodule", set())
        for label in routes.serving():
            assert versions[label].spec.triton_version in loaded, f"routes to unloaded version {label}"
        if routes.stable_version:
            assert versions[routes.stable_version].state == State.PRODUCTION
        if routes.canary_version:
            assert versions[routes.canary_version].state == State.CANARY
            assert 0 < routes.canary_weight_bp <= 10000
        for label in routes.shadow_versions:
            assert versions[label].state in (State.SHADOW, State.CANARY)
    assert sum(1 for v in versions.values() if v.state == State.PRODUCTION) <= 1
    active = [r for r in store.rollouts() if r.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)]
    assert len(active) <= 1
    head = await world.service.verify_audit()
    assert head.ok, head


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=40))
def test_random_commands_keep_invariants(steps):
    async def run() -> None:
        world = memory_world()
        # A head start so that deep states are reachable within 30 steps.
        await world.production("1")
        await world.shadow("2")
        await world.move("2", State.CANARY, approvers=(CLINICIAN,))
        previous: dict[str, State] = {}
        await _check(world, previous)
        for command, actor, version, target in steps:
            with contextlib.suppress(DomainError):
                await _do(world, command, actor, version, target)
            await _check(world, previous)

    asyncio.run(run())


# ----------------------------------------------------------------------------------------------------------
# Tampering


def _chain() -> tuple[list[AuditRecord], AuditHead]:
    async def build() -> World:
        world = memory_world()
        await world.canary("2")
        return world

    world = asyncio.run(build())
    rows = list(world.store.audit_rows)
    return rows, AuditHead(rows[-1].seq, rows[-1].hash)


ROWS, HEAD = _chain()
EDITS = {
    "edit_actor": lambda r: dataclasses.replace(r, actor=r.actor + "x"),
    "edit_action": lambda r: dataclasses.replace(r, action="forged." + r.action),
    "edit_subject": lambda r: dataclasses.replace(r, subject=r.subject + "/x"),
    "edit_before_json": lambda r: dataclasses.replace(r, before_json=r.before_json + " "),
    "edit_after_json": lambda r: dataclasses.replace(r, after_json=r.after_json.replace("olga", "mallory") + " "),
    "edit_time": lambda r: dataclasses.replace(r, time=r.time + timedelta(microseconds=1)),
    "edit_request_id": lambda r: dataclasses.replace(r, request_id=r.request_id + "x"),
}
KINDS = (*EDITS, "delete", "insert", "swap")
assert len(KINDS) == 10  # the 8 kinds, with before/after JSON as two edits


def _tamper(kind: str, index: int) -> tuple[list[AuditRecord], int]:
    """The tampered rows and the seq the verifier must name."""
    rows = list(ROWS)
    seq = rows[index].seq
    if kind in EDITS:
        rows[index] = EDITS[kind](rows[index])
        return rows, seq
    if kind == "delete":
        del rows[index]
        return rows, seq
    if kind == "insert":
        # A well-formed entry chained to its predecessor: only the seq order gives it away.
        prev = rows[index - 1].hash if index else "0" * 64
        forged = dataclasses.replace(rows[index], actor="mallory", prev_hash=prev)
        forged = dataclasses.replace(forged, hash=entry_hash(prev, content_of(forged)))
        rows.insert(index, forged)
        return rows, seq
    # swap with the next row (or the previous one at the end)
    j = index + 1 if index + 1 < len(rows) else index - 1
    rows[index], rows[j] = rows[j], rows[index]
    return rows, min(rows[index].seq, rows[j].seq)


def test_tamper_fixture_is_clean():
    assert verify_chain(ROWS, "0" * 64, expect_first_seq=1, expect_head=HEAD).ok
    assert len(ROWS) > 15


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KINDS), st.integers(min_value=0, max_value=len(ROWS) - 1))
def test_single_row_tamper_is_detected(kind, index):
    rows, expected = _tamper(kind, index)
    verdict = verify_chain(rows, "0" * 64, expect_first_seq=1, expect_head=HEAD)
    assert not verdict.ok, kind
    assert verdict.first_bad_seq == expected, (kind, index, verdict)


def test_append_at_end_is_detected_by_the_head():
    last = ROWS[-1]
    forged = dataclasses.replace(last, seq=last.seq + 1, prev_hash=last.hash, actor="mallory")
    forged = dataclasses.replace(forged, hash=entry_hash(last.hash, content_of(forged)))
    verdict = verify_chain([*ROWS, forged], "0" * 64, expect_first_seq=1, expect_head=HEAD)
    assert (verdict.ok, verdict.first_bad_seq) == (False, last.seq + 1)


def test_every_kind_on_the_memory_store_through_the_service():
    """The service's verify names the same seq when the store's own rows are tampered."""

    async def run() -> None:
        for kind in KINDS:
            world = memory_world()
            await world.canary("2")
            _rows, expected = _tamper(kind, 5)
            # rebuild the tampered rows from this world's own chain
            own = list(world.store.audit_rows)
            tampered = {
                "delete": own[:5] + own[6:],
                "swap": [*own[:5], own[6], own[5], *own[7:]],
            }.get(kind)
            if tampered is None:
                if kind == "insert":
                    forged = dataclasses.replace(own[5], actor="mallory", prev_hash=own[4].hash)
                    forged = dataclasses.replace(forged, hash=entry_hash(own[4].hash, content_of(forged)))
                    tampered = [*own[:5], forged, *own[5:]]
                else:
                    tampered = [*own[:5], EDITS[kind](own[5]), *own[6:]]
            world.store.audit_rows[:] = tampered
            verdict = await world.service.verify_audit()
            assert (verdict.ok, verdict.first_bad_seq) == (False, 6), (kind, verdict)
            assert expected == ROWS[5].seq

    asyncio.run(run())
