"""In-memory implementations of governance's ports, for unit and property tests.

:class:`MemoryStore` runs one transaction at a time on a copy of its state and swaps the copy in on
commit, so a failing command leaves no partial state. Its audit rows (:attr:`MemoryStore.audit_rows`) are
a plain list a test may tamper with; the head is kept apart, like the PostgreSQL adapter's head row.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from governance.domain.audit import GENESIS, AuditHead, canonical_json, entry_hash, record_content
from governance.domain.gates import ArmEvidence, FindingRef
from governance.domain.lifecycle import State
from governance.domain.model import (
    Actor,
    Approval,
    AuditRecord,
    OutboxMessage,
    ReferenceRenewal,
    Rollout,
    RolloutStatus,
    RouteState,
    Transition,
    TransitionStatus,
    Version,
)
from governance.ports import AuditFilter
from services.runtime.errors import AlreadyExists, Conflict, Unavailable


@dataclass
class _State:
    versions: dict[tuple[str, str], Version] = field(default_factory=dict)
    transitions: dict[str, Transition] = field(default_factory=dict)
    approvals: dict[str, list[Approval]] = field(default_factory=dict)
    rollouts: dict[str, Rollout] = field(default_factory=dict)
    routes: dict[str, list[RouteState]] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    head: AuditHead | None = None
    outbox: list[OutboxMessage] = field(default_factory=list)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    renewals: dict[str, ReferenceRenewal] = field(default_factory=dict)
    renewal_approvals: dict[str, list[Approval]] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(
            versions=dict(self.versions),
            transitions=dict(self.transitions),
            approvals={k: list(v) for k, v in self.approvals.items()},
            rollouts=dict(self.rollouts),
            routes={k: list(v) for k, v in self.routes.items()},
            audit=list(self.audit),
            head=self.head,
            outbox=list(self.outbox),
            requests=copy.deepcopy(self.requests),
            renewals=dict(self.renewals),
            renewal_approvals={k: list(v) for k, v in self.renewal_approvals.items()},
        )


def _json_text(value: Any) -> str:
    return "" if value is None else canonical_json(value)


class MemoryTx:
    """A transaction over a private copy of the store's state."""

    def __init__(self, state: _State) -> None:
        self._s = state

    async def get_version(self, model_name: str, version: str) -> Version | None:
        return self._s.versions.get((model_name, version))

    async def list_versions(
        self, model_name: str | None, states: Collection[State], offset: int, limit: int
    ) -> list[Version]:
        rows = [
            v
            for v in self._s.versions.values()
            if (model_name is None or v.model_name == model_name) and (not states or v.state in states)
        ]
        rows.sort(key=lambda v: (v.registered_at, v.model_name, v.version), reverse=True)
        return rows[offset : offset + limit]

    async def insert_version(self, version: Version) -> None:
        key = (version.model_name, version.version)
        if key in self._s.versions:
            raise AlreadyExists(f"model '{key[0]}' version '{key[1]}'")
        self._s.versions[key] = version

    async def update_version(self, version: Version, expected_row_version: int) -> Version:
        key = (version.model_name, version.version)
        current = self._s.versions.get(key)
        if current is None or current.row_version != expected_row_version:
            raise Conflict(f"model '{key[0]}' version '{key[1]}' changed concurrently; retry")
        stored = replace(version, row_version=expected_row_version + 1)
        self._s.versions[key] = stored
        return stored

    def _hydrate(self, transition: Transition) -> Transition:
        return replace(transition, approvals=tuple(self._s.approvals.get(transition.transition_id, ())))

    async def insert_transition(self, transition: Transition) -> None:
        if transition.transition_id in self._s.transitions:
            raise AlreadyExists(f"transition '{transition.transition_id}'")
        self._s.transitions[transition.transition_id] = replace(transition, approvals=())

    async def update_transition(self, transition: Transition, expected_row_version: int) -> Transition:
        current = self._s.transitions.get(transition.transition_id)
        if current is None or current.row_version != expected_row_version:
            raise Conflict(f"transition '{transition.transition_id}' changed concurrently; retry")
        stored = replace(transition, approvals=(), row_version=expected_row_version + 1)
        self._s.transitions[transition.transition_id] = stored
        return self._hydrate(stored)

    async def get_transition(self, transition_id: str) -> Transition | None:
        found = self._s.transitions.get(transition_id)
        return None if found is None else self._hydrate(found)

    async def pending_transition_for(self, model_name: str, version: str) -> Transition | None:
        for t in self._s.transitions.values():
            if t.model_name == model_name and t.version == version and t.status == TransitionStatus.PENDING:
                return self._hydrate(t)
        return None

    async def list_transitions(self, model_name: str, version: str | None) -> list[Transition]:
        rows = [
            self._hydrate(t)
            for t in self._s.transitions.values()
            if t.model_name == model_name and (version is None or t.version == version)
        ]
        return sorted(rows, key=lambda t: (t.requested_at, t.transition_id))

    async def insert_approval(self, approval: Approval) -> None:
        if approval.renewal_id:
            self._s.renewal_approvals.setdefault(approval.renewal_id, []).append(approval)
            return
        self._s.approvals.setdefault(approval.transition_id, []).append(approval)

    def _hydrate_renewal(self, renewal: ReferenceRenewal) -> ReferenceRenewal:
        return replace(renewal, approvals=tuple(self._s.renewal_approvals.get(renewal.renewal_id, ())))

    async def insert_renewal(self, renewal: ReferenceRenewal) -> None:
        if renewal.renewal_id in self._s.renewals:
            raise AlreadyExists(f"reference renewal '{renewal.renewal_id}'")
        if renewal.status == TransitionStatus.PENDING and await self.pending_renewal_for(
            renewal.model_name, renewal.version
        ):
            raise Conflict(f"a reference renewal of {renewal.model_name} {renewal.version} is already pending")
        self._s.renewals[renewal.renewal_id] = replace(renewal, approvals=())

    async def update_renewal(self, renewal: ReferenceRenewal, expected_row_version: int) -> ReferenceRenewal:
        current = self._s.renewals.get(renewal.renewal_id)
        if current is None or current.row_version != expected_row_version:
            raise Conflict(f"reference renewal '{renewal.renewal_id}' changed concurrently; retry")
        stored = replace(renewal, approvals=(), row_version=expected_row_version + 1)
        self._s.renewals[renewal.renewal_id] = stored
        return self._hydrate_renewal(stored)

    async def get_renewal(self, renewal_id: str) -> ReferenceRenewal | None:
        found = self._s.renewals.get(renewal_id)
        return None if found is None else self._hydrate_renewal(found)

    async def pending_renewal_for(self, model_name: str, version: str) -> ReferenceRenewal | None:
        for r in self._s.renewals.values():
            if (r.model_name, r.version, r.status) == (model_name, version, TransitionStatus.PENDING):
                return self._hydrate_renewal(r)
        return None

    async def list_renewals(self, model_name: str, version: str | None) -> list[ReferenceRenewal]:
        rows = [
            r
            for r in self._s.renewals.values()
            if r.model_name == model_name and (version is None or r.version == version)
        ]
        rows.sort(key=lambda r: (r.requested_at, r.renewal_id))
        return [self._hydrate_renewal(r) for r in rows]

    async def get_rollout(self, rollout_id: str) -> Rollout | None:
        return self._s.rollouts.get(rollout_id)

    async def running_rollout(self, model_name: str) -> Rollout | None:
        for r in self._s.rollouts.values():
            if r.model_name == model_name and r.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
                return r
        return None

    async def latest_rollout(self, model_name: str) -> Rollout | None:
        rows = [r for r in self._s.rollouts.values() if r.model_name == model_name]
        return max(rows, key=lambda r: (r.started_at, r.rollout_id)) if rows else None

    async def active_rollouts(self) -> list[Rollout]:
        return [r for r in self._s.rollouts.values() if r.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)]

    async def insert_rollout(self, rollout: Rollout) -> None:
        if rollout.rollout_id in self._s.rollouts:
            raise AlreadyExists(f"rollout '{rollout.rollout_id}'")
        self._s.rollouts[rollout.rollout_id] = rollout

    async def update_rollout(self, rollout: Rollout, expected_row_version: int) -> Rollout:
        current = self._s.rollouts.get(rollout.rollout_id)
        if current is None or current.row_version != expected_row_version:
            raise Conflict(f"rollout '{rollout.rollout_id}' changed concurrently; retry")
        stored = replace(rollout, row_version=expected_row_version + 1)
        self._s.rollouts[rollout.rollout_id] = stored
        return stored

    async def get_routes(self, model_name: str) -> RouteState | None:
        history = self._s.routes.get(model_name)
        return history[-1] if history else None

    async def put_routes(self, routes: RouteState) -> None:
        history = self._s.routes.setdefault(routes.model_name, [])
        current = history[-1].revision if history else 0
        if routes.revision <= current:  # the first table may start above 1 (route_revision_floor)
            raise Conflict(f"routes of model '{routes.model_name}' changed concurrently; retry")
        history.append(routes)

    async def route_history(self, model_name: str) -> list[RouteState]:
        return list(self._s.routes.get(model_name, ()))

    async def list_routes(self) -> list[RouteState]:
        return [history[-1] for _, history in sorted(self._s.routes.items()) if history]

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
        head = self._s.head
        seq = 1 if head is None else head.seq + 1
        prev = GENESIS if head is None else head.hash
        before_json, after_json = _json_text(before), _json_text(after)
        content = record_content(
            seq, actor.principal, actor.role, action, subject, before_json, after_json, at, request_id
        )
        digest = entry_hash(prev, content)
        record = AuditRecord(
            seq, prev, digest, actor.principal, actor.role, action, subject, before_json, after_json, at, request_id
        )
        self._s.audit.append(record)
        self._s.head = AuditHead(seq, digest)
        return record

    async def read_audit(self, from_seq: int, to_seq: int, filters: AuditFilter, limit: int) -> list[AuditRecord]:
        out = []
        for r in self._s.audit:
            if r.seq < from_seq or (to_seq and r.seq > to_seq):
                continue
            if filters.subject and r.subject != filters.subject:
                continue
            if filters.actor and r.actor != filters.actor:
                continue
            if filters.action and r.action != filters.action:
                continue
            if filters.since is not None and r.time < filters.since:
                continue
            if filters.until is not None and r.time >= filters.until:
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return out

    async def audit_head(self) -> AuditHead | None:
        return self._s.head

    async def enqueue(self, message: OutboxMessage) -> None:
        self._s.outbox.append(message)

    async def seen_request(self, request_id: str) -> dict[str, Any] | None:
        found = self._s.requests.get(request_id)
        return None if found is None else copy.deepcopy(found)

    async def remember_request(self, request_id: str, result: dict[str, Any]) -> None:
        self._s.requests[request_id] = copy.deepcopy(result)


class MemoryStore:
    """A :class:`~governance.ports.GovernanceStore` in memory; transactions run one at a time."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = asyncio.Lock()
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTx]:
        async with self._lock:
            working = self._state.copy()
            yield MemoryTx(working)
            self._state = working
            self.commits += 1

    # Test access ---------------------------------------------------------------------------------------

    @property
    def audit_rows(self) -> list[AuditRecord]:
        """The stored audit entries (mutable: tests tamper with it)."""
        return self._state.audit

    @property
    def outbox(self) -> list[OutboxMessage]:
        """Messages enqueued by committed transactions."""
        return self._state.outbox

    def versions(self) -> list[Version]:
        """Every stored version."""
        return list(self._state.versions.values())

    def routes(self) -> list[RouteState]:
        """Current route table of every model."""
        return [h[-1] for h in self._state.routes.values() if h]

    def rollouts(self) -> list[Rollout]:
        """Every stored rollout."""
        return list(self._state.rollouts.values())

    def transitions(self) -> list[Transition]:
        """Every stored transition (without approvals)."""
        return list(self._state.transitions.values())


class FakeTriton:
    """Triton's repository API as a dict of loaded versions; can be told to fail."""

    def __init__(self, loaded: dict[str, set[int]] | None = None) -> None:
        self.loaded: dict[str, set[int]] = {k: set(v) for k, v in (loaded or {}).items()}
        self.calls: list[tuple[str, frozenset[int]]] = []
        self.fail = False

    async def load(self, triton_model: str, versions: set[int]) -> None:
        if self.fail:
            raise Unavailable("triton", "load failed (fake)")
        self.calls.append((triton_model, frozenset(versions)))
        self.loaded[triton_model] = set(versions)

    async def loaded_versions(self, triton_model: str) -> set[int]:
        return set(self.loaded.get(triton_model, set()))


class FakeEvidence:
    """Evidence set by the test: per (model, version, arm) and breach findings per (model, version)."""

    def __init__(self) -> None:
        self.evidence: dict[tuple[str, str, str], ArmEvidence] = {}
        self.breaches: dict[tuple[str, str], list[FindingRef]] = {}

    def set(self, model_name: str, version: str, arm: str, evidence: ArmEvidence) -> None:
        """Evidence returned for any window."""
        self.evidence[(model_name, version, arm)] = evidence

    def breach(self, model_name: str, version: str, finding: FindingRef) -> None:
        """Add an open breach finding."""
        self.breaches.setdefault((model_name, version), []).append(finding)

    async def arm_evidence(self, model_name: str, version: str, arm: str, since: datetime) -> ArmEvidence:
        return self.evidence.get((model_name, version, arm), ArmEvidence())

    async def open_breaches(self, model_name: str, version: str, since: datetime) -> Sequence[FindingRef]:
        return list(self.breaches.get((model_name, version), ()))


class ManualClock:
    """A clock that moves only when told (each ``now()`` may also tick by ``step``)."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(milliseconds=1)) -> None:
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self._step = step

    def now(self) -> datetime:
        current = self._now
        self._now += self._step
        return current

    def advance(self, delta: timedelta) -> None:
        """Move time forward."""
        self._now += delta
