"""The ports governance depends on: its store (one unit of work per command), Triton, evidence and time.

Adapters: :mod:`governance.adapters.memory` (tests), :mod:`governance.adapters.postgres` (the service),
:mod:`governance.adapters.evidence_postgres`; the Triton adapter lives with the gRPC service.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from governance.domain.audit import AuditHead
from governance.domain.gates import ArmEvidence, FindingRef
from governance.domain.lifecycle import State
from governance.domain.model import (
    Actor,
    Approval,
    AuditRecord,
    OutboxMessage,
    ReferenceRenewal,
    Rollout,
    RouteState,
    Transition,
    Version,
)


@dataclass(frozen=True)
class AuditFilter:
    """Optional filters of an audit read; empty/None means any."""

    subject: str = ""
    actor: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


class GovernanceTx(Protocol):
    """One transaction: everything a command reads and writes, committed together or not at all."""

    async def get_version(self, model_name: str, version: str) -> Version | None:
        """The version, or None."""
        ...

    async def list_versions(
        self, model_name: str | None, states: Collection[State], offset: int, limit: int
    ) -> list[Version]:
        """Versions newest registration first (then model, version), filtered, one page."""
        ...

    async def insert_version(self, version: Version) -> None:
        """Store a new version; raises AlreadyExists if (model, version) exists."""
        ...

    async def update_version(self, version: Version, expected_row_version: int) -> Version:
        """Replace the stored version if its row_version is still ``expected_row_version``.

        Returns the stored version (row_version incremented); raises Conflict when stale.
        """
        ...

    async def insert_transition(self, transition: Transition) -> None:
        """Store a new transition (its approvals are stored with :meth:`insert_approval`)."""
        ...

    async def update_transition(self, transition: Transition, expected_row_version: int) -> Transition:
        """Replace status/unmet/applied_at if row_version matches; returns it with approvals; Conflict if stale."""
        ...

    async def get_transition(self, transition_id: str) -> Transition | None:
        """The transition with its approvals, or None."""
        ...

    async def pending_transition_for(self, model_name: str, version: str) -> Transition | None:
        """The version's pending transition, if any (at most one is pending per version)."""
        ...

    async def list_transitions(self, model_name: str, version: str | None) -> list[Transition]:
        """Transitions of a model (or one version), oldest first."""
        ...

    async def insert_approval(self, approval: Approval) -> None:
        """Store a signature (of a transition, or of a reference renewal when ``renewal_id`` is set)."""
        ...

    async def insert_renewal(self, renewal: ReferenceRenewal) -> None:
        """Store a new reference renewal; Conflict if the version already has a pending one."""
        ...

    async def update_renewal(self, renewal: ReferenceRenewal, expected_row_version: int) -> ReferenceRenewal:
        """Replace the renewal if row_version matches; returns it (with approvals) incremented; Conflict if stale."""
        ...

    async def get_renewal(self, renewal_id: str) -> ReferenceRenewal | None:
        """The renewal with its approvals, or None."""
        ...

    async def pending_renewal_for(self, model_name: str, version: str) -> ReferenceRenewal | None:
        """The version's pending reference renewal, if any (at most one is pending per version)."""
        ...

    async def list_renewals(self, model_name: str, version: str | None) -> list[ReferenceRenewal]:
        """Reference renewals of a model (or one version), oldest first, with their approvals."""
        ...

    async def get_rollout(self, rollout_id: str) -> Rollout | None:
        """The rollout, or None."""
        ...

    async def running_rollout(self, model_name: str) -> Rollout | None:
        """The model's running or paused rollout, if any."""
        ...

    async def latest_rollout(self, model_name: str) -> Rollout | None:
        """The model's most recently started rollout, if any."""
        ...

    async def active_rollouts(self) -> list[Rollout]:
        """Every running or paused rollout (for the controller)."""
        ...

    async def insert_rollout(self, rollout: Rollout) -> None:
        """Store a new rollout."""
        ...

    async def update_rollout(self, rollout: Rollout, expected_row_version: int) -> Rollout:
        """Replace the rollout if its row_version matches; returns it incremented; Conflict if stale."""
        ...

    async def get_routes(self, model_name: str) -> RouteState | None:
        """The model's current route table, or None."""
        ...

    async def put_routes(self, routes: RouteState) -> None:
        """Store a new revision; it must be above the current one (else Conflict): +1, or more for a first table."""
        ...

    async def route_history(self, model_name: str) -> list[RouteState]:
        """Every revision of the model's route table, oldest first."""
        ...

    async def list_routes(self) -> list[RouteState]:
        """The current route table of every model."""
        ...

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
        """Append one entry: seq, prev_hash and hash computed under a lock that serialises appends."""
        ...

    async def read_audit(self, from_seq: int, to_seq: int, filters: AuditFilter, limit: int) -> list[AuditRecord]:
        """Entries with from_seq <= seq (<= to_seq unless 0) matching the filters, in seq order."""
        ...

    async def audit_head(self) -> AuditHead | None:
        """The last entry's seq and hash as recorded apart from the entries."""
        ...

    async def enqueue(self, message: OutboxMessage) -> None:
        """Add a message to the outbox (published after commit by the relay)."""
        ...

    async def seen_request(self, request_id: str) -> dict[str, Any] | None:
        """The recorded result of a command with this request id, if it committed."""
        ...

    async def remember_request(self, request_id: str, result: dict[str, Any]) -> None:
        """Record a command's result for idempotent repeats."""
        ...


class GovernanceStore(Protocol):
    """Where governance state lives."""

    def transaction(self) -> AbstractAsyncContextManager[GovernanceTx]:
        """A unit of work: committed when the block exits normally, rolled back on an exception."""
        ...


class TritonControl(Protocol):
    """Triton's model repository API in explicit mode."""

    async def load(self, triton_model: str, versions: set[int]) -> None:
        """Make exactly ``versions`` of ``triton_model`` loaded; an empty set unloads the model."""
        ...

    async def loaded_versions(self, triton_model: str) -> set[int]:
        """Versions of ``triton_model`` currently loaded and ready."""
        ...


class EvidenceSource(Protocol):
    """Evidence the gates compare: ledger windows and monitor findings."""

    async def arm_evidence(self, model_name: str, version: str, arm: str, since: datetime) -> ArmEvidence:
        """Predictions (and their reads) of ``version`` on ``arm`` ("stable", "canary", "shadow") since ``since``."""
        ...

    async def open_breaches(self, model_name: str, version: str, since: datetime) -> Sequence[FindingRef]:
        """Breach findings about ``version`` whose window ends at or after ``since``."""
        ...


class Clock(Protocol):
    """Current time."""

    def now(self) -> datetime:
        """A timezone-aware UTC datetime."""
        ...
