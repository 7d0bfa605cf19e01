"""The PostgreSQL GovernanceStore (asyncpg): one database transaction per command.

Schema: ``governance/migrations/0100_governance.sql`` (reference renewals: ``0102``). Records live as their
JSON form in ``doc`` columns next to the columns queries filter on. Updates are conditional on
``row_version`` (a stale one raises :class:`~services.runtime.errors.Conflict`); audit appends lock the
single ``gov_audit_head`` row, which serialises seq and prev_hash across processes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from governance.domain.audit import GENESIS, AuditHead, canonical_json, entry_hash, record_content
from governance.domain.codec import from_jsonable, to_jsonable
from governance.domain.lifecycle import State
from governance.domain.model import (
    Actor,
    Approval,
    AuditRecord,
    OutboxMessage,
    ReferenceRenewal,
    Role,
    Rollout,
    RouteState,
    Transition,
    Version,
)
from governance.ports import AuditFilter
from services.runtime.errors import AlreadyExists, Conflict, Unavailable

T = TypeVar("T")

_ACTIVE = ("running", "paused")


def _doc(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))


def _load(cls: type[T], raw: str | dict[str, Any]) -> T:
    return from_jsonable(cls, json.loads(raw) if isinstance(raw, str) else raw)


def _audit_record(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        actor=row["actor"],
        actor_role=Role(row["actor_role"]),
        action=row["action"],
        subject=row["subject"],
        before_json=row["before_json"],
        after_json=row["after_json"],
        time=row["time"],
        request_id=row["request_id"],
    )


class PostgresTx:
    """A :class:`~governance.ports.GovernanceTx` on one connection inside one transaction."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._c = connection

    # Versions ------------------------------------------------------------------------------------------

    def _version(self, row: asyncpg.Record) -> Version:
        return replace(_load(Version, row["doc"]), row_version=row["row_version"])

    async def get_version(self, model_name: str, version: str) -> Version | None:
        row = await self._c.fetchrow(
            "select doc, row_version from gov_versions where model_name = $1 and version = $2", model_name, version
        )
        return None if row is None else self._version(row)

    async def list_versions(
        self, model_name: str | None, states: Collection[State], offset: int, limit: int
    ) -> list[Version]:
        rows = await self._c.fetch(
            "select doc, row_version from gov_versions "
            "where ($1::text is null or model_name = $1) and (cardinality($2::text[]) = 0 or state = any($2)) "
            "order by registered_at desc, model_name desc, version desc offset $3 limit $4",
            model_name,
            [str(s) for s in states],
            offset,
            limit,
        )
        return [self._version(r) for r in rows]

    async def insert_version(self, version: Version) -> None:
        try:
            await self._c.execute(
                "insert into gov_versions (model_name, version, state, registered_at, row_version, doc) "
                "values ($1, $2, $3, $4, $5, $6::jsonb)",
                version.model_name,
                version.version,
                str(version.state),
                version.registered_at,
                version.row_version,
                _doc(version),
            )
        except asyncpg.UniqueViolationError as error:
            raise AlreadyExists(f"model '{version.model_name}' version '{version.version}'") from error

    async def update_version(self, version: Version, expected_row_version: int) -> Version:
        stored = replace(version, row_version=expected_row_version + 1)
        done = await self._c.fetchval(
            "update gov_versions set state = $3, row_version = $4, doc = $5::jsonb "
            "where model_name = $1 and version = $2 and row_version = $6 returning row_version",
            version.model_name,
            version.version,
            str(version.state),
            stored.row_version,
            _doc(stored),
            expected_row_version,
        )
        if done is None:
            raise Conflict(f"model '{version.model_name}' version '{version.version}' changed concurrently; retry")
        return stored

    # Transitions and approvals ---------------------------------------------------------------------------

    async def _hydrate(self, row: asyncpg.Record) -> Transition:
        approvals = await self._c.fetch(
            "select doc from gov_approvals where transition_id = $1 order by signed_at, approval_id",
            row["transition_id"],
        )
        base = _load(Transition, row["doc"])
        return replace(
            base, row_version=row["row_version"], approvals=tuple(_load(Approval, a["doc"]) for a in approvals)
        )

    async def insert_transition(self, transition: Transition) -> None:
        try:
            await self._c.execute(
                "insert into gov_transitions (transition_id, model_name, version, status, requested_at, row_version,"
                " doc) values ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                transition.transition_id,
                transition.model_name,
                transition.version,
                str(transition.status),
                transition.requested_at,
                transition.row_version,
                _doc(replace(transition, approvals=())),
            )
        except asyncpg.UniqueViolationError as error:
            raise Conflict(
                f"a transition of {transition.model_name} {transition.version} is already pending"
            ) from error

    async def update_transition(self, transition: Transition, expected_row_version: int) -> Transition:
        stored = replace(transition, approvals=(), row_version=expected_row_version + 1)
        done = await self._c.fetchval(
            "update gov_transitions set status = $2, row_version = $3, doc = $4::jsonb "
            "where transition_id = $1 and row_version = $5 returning transition_id",
            transition.transition_id,
            str(transition.status),
            stored.row_version,
            _doc(stored),
            expected_row_version,
        )
        if done is None:
            raise Conflict(f"transition '{transition.transition_id}' changed concurrently; retry")
        found = await self.get_transition(transition.transition_id)
        assert found is not None
        return found

    async def get_transition(self, transition_id: str) -> Transition | None:
        row = await self._c.fetchrow(
            "select transition_id, doc, row_version from gov_transitions where transition_id = $1", transition_id
        )
        return None if row is None else await self._hydrate(row)

    async def pending_transition_for(self, model_name: str, version: str) -> Transition | None:
        row = await self._c.fetchrow(
            "select transition_id, doc, row_version from gov_transitions "
            "where model_name = $1 and version = $2 and status = 'pending'",
            model_name,
            version,
        )
        return None if row is None else await self._hydrate(row)

    async def list_transitions(self, model_name: str, version: str | None) -> list[Transition]:
        rows = await self._c.fetch(
            "select transition_id, doc, row_version from gov_transitions "
            "where model_name = $1 and ($2::text is null or version = $2) order by requested_at, transition_id",
            model_name,
            version,
        )
        return [await self._hydrate(r) for r in rows]

    async def insert_approval(self, approval: Approval) -> None:
        await self._c.execute(
            "insert into gov_approvals (approval_id, transition_id, renewal_id, signer, signed_at, doc) "
            "values ($1, $2, $3, $4, $5, $6::jsonb)",
            approval.approval_id,
            approval.transition_id or None,
            approval.renewal_id or None,
            approval.signer,
            approval.signed_at,
            _doc(approval),
        )

    # Reference renewals ----------------------------------------------------------------------------------

    async def _hydrate_renewal(self, row: asyncpg.Record) -> ReferenceRenewal:
        approvals = await self._c.fetch(
            "select doc from gov_approvals where renewal_id = $1 order by signed_at, approval_id", row["renewal_id"]
        )
        base = _load(ReferenceRenewal, row["doc"])
        return replace(
            base, row_version=row["row_version"], approvals=tuple(_load(Approval, a["doc"]) for a in approvals)
        )

    async def insert_renewal(self, renewal: ReferenceRenewal) -> None:
        try:
            await self._c.execute(
                "insert into gov_reference_renewals (renewal_id, model_name, version, status, requested_at, "
                "row_version, doc) values ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                renewal.renewal_id,
                renewal.model_name,
                renewal.version,
                str(renewal.status),
                renewal.requested_at,
                renewal.row_version,
                _doc(replace(renewal, approvals=())),
            )
        except asyncpg.UniqueViolationError as error:
            raise Conflict(
                f"a reference renewal of {renewal.model_name} {renewal.version} is already pending"
            ) from error

    async def update_renewal(self, renewal: ReferenceRenewal, expected_row_version: int) -> ReferenceRenewal:
        stored = replace(renewal, approvals=(), row_version=expected_row_version + 1)
        done = await self._c.fetchval(
            "update gov_reference_renewals set status = $2, row_version = $3, doc = $4::jsonb "
            "where renewal_id = $1 and row_version = $5 returning renewal_id",
            renewal.renewal_id,
            str(renewal.status),
            stored.row_version,
            _doc(stored),
            expected_row_version,
        )
        if done is None:
            raise Conflict(f"reference renewal '{renewal.renewal_id}' changed concurrently; retry")
        found = await self.get_renewal(renewal.renewal_id)
        assert found is not None
        return found

    async def get_renewal(self, renewal_id: str) -> ReferenceRenewal | None:
        row = await self._c.fetchrow(
            "select renewal_id, doc, row_version from gov_reference_renewals where renewal_id = $1", renewal_id
        )
        return None if row is None else await self._hydrate_renewal(row)

    async def pending_renewal_for(self, model_name: str, version: str) -> ReferenceRenewal | None:
        row = await self._c.fetchrow(
            "select renewal_id, doc, row_version from gov_reference_renewals "
            "where model_name = $1 and version = $2 and status = 'pending'",
            model_name,
            version,
        )
        return None if row is None else await self._hydrate_renewal(row)

    async def list_renewals(self, model_name: str, version: str | None) -> list[ReferenceRenewal]:
        rows = await self._c.fetch(
            "select renewal_id, doc, row_version from gov_reference_renewals "
            "where model_name = $1 and ($2::text is null or version = $2) order by requested_at, renewal_id",
            model_name,
            version,
        )
        return [await self._hydrate_renewal(r) for r in rows]

    # Rollouts --------------------------------------------------------------------------------------------

    def _rollout(self, row: asyncpg.Record) -> Rollout:
        return replace(_load(Rollout, row["doc"]), row_version=row["row_version"])

    async def get_rollout(self, rollout_id: str) -> Rollout | None:
        row = await self._c.fetchrow("select doc, row_version from gov_rollouts where rollout_id = $1", rollout_id)
        return None if row is None else self._rollout(row)

    async def running_rollout(self, model_name: str) -> Rollout | None:
        row = await self._c.fetchrow(
            "select doc, row_version from gov_rollouts where model_name = $1 and status = any($2::text[])",
            model_name,
            list(_ACTIVE),
        )
        return None if row is None else self._rollout(row)

    async def latest_rollout(self, model_name: str) -> Rollout | None:
        row = await self._c.fetchrow(
            "select doc, row_version from gov_rollouts where model_name = $1 "
            "order by started_at desc, rollout_id desc limit 1",
            model_name,
        )
        return None if row is None else self._rollout(row)

    async def active_rollouts(self) -> list[Rollout]:
        rows = await self._c.fetch(
            "select doc, row_version from gov_rollouts where status = any($1::text[]) order by started_at",
            list(_ACTIVE),
        )
        return [self._rollout(r) for r in rows]

    async def insert_rollout(self, rollout: Rollout) -> None:
        try:
            await self._c.execute(
                "insert into gov_rollouts (rollout_id, model_name, status, started_at, row_version, doc) "
                "values ($1, $2, $3, $4, $5, $6::jsonb)",
                rollout.rollout_id,
                rollout.model_name,
                str(rollout.status),
                rollout.started_at,
                rollout.row_version,
                _doc(rollout),
            )
        except asyncpg.UniqueViolationError as error:
            raise Conflict(f"a rollout of model '{rollout.model_name}' is already running") from error

    async def update_rollout(self, rollout: Rollout, expected_row_version: int) -> Rollout:
        stored = replace(rollout, row_version=expected_row_version + 1)
        done = await self._c.fetchval(
            "update gov_rollouts set status = $2, row_version = $3, doc = $4::jsonb "
            "where rollout_id = $1 and row_version = $5 returning rollout_id",
            rollout.rollout_id,
            str(rollout.status),
            stored.row_version,
            _doc(stored),
            expected_row_version,
        )
        if done is None:
            raise Conflict(f"rollout '{rollout.rollout_id}' changed concurrently; retry")
        return stored

    # Routes ----------------------------------------------------------------------------------------------

    async def get_routes(self, model_name: str) -> RouteState | None:
        raw = await self._c.fetchval(
            "select doc from gov_routes where model_name = $1 order by revision desc limit 1", model_name
        )
        return None if raw is None else _load(RouteState, raw)

    async def put_routes(self, routes: RouteState) -> None:
        try:
            inserted = await self._c.fetchval(
                "insert into gov_routes (model_name, revision, updated_at, doc) "
                "select $1, $2, $3, $4::jsonb where $2 > coalesce("
                "(select max(revision) from gov_routes where model_name = $1), 0) returning revision",
                routes.model_name,
                routes.revision,
                routes.updated_at,
                _doc(routes),
            )
        except asyncpg.UniqueViolationError as error:
            raise Conflict(f"routes of model '{routes.model_name}' changed concurrently; retry") from error
        if inserted is None:
            raise Conflict(f"routes of model '{routes.model_name}' changed concurrently; retry")

    async def route_history(self, model_name: str) -> list[RouteState]:
        rows = await self._c.fetch("select doc from gov_routes where model_name = $1 order by revision", model_name)
        return [_load(RouteState, r["doc"]) for r in rows]

    async def list_routes(self) -> list[RouteState]:
        rows = await self._c.fetch(
            "select distinct on (model_name) doc from gov_routes order by model_name, revision desc"
        )
        return [_load(RouteState, r["doc"]) for r in rows]

    # Audit -----------------------------------------------------------------------------------------------

    async def append_audit(
        self,
        actor: Actor,
        action: str,
        subject: str,
        before: Any,
        after: Any,
        request_id: str,
        at: datetime,
    ) -> AuditRecord:
        head = await self._c.fetchrow("select seq, hash from gov_audit_head where id = 1 for update")
        if head is None:
            raise Unavailable("postgres", "gov_audit_head has no row (migration 0100 not applied?)")
        seq = head["seq"] + 1
        prev = head["hash"] if head["seq"] else GENESIS
        before_json = "" if before is None else canonical_json(before)
        after_json = "" if after is None else canonical_json(after)
        content = record_content(
            seq, actor.principal, actor.role, action, subject, before_json, after_json, at, request_id
        )
        digest = entry_hash(prev, content)
        await self._c.execute(
            "insert into gov_audit (seq, prev_hash, hash, actor, actor_role, action, subject, before_json, after_json,"
            " time, request_id) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            seq,
            prev,
            digest,
            actor.principal,
            str(actor.role),
            action,
            subject,
            before_json,
            after_json,
            at,
            request_id,
        )
        await self._c.execute("update gov_audit_head set seq = $1, hash = $2 where id = 1", seq, digest)
        return AuditRecord(
            seq, prev, digest, actor.principal, actor.role, action, subject, before_json, after_json, at, request_id
        )

    async def read_audit(self, from_seq: int, to_seq: int, filters: AuditFilter, limit: int) -> list[AuditRecord]:
        rows = await self._c.fetch(
            "select * from gov_audit where seq >= $1 and ($2 = 0 or seq <= $2) "
            "and ($3 = '' or subject = $3) and ($4 = '' or actor = $4) and ($5 = '' or action = $5) "
            "and ($6::timestamptz is null or time >= $6) and ($7::timestamptz is null or time < $7) "
            "order by seq limit $8",
            from_seq,
            to_seq,
            filters.subject,
            filters.actor,
            filters.action,
            filters.since,
            filters.until,
            limit,
        )
        return [_audit_record(r) for r in rows]

    async def audit_head(self) -> AuditHead | None:
        row = await self._c.fetchrow("select seq, hash from gov_audit_head where id = 1")
        return None if row is None or row["seq"] == 0 else AuditHead(row["seq"], row["hash"])

    # Outbox and idempotency ------------------------------------------------------------------------------

    async def enqueue(self, message: OutboxMessage) -> None:
        await self._c.execute(
            "insert into gov_outbox (kind, key, payload) values ($1, $2, $3::jsonb)",
            message.kind,
            message.key,
            json.dumps(message.payload, sort_keys=True, separators=(",", ":")),
        )

    async def seen_request(self, request_id: str) -> dict[str, Any] | None:
        raw = await self._c.fetchval("select result from gov_requests where request_id = $1", request_id)
        return None if raw is None else dict(json.loads(raw) if isinstance(raw, str) else raw)

    async def remember_request(self, request_id: str, result: dict[str, Any]) -> None:
        try:
            await self._c.execute(
                "insert into gov_requests (request_id, result) values ($1, $2::jsonb)",
                request_id,
                json.dumps(result, sort_keys=True, separators=(",", ":")),
            )
        except asyncpg.UniqueViolationError as error:
            raise Conflict(f"request '{request_id}' was committed concurrently; retry to read its result") from error


class PostgresGovernanceStore:
    """A :class:`~governance.ports.GovernanceStore` over an asyncpg pool (read committed transactions)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        try:
            connection = await self._pool.acquire()
        except (OSError, asyncpg.PostgresConnectionError) as error:
            raise Unavailable("postgres", type(error).__name__) from error
        try:
            async with connection.transaction():
                yield PostgresTx(connection)
        except asyncpg.SerializationError as error:
            raise Conflict("concurrent update; retry") from error
        except asyncpg.DeadlockDetectedError as error:
            raise Conflict("concurrent update (deadlock); retry") from error
        finally:
            await self._pool.release(connection)
