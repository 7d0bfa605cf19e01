"""The governance service over the real PostgreSQL: same behaviour as in memory, races, append-only audit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from governance.adapters.evidence_postgres import PostgresEvidenceSource
from governance.adapters.postgres import PostgresGovernanceStore
from governance.domain.gates import FindingRef
from governance.domain.lifecycle import State
from governance.domain.model import RolloutStatus, TransitionStatus
from governance.service import GovernanceService
from services.runtime.errors import AlreadyExists, Conflict, NotFound, PermissionDenied
from tests.unit.governance.builders import (
    BOARD,
    BOARD2,
    BOARD_REGISTRANT,
    MODEL,
    OPERATOR,
    SERVICE,
    World,
    evidence,
    memory_world,
    spec,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(params=["memory", "postgres"])
def world(request) -> World:
    """The same command tests over both stores."""
    return memory_world() if request.param == "memory" else request.getfixturevalue("pg_world")


async def test_register_duplicate_and_unknown(world):
    v = await world.register("1")
    assert await world.service.get_version(MODEL, "1") == v
    with pytest.raises(AlreadyExists):
        await world.register("1")
    with pytest.raises(NotFound):
        await world.service.get_version(MODEL, "9")
    assert [r.action for r in (await world.service.query_audit())[0]] == ["version.register"]


async def test_idempotent_request(world):
    a = await world.service.register_version(OPERATOR, spec("1"), "r-1")
    b = await world.service.register_version(OPERATOR, spec("1"), "r-1")
    assert a == b


async def test_registrant_denied_and_audited(world):
    await world.register("1", actor=BOARD_REGISTRANT)
    await world.move("1", State.VALIDATED)
    t = await world.service.request_transition(OPERATOR, MODEL, "1", State.PRODUCTION, "", world.rid())
    with pytest.raises(PermissionDenied):
        await world.service.approve(BOARD_REGISTRANT, t.transition_id, "", world.rid())
    denied, _ = await world.service.query_audit(action="access.denied")
    assert [r.actor for r in denied] == ["bree"]
    assert (await world.service.list_transitions(MODEL, "1"))[-1].approvals == ()


async def test_healthy_rollout_and_breach_abort(world):
    r = await world.canary("2")
    world.evidence.set(MODEL, "2", "canary", evidence(400, seed=1))
    world.evidence.set(MODEL, "1", "stable", evidence(400, seed=2))
    r = await world.service.evaluate_rollout(SERVICE, r.rollout_id, world.rid())
    assert (r.step_index, r.weight_bp) == (1, 5000)
    world.evidence.breach(MODEL, "2", FindingRef("f-1", "bias"))
    r = await world.service.evaluate_rollout(SERVICE, r.rollout_id, world.rid())
    assert r.status == RolloutStatus.ABORTED
    routes = await world.service.get_routes(MODEL)
    assert (routes.stable_version, routes.canary_version, routes.revision) == ("1", "", 5)
    # What serves and judges each version travels with the stored table (a JSON document in PostgreSQL).
    assert [(s.version, s.triton_model, s.triton_version, s.reference_sha256) for s in routes.served] == [
        ("1", "chest_nodule", 1, "cd" * 32)
    ]
    assert (await world.service.get_version(MODEL, "2")).state == State.ROLLED_BACK
    history = [h.revision for h in await world.service.list_routes()]
    assert history == [5]
    assert (await world.service.verify_audit()).ok


async def test_full_promotion_to_production(world):
    r = await world.canary("2")
    for _ in range(2):
        r = await world.service.promote_rollout(OPERATOR, r.rollout_id, "", world.rid())
    t = await world.move("2", State.PRODUCTION)
    assert t.status == TransitionStatus.PENDING
    r = await world.service.promote_rollout(OPERATOR, r.rollout_id, "", world.rid())
    assert r.status == RolloutStatus.COMPLETED
    assert (await world.service.get_version(MODEL, "1")).state == State.RETIRED
    assert (await world.service.get_routes(MODEL)).stable_version == "2"
    assert world.triton.loaded == {"chest_nodule": {2}}


# ------------------------------------------------------------------------------------------------------
# PostgreSQL only


class _BarrierTx:
    """Forwards to a real transaction, but ``method`` waits until every racer has reached it."""

    def __init__(self, tx, method: str, barrier: asyncio.Barrier) -> None:
        self._tx, self._method, self._barrier = tx, method, barrier

    def __getattr__(self, name):
        target = getattr(self._tx, name)
        if name != self._method:
            return target

        async def gated(*args, **kwargs):
            await asyncio.wait_for(self._barrier.wait(), 10)
            return await target(*args, **kwargs)

        return gated


class _BarrierStore:
    """A store whose transactions meet at ``method``: both racers have read the same state by then."""

    def __init__(self, store, method: str, barrier: asyncio.Barrier) -> None:
        self._store, self._method, self._barrier = store, method, barrier

    @contextlib.asynccontextmanager
    async def transaction(self):
        async with self._store.transaction() as tx:
            yield _BarrierTx(tx, self._method, self._barrier)


def _racers(world: World, method: str) -> tuple[GovernanceService, GovernanceService]:
    """Two service instances (two processes, in effect) over the same database, meeting at ``method``."""
    s = world.service
    barrier = asyncio.Barrier(2)
    store = _BarrierStore(s._store, method, barrier)
    return tuple(  # type: ignore[return-value]
        GovernanceService(store, world.triton, world.evidence, s._policies, s._keyring, world.clock) for _ in range(2)
    )


async def test_concurrent_approvals_one_conflicts(pg_world):
    world = pg_world
    await world.register("1")
    await world.move("1", State.VALIDATED)
    world.service._policies._cache["fast-test"] = world.service._policies.get("standard").model_copy(
        update={"name": "fast-test"}
    )  # two signatures for validated->production
    t = await world.service.request_transition(OPERATOR, MODEL, "1", State.PRODUCTION, "", world.rid())
    one, other = _racers(world, "insert_approval")
    results = await asyncio.gather(
        one.approve(BOARD, t.transition_id, "", "race-a"),
        other.approve(BOARD2, t.transition_id, "", "race-b"),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(conflicts) == 1, results
    stored = (await world.service.list_transitions(MODEL, "1"))[-1]
    assert len(stored.approvals) == 1 and stored.status == TransitionStatus.PENDING
    assert (await world.service.verify_audit()).ok


async def test_concurrent_promotes_one_conflicts(pg_world):
    world = pg_world
    r = await world.canary("2")
    one, other = _racers(world, "update_rollout")
    results = await asyncio.gather(
        one.promote_rollout(OPERATOR, r.rollout_id, "a", "p-a"),
        other.promote_rollout(BOARD, r.rollout_id, "b", "p-b"),
        return_exceptions=True,
    )
    assert sum(isinstance(x, Conflict) for x in results) == 1, results
    r = await world.service.get_rollout(r.rollout_id)
    assert (r.step_index, r.weight_bp) == (1, 5000)
    assert (await world.service.get_routes(MODEL)).canary_weight_bp == 5000


async def test_stale_update_conflicts_without_partial_state(pg_world):
    world = pg_world
    v = await world.register("1")
    store: PostgresGovernanceStore = world.store
    with pytest.raises(Conflict):
        async with store.transaction() as tx:
            await tx.update_version(dataclasses.replace(v, state=State.VALIDATED), v.row_version)
            await tx.append_audit(OPERATOR, "x", "y", None, None, "r", world.clock.now())
            await tx.update_version(dataclasses.replace(v, state=State.REJECTED), v.row_version)
    assert (await world.service.get_version(MODEL, "1")).state == State.REGISTERED
    assert len((await world.service.query_audit())[0]) == 1


async def test_audit_is_append_only(pg_world, gov_dsn):
    await pg_world.register("1")
    connection = await asyncpg.connect(gov_dsn)
    try:
        for statement in ("update gov_audit set actor = 'mallory'", "delete from gov_audit", "truncate gov_audit"):
            with pytest.raises(asyncpg.PostgresError, match="gov_audit is append-only"):
                await connection.execute(statement)
    finally:
        await connection.close()


TAMPERS = {
    "edit_actor": ("update gov_audit set actor = 'mallory' where seq = 4", 4),
    "edit_action": ("update gov_audit set action = 'nothing' where seq = 4", 4),
    "edit_subject": ("update gov_audit set subject = 'model/x/1' where seq = 4", 4),
    "edit_before_after": ("update gov_audit set after_json = '{}' where seq = 4", 4),
    "edit_time": ("update gov_audit set time = time + interval '1 microsecond' where seq = 4", 4),
    "edit_request_id": ("update gov_audit set request_id = 'forged' where seq = 4", 4),
    "delete": ("delete from gov_audit where seq = 4", 4),
    "delete_last": ("delete from gov_audit where seq = (select max(seq) from gov_audit)", None),
    "swap": (
        "update gov_audit a set actor = b.actor, action = b.action, subject = b.subject, before_json = b.before_json,"
        " after_json = b.after_json, time = b.time, request_id = b.request_id, hash = b.hash, prev_hash = b.prev_hash"
        " from gov_audit b where (a.seq, b.seq) in ((4, 5), (5, 4))",
        4,
    ),
    "insert": (
        "insert into gov_audit select max(seq) + 1, (array_agg(hash order by seq desc))[1], repeat('a', 64), 'mallory',"
        " 'board', 'forged', 's', '', '', now(), 'r' from gov_audit",
        None,
    ),
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
async def test_sql_tamper_is_detected(pg_world, gov_dsn, kind):
    world = pg_world
    await world.production("1")
    head = (await world.service.verify_audit()).entries_checked
    statement, expected = TAMPERS[kind]
    expected = expected or (head if kind == "delete_last" else head + 1)
    connection = await asyncpg.connect(gov_dsn)
    try:
        await connection.execute("alter table gov_audit disable trigger gov_audit_no_update_delete")
        await connection.execute(statement)
        await connection.execute("alter table gov_audit enable trigger gov_audit_no_update_delete")
    finally:
        await connection.close()
    verdict = await world.service.verify_audit()
    assert (verdict.ok, verdict.first_bad_seq) == (False, expected), verdict


async def test_evidence_source_reads_ledger_and_findings(gov_pool):
    now = datetime.now(UTC)
    rows = [(0.9, 1, 1, "agree"), (0.8, 1, 0, "override"), (0.2, 0, None, None), (0.1, 0, 1, "correct")]
    async with gov_pool.acquire() as c:
        for i, (prob, decision, label, outcome) in enumerate(rows):
            pid = f"00000000-0000-7000-8000-{i:012d}"
            await c.execute(
                "insert into ledger_predictions (prediction_id, event_time, model_name, model_version, arm, study_uid,"
                " series_uid, accession, patient_pseudonym, sex, age_band, site_id, modality, body_part, manufacturer,"
                " manufacturer_model, protocol_name, view_position, pixel_spacing_row_mm, pixel_spacing_col_mm,"
                " raw_score, probability, decision, threshold, descriptors, embedding, latency_ms, route_revision,"
                " request_id, producer, trace_id, kafka_topic, kafka_partition, kafka_offset) values ($1, $2, $3,"
                " '2', 'canary', 's', 's', 'a', 'p', 'female', '40-49', 'site-a', 'DX', 'CHEST', 'acme', 'x1', 'pa',"
                " 'PA', 0.1, 0.1, 0, $4, $5, 0.5, '{}', '{}', 1, 1, 'r', 'g', '', 't', 0, $6)",
                pid, now - timedelta(seconds=10 - i), MODEL, prob, decision, i,
            )  # fmt: skip
            if label is not None:
                await c.execute(
                    "insert into ledger_reads (read_id, prediction_id, event_time, read_time, reader_pseudonym,"
                    " outcome, label, finding_category, idempotency_key, producer, trace_id, kafka_topic,"
                    " kafka_partition, kafka_offset) values ($1, $2, $3, $3, 'r', $4, $5, '', $7, 'f', '',"
                    " 't', 0, $6)",
                    f"00000000-0000-7000-9000-{i:012d}", pid, now, outcome, label, i, f"key-{i}",
                )  # fmt: skip
        await c.execute(
            "insert into monitor_findings (finding_id, kind, model_name, model_version, arm, window_end, window_count,"
            " window_labelled, severity, summary, statistics, spec_ref) values (gen_random_uuid(), 'bias', $1, '2',"
            " 'canary', now(), 10, 5, 'breach', 'gap on acme', '{}', 'spec@1'), (gen_random_uuid(), 'drift', $1,"
            " '2', 'canary', now(), 10, 5, 'warning', 'minor', '{}', 'spec@1')",
            MODEL,
        )
    source = PostgresEvidenceSource(gov_pool)
    ev = await source.arm_evidence(MODEL, "2", "canary", now - timedelta(minutes=1))
    assert ev.scores == [0.9, 0.8, 0.2, 0.1]
    assert ev.labels == [1, 0, None, 1]
    assert ev.decisions == [True, True, False, False]
    assert ev.overrides == [False, True, None, True]
    assert (ev.subgroups["manufacturer"], ev.subgroups["manufacturer_model"]) == (["acme"] * 4, ["x1"] * 4)
    assert ev.subgroups["site"] == ["site-a"] * 4 and ev.subgroups["sex"] == ["female"] * 4
    breaches = await source.open_breaches(MODEL, "2", now - timedelta(minutes=1))
    assert [(b.kind, b.summary) for b in breaches] == [("bias", "gap on acme")]
    assert await source.open_breaches(MODEL, "2", now + timedelta(minutes=1)) == []


async def test_concurrent_retries_of_one_renewal_request_make_one_renewal(pg_world):
    """Two replicas race the same ProposeReference request id: one commits, the other's retry reads its result."""
    from governance.domain.model import ReferencePeriod

    world = pg_world
    await world.register("1")
    period = ReferencePeriod(
        "reads", "production", 3000, 2900, 610, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    )
    one, other = _racers(world, "insert_renewal")
    args = (OPERATOR, MODEL, "1", "s3://refs/new.npz", "ef" * 32, period, "renewal", "same-request")
    results = await asyncio.gather(one.propose_reference(*args), other.propose_reference(*args), return_exceptions=True)
    assert sum(isinstance(r, Conflict) for r in results) == 1, results
    (first,) = [r for r in results if not isinstance(r, BaseException)]
    retried = await world.service.propose_reference(*args)
    assert retried == first
    assert [r.renewal_id for r in await world.service.list_reference_renewals(MODEL, "1")] == [first.renewal_id]
    assert (await world.service.verify_audit()).ok
