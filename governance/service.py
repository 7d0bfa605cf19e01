"""Governance use cases: the registry, lifecycle transitions, e-signed approvals, rollouts and the audit chain.

Every command takes the acting :class:`~governance.domain.model.Actor` and a ``request_id``; a repeat of a
request id returns the first result. A command is ONE store transaction holding the state change, its
audit entries and its outbox messages. A refused role is answered with ``PermissionDenied`` after an
``access.denied`` audit entry committed in a transaction of its own.

Routing rule: before a route change that makes a version serve, every version the old and the new table
need is loaded in Triton; versions that left every route (retired, rolled back, rejected) are unloaded
after the transaction has committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from governance.domain import rollout as rollouts
from governance.domain.audit import GENESIS, ChainVerdict, verify_chain
from governance.domain.codec import from_jsonable, to_jsonable
from governance.domain.gates import evaluate_step
from governance.domain.lifecycle import State, check_transition
from governance.domain.model import (
    Actor,
    Approval,
    AuditRecord,
    GateDecision,
    GateOutcome,
    OutboxMessage,
    Reference,
    ReferencePeriod,
    ReferenceRenewal,
    Role,
    Rollout,
    RolloutStatus,
    RouteState,
    Transition,
    TransitionStatus,
    Version,
    VersionSpec,
)
from governance.domain.policy import ApprovalRule, Policy, PolicyCatalog, PolicyError
from governance.domain.references import check_local_file, validate_proposal
from governance.domain.signing import Keyring, approval_record, renewal_record, sign_approval
from governance.ports import AuditFilter, Clock, EvidenceSource, GovernanceStore, GovernanceTx, TritonControl
from kernel.serving import ServedVersion
from services.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.runtime.ids import uuid7

T = TypeVar("T")

#: Who may issue which command (reads are open to every role). Approvals are further limited by policy.
ROLES: dict[str, frozenset[Role]] = {
    "register_version": frozenset({Role.OPERATOR, Role.BOARD}),
    "request_transition": frozenset({Role.OPERATOR, Role.BOARD}),
    "approve": frozenset({Role.BOARD, Role.CLINICIAN}),
    "approve_reference": frozenset({Role.BOARD, Role.CLINICIAN}),
    "start_rollout": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "pause_rollout": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "resume_rollout": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "abort_rollout": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "promote_rollout": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "evaluate_rollout": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "rollback": frozenset({Role.OPERATOR, Role.BOARD, Role.SERVICE}),
    "propose_reference": frozenset({Role.OPERATOR, Role.BOARD}),
    "reject_reference": frozenset({Role.OPERATOR, Role.BOARD, Role.CLINICIAN}),
}

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
VERIFY_CHUNK = 5000
_HEX = frozenset("0123456789abcdef")
#: States a version leaves every route in; its Triton version is unloaded after commit.
_GONE = frozenset({State.RETIRED, State.ROLLED_BACK, State.REJECTED})
#: States whose reference is no longer renewed: the version will not serve again (short of a rollback).
_NO_RENEWAL = _GONE


class _Denied(Exception):
    """Raised inside a command to refuse it; audited in a separate transaction."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.message = message


@dataclass
class _Work:
    """What a command's transaction did that needs follow-up after commit."""

    route_models: set[str] = field(default_factory=set)
    record: bool = True


def _page(page_size: int, page_token: str) -> tuple[int, int]:
    size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
    if not page_token:
        return 0, size
    if not page_token.isdigit():
        raise InvalidArgument("page_token", "is not a token this service issued")
    return int(page_token), size


def _unmet(rule: ApprovalRule | None, name: str, approvals: Sequence[Approval]) -> list[str]:
    """The signatures ``rule`` still misses, human-readable (empty when met or when nothing is required)."""
    if rule is None:
        return []
    valid = [a for a in approvals if a.role in rule.roles]
    have = len({a.signer for a in valid}) if rule.distinct_signers else len(valid)
    missing = rule.count - have
    if missing <= 0:
        return []
    roles = " or ".join(str(r) for r in rule.roles)
    return [f"{missing} more approval{'s' if missing > 1 else ''} from {roles} for {name}"]


def _version_key(model_name: str, version: str) -> str:
    return f"model '{model_name}' version '{version}'"


class GovernanceService:
    """The governance use cases over a store, Triton, an evidence source, policies, a keyring and a clock."""

    def __init__(
        self,
        store: GovernanceStore,
        triton: TritonControl,
        evidence: EvidenceSource,
        policies: PolicyCatalog,
        keyring: Keyring,
        clock: Clock,
        *,
        new_id: Callable[[], str] = uuid7,
        route_revision_floor: Callable[[str], Awaitable[int]] | None = None,
        profile_roots: Sequence[Path] | None = None,
    ) -> None:
        """Args (beyond the ports):
        new_id: Makes ids of transitions, approvals and rollouts.
        profile_roots: The folders a ``file://`` reference profile proposed for renewal must lie in (after
            resolving links); None reads any path (library use and unit tests). The service always passes
            the model repository and its configured ``reference_roots``, so a proposal cannot probe the host.
        route_revision_floor: The highest route revision already distributed for a model (e.g. read from
            the routes topic). Consulted only for a model's first table in this store, so governance's
            first revision supersedes whatever gateways hold; later revisions follow from the store.
        """
        self._route_floor = route_revision_floor
        self._profile_roots = tuple(profile_roots) if profile_roots is not None else None
        self._store = store
        self._triton = triton
        self._evidence = evidence
        self._policies = policies
        self._keyring = keyring
        self._clock = clock
        self._new_id = new_id
        self._locks: dict[str, asyncio.Lock] = {}

    # ---------------------------------------------------------------------------------------------------
    # Command machinery

    def _lock(self, model_name: str) -> asyncio.Lock:
        return self._locks.setdefault(model_name, asyncio.Lock())

    async def _run(
        self,
        command: str,
        actor: Actor,
        request_id: str,
        model_name: str,
        subject: str,
        body: Callable[[GovernanceTx, _Work], Awaitable[T]],
        decode: Callable[[Any], T],
    ) -> T:
        if not request_id:
            raise InvalidArgument("request_id", "must not be empty")
        if actor.role not in ROLES[command]:
            allowed = ", ".join(sorted(str(r) for r in ROLES[command]))
            message = f"role {actor.role} may not {command.replace('_', ' ')} (allowed: {allowed})"
            await self._record_denial(actor, command, subject, message, request_id)
            raise PermissionDenied(message)
        work = _Work()
        async with self._lock(model_name):
            try:
                async with self._store.transaction() as tx:
                    seen = await tx.seen_request(request_id)
                    if seen is not None:
                        if seen.get("command") != command:
                            raise InvalidArgument("request_id", f"already used for {seen.get('command')}")
                        return decode(seen["result"])
                    result = await body(tx, work)
                    if work.record:
                        await tx.remember_request(request_id, {"command": command, "result": to_jsonable(result)})
            except _Denied as denied:
                await self._record_denial(actor, command, denied.subject, denied.message, request_id)
                raise PermissionDenied(denied.message) from None
            for name in sorted(work.route_models):
                await self._unload_gone(name)
        return result

    async def _record_denial(self, actor: Actor, command: str, subject: str, message: str, request_id: str) -> None:
        async with self._store.transaction() as tx:
            after = {"command": command, "role": str(actor.role), "reason": message}
            await self._audit(tx, actor, "access.denied", subject, None, after, request_id)

    async def _audit(
        self, tx: GovernanceTx, actor: Actor, action: str, subject: str, before: Any, after: Any, request_id: str
    ) -> AuditRecord:
        record = await tx.append_audit(actor, action, subject, before, after, request_id, self._clock.now())
        await tx.enqueue(OutboxMessage("audit", subject, to_jsonable(record)))
        return record

    def _policy(self, version: Version) -> Policy:
        try:
            return self._policies.get_ref(version.policy_ref or version.spec.policy_name)
        except PolicyError as exc:
            raise FailedPrecondition(f"policy of {version.subject} is invalid: {exc}") from exc

    async def _version(self, tx: GovernanceTx, model_name: str, version: str) -> Version:
        found = await tx.get_version(model_name, version)
        if found is None:
            raise NotFound(_version_key(model_name, version))
        return found

    async def _set_state(
        self, tx: GovernanceTx, actor: Actor, version: Version, to: State, request_id: str, reason: str
    ) -> Version:
        check_transition(version.state, to)
        changed = replace(version, state=to, state_changed_at=self._clock.now())
        stored = await tx.update_version(changed, version.row_version)
        before = {"state": str(version.state), "row_version": version.row_version}
        after = {"state": str(to), "row_version": stored.row_version, "reason": reason}
        await self._audit(tx, actor, "version.transition", version.subject, before, after, request_id)
        return stored

    # ---------------------------------------------------------------------------------------------------
    # Routes and Triton

    async def _triton_needs(self, tx: GovernanceTx, model_name: str, versions: Iterable[str]) -> dict[str, set[int]]:
        needs: dict[str, set[int]] = {}
        for label in versions:
            v = await self._version(tx, model_name, label)
            needs.setdefault(v.spec.triton_model, set()).add(v.spec.triton_version)
        return needs

    async def _served(self, tx: GovernanceTx, routes: RouteState) -> tuple[ServedVersion, ...]:
        """What serves and judges each version on ``routes``, from the registry (stable, canary, shadows)."""
        labels = [v for v in (routes.stable_version, routes.canary_version, *routes.shadow_versions) if v]
        served: list[ServedVersion] = []
        for label in dict.fromkeys(labels):
            spec = (await self._version(tx, routes.model_name, label)).spec
            served.append(
                ServedVersion(
                    version=label,
                    triton_model=spec.triton_model,
                    triton_version=spec.triton_version,
                    reference_uri=spec.reference_uri,
                    reference_sha256=spec.reference_sha256,
                )
            )
        return tuple(served)

    async def _change_routes(
        self,
        tx: GovernanceTx,
        work: _Work,
        actor: Actor,
        model_name: str,
        request_id: str,
        reason: str,
        *,
        stable: str | None = None,
        canary: str | None = None,
        weight_bp: int | None = None,
        shadows: Sequence[str] | None = None,
        rollout_id: str = "",
    ) -> RouteState:
        current = await tx.get_routes(model_name) or RouteState(model_name, "", "", 0, (), 0, self._clock.now(), "")
        new_canary = current.canary_version if canary is None else canary
        base = current.revision
        if base == 0 and self._route_floor is not None:
            base = max(0, await self._route_floor(model_name))
        new = RouteState(
            model_name=model_name,
            stable_version=current.stable_version if stable is None else stable,
            canary_version=new_canary,
            canary_weight_bp=(current.canary_weight_bp if weight_bp is None else weight_bp) if new_canary else 0,
            shadow_versions=tuple(current.shadow_versions if shadows is None else shadows),
            revision=base + 1,
            updated_at=self._clock.now(),
            reason=reason,
            rollout_id=rollout_id,
        )
        new = replace(new, served=await self._served(tx, new))
        # Load what the old and the new table need before anything routes to it.
        needs = await self._triton_needs(tx, model_name, current.serving() | new.serving())
        for triton_model, wanted in sorted(needs.items()):
            loaded = await self._triton.loaded_versions(triton_model)
            if not wanted <= loaded:
                await self._triton.load(triton_model, loaded | wanted)
        await tx.put_routes(new)
        await tx.enqueue(OutboxMessage("route", model_name, to_jsonable(new)))
        before = to_jsonable(current) if current.revision else None
        await self._audit(tx, actor, "routes.update", f"routes/{model_name}", before, to_jsonable(new), request_id)
        work.route_models.add(model_name)
        return new

    async def _unload_gone(self, model_name: str) -> None:
        """After commit: unload Triton versions of this model's versions that left every route.

        A Triton version that any model's route still serves stays loaded: registry models may share Triton
        targets (e.g. a demo's own registrations of ``chest_nodule`` versions).
        """
        keep: dict[str, set[int]] = {}
        drop: dict[str, set[int]] = {}
        async with self._store.transaction() as tx:
            routes = await tx.get_routes(model_name)
            serving = routes.serving() if routes else frozenset()
            versions = await tx.list_versions(model_name, (), 0, 1_000_000)
            for table in await tx.list_routes():
                targets = {(entry.triton_model, entry.triton_version) for entry in table.served}
                if not table.served:  # a table stored before routes named their Triton targets
                    for label in table.serving():
                        found = await tx.get_version(table.model_name, label)
                        if found is not None:
                            targets.add((found.spec.triton_model, found.spec.triton_version))
                for triton_model, triton_version in targets:
                    keep.setdefault(triton_model, set()).add(triton_version)
        for v in versions:
            target = keep if v.version in serving else drop if v.state in _GONE else None
            if target is not None:
                target.setdefault(v.spec.triton_model, set()).add(v.spec.triton_version)
        for triton_model, dropped in sorted(drop.items()):
            gone = dropped - keep.get(triton_model, set())
            loaded = await self._triton.loaded_versions(triton_model)
            if loaded & gone:
                await self._triton.load(triton_model, loaded - gone)

    # ---------------------------------------------------------------------------------------------------
    # Registry

    def _validate_spec(self, spec: VersionSpec) -> Policy:
        for name in ("model_name", "version", "triton_model", "artifact_sha256", "policy_name"):
            if not str(getattr(spec, name)).strip():
                raise InvalidArgument(f"spec.{name}", "must not be empty")
        if spec.triton_version < 1:
            raise InvalidArgument("spec.triton_version", "must be >= 1")
        if len(spec.artifact_sha256) != 64 or not set(spec.artifact_sha256) <= _HEX:
            raise InvalidArgument("spec.artifact_sha256", "must be 64 lowercase hex digits")
        if not 0.0 <= spec.operating_threshold <= 1.0:
            raise InvalidArgument("spec.operating_threshold", "must be within [0, 1]")
        if not spec.temperature > 0:
            raise InvalidArgument("spec.temperature", "must be > 0")
        if spec.calibration_revision < 1:
            raise InvalidArgument("spec.calibration_revision", "must be >= 1")
        for i, metric in enumerate(spec.validation_overall):
            if metric.ci_low is not None and metric.ci_high is not None and metric.ci_low > metric.ci_high:
                raise InvalidArgument(f"spec.validation_overall[{i}].ci_low", "must be <= ci_high")
        try:
            return self._policies.get(spec.policy_name)
        except NotFound as exc:
            raise InvalidArgument("spec.policy_name", f"unknown policy '{spec.policy_name}'") from exc
        except PolicyError as exc:
            raise InvalidArgument("spec.policy_name", f"policy is invalid: {exc}") from exc

    async def register_version(self, actor: Actor, spec: VersionSpec, request_id: str) -> Version:
        """Register a new, immutable version in state ``registered``.

        Raises:
            InvalidArgument: A field of ``spec`` is invalid (the message starts with it).
            AlreadyExists: The model already has this version label.
        """
        subject = f"model/{spec.model_name}/{spec.version}"

        async def body(tx: GovernanceTx, work: _Work) -> Version:
            policy = self._validate_spec(spec)
            if await tx.get_version(spec.model_name, spec.version) is not None:
                raise AlreadyExists(_version_key(spec.model_name, spec.version))
            if spec.parent_version and await tx.get_version(spec.model_name, spec.parent_version) is None:
                raise InvalidArgument("spec.parent_version", f"unknown version '{spec.parent_version}'")
            now = self._clock.now()
            version = Version(spec, State.REGISTERED, actor.principal, now, now, policy.ref, 1)
            await tx.insert_version(version)
            await self._audit(tx, actor, "version.register", subject, None, to_jsonable(version), request_id)
            return version

        return await self._run(
            "register_version", actor, request_id, spec.model_name, subject, body, lambda d: from_jsonable(Version, d)
        )

    async def get_version(self, model_name: str, version: str) -> Version:
        """One version. Raises NotFound."""
        async with self._store.transaction() as tx:
            return await self._version(tx, model_name, version)

    async def list_versions(
        self,
        model_name: str | None = None,
        states: Sequence[State] = (),
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[Version], str]:
        """Versions newest registration first, one page; returns (versions, next page token or "")."""
        offset, size = _page(page_size, page_token)
        async with self._store.transaction() as tx:
            rows = await tx.list_versions(model_name or None, tuple(states), offset, size + 1)
        token = str(offset + size) if len(rows) > size else ""
        return rows[:size], token

    async def list_transitions(self, model_name: str, version: str | None = None) -> list[Transition]:
        """Transitions of a model (or one version), oldest first."""
        async with self._store.transaction() as tx:
            return await tx.list_transitions(model_name, version)

    # ---------------------------------------------------------------------------------------------------
    # Transitions and approvals

    def _approval_unmet(self, policy: Policy, name: str, approvals: Sequence[Approval]) -> list[str]:
        return _unmet(policy.approval_rule(name), name, approvals)

    async def _condition_unmet(self, tx: GovernanceTx, version: Version, to: State) -> list[str]:
        """Non-approval requirements that may become true later (kept on a pending transition)."""
        if version.state == State.CANARY and to == State.PRODUCTION:
            active = await tx.running_rollout(version.model_name)
            if active is None or active.candidate_version != version.version:
                return [f"a running rollout of version '{version.version}'"]
            if not (active.at_last_step and active.last_decision == GateDecision.PROMOTE):
                step = f"step {active.step_index + 1} of {len(active.plan)}"
                return [f"rollout {active.rollout_id} must pass the gates of its final step (now at {step})"]
        return []

    async def _check_preconditions(self, tx: GovernanceTx, version: Version, to: State, policy: Policy) -> None:
        """Hard requirements of a requested move; raise FailedPrecondition naming the missing one."""
        check_transition(version.state, to)
        model = version.model_name
        routes = await tx.get_routes(model)
        stable = routes.stable_version if routes else ""
        if to == State.VALIDATED and not version.spec.validation_overall:
            raise FailedPrecondition("validated requires validation metrics; version has none")
        if to == State.CANARY:
            if not stable:
                raise FailedPrecondition(f"canary requires a production version of model '{model}' to compare against")
            active = await tx.running_rollout(model)
            if active is not None:
                raise FailedPrecondition(f"canary requires no running rollout; rollout {active.rollout_id} is running")
            need = policy.shadow.min_predictions
            if need > 0:
                if version.state != State.SHADOW:
                    raise FailedPrecondition(
                        f"canary requires {need} shadow predictions; version is {version.state} (never shadowed)"
                    )
                seen = await self._evidence.arm_evidence(model, version.version, "shadow", version.state_changed_at)
                if seen.predictions < need:
                    raise FailedPrecondition(
                        f"canary requires {need} shadow predictions; version has {seen.predictions}"
                    )
        if to == State.PRODUCTION:
            if version.state == State.VALIDATED and stable:
                raise FailedPrecondition(
                    f"production from validated requires that model '{model}' has no production version "
                    f"(first deployment); version '{stable}' is production"
                )
            if version.state == State.RETIRED:
                raise FailedPrecondition("production from retired requires a rollback")
        if to == State.RETIRED and version.state == State.PRODUCTION:
            raise FailedPrecondition("retiring the production version requires a replacement (complete a rollout)")
        if to == State.ROLLED_BACK:
            raise FailedPrecondition("rolled_back is reached by aborting a rollout or by a rollback")

    async def _apply(self, tx: GovernanceTx, work: _Work, actor: Actor, t: Transition, request_id: str) -> Transition:
        """Apply a transition whose requirements are met: state change plus its route effects."""
        version = await self._version(tx, t.model_name, t.version)
        model = t.model_name
        routes = await tx.get_routes(model)
        shadows = tuple(routes.shadow_versions) if routes else ()
        reason = f"transition {t.name}: {t.reason}" if t.reason else f"transition {t.name}"
        if t.to_state == State.SHADOW:
            await self._set_state(tx, actor, version, State.SHADOW, request_id, reason)
            await self._change_routes(tx, work, actor, model, request_id, reason, shadows=(*shadows, t.version))
        elif t.to_state == State.PRODUCTION and version.state == State.CANARY:
            await self._complete_rollout(tx, work, actor, version, request_id, reason)
        elif t.to_state == State.PRODUCTION:
            await self._set_state(tx, actor, version, State.PRODUCTION, request_id, reason)
            kept = tuple(s for s in shadows if s != t.version)
            await self._change_routes(tx, work, actor, model, request_id, reason, stable=t.version, shadows=kept)
        else:
            await self._set_state(tx, actor, version, t.to_state, request_id, reason)
            # An approved canary keeps shadowing until its rollout starts; other states leave the shadows.
            if t.version in shadows and t.to_state != State.CANARY:
                kept = tuple(s for s in shadows if s != t.version)
                await self._change_routes(tx, work, actor, model, request_id, reason, shadows=kept)
        applied = replace(t, status=TransitionStatus.APPLIED, unmet=(), applied_at=self._clock.now())
        return applied

    async def _complete_rollout(
        self, tx: GovernanceTx, work: _Work, actor: Actor, candidate: Version, request_id: str, reason: str
    ) -> None:
        model = candidate.model_name
        active = await tx.running_rollout(model)
        if active is None or active.candidate_version != candidate.version:
            raise FailedPrecondition(f"production from canary requires a running rollout of '{candidate.version}'")
        done = rollouts.promote(active, actor.principal, reason, self._clock.now())
        if done.status != RolloutStatus.COMPLETED:
            raise FailedPrecondition(f"rollout {active.rollout_id} is not at its final step")
        stored = await tx.update_rollout(done, active.row_version)
        await self._audit(
            tx, actor, "rollout.complete", active.subject, to_jsonable(active), to_jsonable(stored), request_id
        )
        routes = await tx.get_routes(model)
        old_stable = routes.stable_version if routes else ""
        shadows = tuple(s for s in (routes.shadow_versions if routes else ()) if s != candidate.version)
        await self._change_routes(
            tx, work, actor, model, request_id, f"rollout {active.rollout_id} completed",
            stable=candidate.version, canary="", weight_bp=0, shadows=shadows, rollout_id=active.rollout_id,
        )  # fmt: skip
        await self._set_state(tx, actor, candidate, State.PRODUCTION, request_id, reason)
        if old_stable and old_stable != candidate.version:
            previous = await self._version(tx, model, old_stable)
            await self._set_state(tx, actor, previous, State.RETIRED, request_id, f"replaced by '{candidate.version}'")

    async def _record_applied(
        self, tx: GovernanceTx, actor: Actor, version: Version, to: State, reason: str, request_id: str
    ) -> Transition:
        """Record a transition the system applies itself (abort, rollback, rollout completion)."""
        now = self._clock.now()
        t = Transition(
            self._new_id(), version.model_name, version.version, version.state, to, TransitionStatus.APPLIED,
            actor.principal, now, reason, (), (), now, 1,
        )  # fmt: skip
        await tx.insert_transition(t)
        await self._audit(tx, actor, "transition.record", t.subject, None, to_jsonable(t), request_id)
        return t

    async def request_transition(
        self, actor: Actor, model_name: str, version: str, to_state: State, reason: str, request_id: str
    ) -> Transition:
        """Ask to move a version; applied at once when policy needs no approvals, otherwise left pending.

        Raises:
            NotFound: Unknown version.
            FailedPrecondition: The move is not allowed now (names the missing condition).
        """
        subject = f"model/{model_name}/{version}"

        async def body(tx: GovernanceTx, work: _Work) -> Transition:
            v = await self._version(tx, model_name, version)
            to = State(to_state)
            pending = await tx.pending_transition_for(model_name, version)
            if pending is not None:
                raise FailedPrecondition(
                    f"transition {pending.transition_id} ({pending.name}) is already pending for this version"
                )
            policy = self._policy(v)
            await self._check_preconditions(tx, v, to, policy)
            now = self._clock.now()
            name = f"{v.state}->{to}"
            unmet = self._approval_unmet(policy, name, ()) + await self._condition_unmet(tx, v, to)
            t = Transition(
                self._new_id(), model_name, version, v.state, to, TransitionStatus.PENDING,
                actor.principal, now, reason, (), tuple(unmet), None, 1,
            )  # fmt: skip
            await tx.insert_transition(t)
            await self._audit(tx, actor, "transition.request", t.subject, None, to_jsonable(t), request_id)
            if not unmet:
                applied = await self._apply(tx, work, actor, t, request_id)
                t = await tx.update_transition(applied, t.row_version)
                await self._audit(tx, actor, "transition.apply", t.subject, None, to_jsonable(t), request_id)
            return t

        return await self._run(
            "request_transition", actor, request_id, model_name, subject, body, lambda d: from_jsonable(Transition, d)
        )

    async def approve(
        self, actor: Actor, transition_id: str, meaning: str, request_id: str
    ) -> tuple[Approval, Transition]:
        """Sign an approval of a pending transition; apply it when its requirements are now met.

        Raises:
            NotFound: Unknown transition.
            PermissionDenied: The policy does not let the signer's role approve it, or the signer registered
                the version (audited as ``access.denied``).
            FailedPrecondition: Not pending, already signed by this signer, or the signer has no key.
        """
        subject = f"transition/{transition_id}"

        async def body(tx: GovernanceTx, work: _Work) -> tuple[Approval, Transition]:
            t = await tx.get_transition(transition_id)
            if t is None:
                raise NotFound(f"transition '{transition_id}'")
            if t.status != TransitionStatus.PENDING:
                raise FailedPrecondition(f"transition {transition_id} is {t.status}, not pending")
            v = await self._version(tx, t.model_name, t.version)
            if v.state != t.from_state:
                raise FailedPrecondition(
                    f"transition {transition_id} expects state {t.from_state}; version is {v.state}"
                )
            policy = self._policy(v)
            rule = policy.approval_rule(t.name)
            if rule is None:
                raise FailedPrecondition(f"transition {t.name} needs no approval; it waits for: {'; '.join(t.unmet)}")
            if actor.role not in rule.roles:
                allowed = " or ".join(str(r) for r in rule.roles)
                raise _Denied(
                    subject, f"role {actor.role} may not approve {t.name}; policy {policy.ref} requires {allowed}"
                )
            if not policy.separation_of_duties.registrant_may_approve and actor.principal == v.registered_by:
                raise _Denied(subject, f"{actor.principal} registered {v.subject} and may not approve its transitions")
            if rule.distinct_signers and any(a.signer == actor.principal for a in t.approvals):
                raise FailedPrecondition(f"{actor.principal} has already approved transition {transition_id}")
            signed_at = self._clock.now()
            text = meaning.strip() or f"approve {t.to_state}"
            fields = approval_record(t.transition_id, actor.principal, actor.role, text, signed_at)
            signature, algorithm, key_id = sign_approval(self._keyring, fields)
            approval = Approval(
                self._new_id(),
                t.transition_id,
                actor.principal,
                actor.role,
                text,
                signed_at,
                signature,
                algorithm,
                key_id,
            )
            await tx.insert_approval(approval)
            await self._audit(tx, actor, "approval.sign", subject, None, to_jsonable(approval), request_id)
            approvals = (*t.approvals, approval)
            unmet = self._approval_unmet(policy, t.name, approvals) + await self._condition_unmet(tx, v, t.to_state)
            updated = replace(t, approvals=approvals, unmet=tuple(unmet))
            if not unmet:
                updated = await self._apply(tx, work, actor, updated, request_id)
            stored = await tx.update_transition(updated, t.row_version)
            action = "transition.apply" if stored.status == TransitionStatus.APPLIED else "transition.update"
            await self._audit(tx, actor, action, subject, to_jsonable(t), to_jsonable(stored), request_id)
            return approval, stored

        def decode(data: Any) -> tuple[Approval, Transition]:
            return from_jsonable(Approval, data[0]), from_jsonable(Transition, data[1])

        # Approvals of one model serialise on the model's lock; the transition names the model.
        model_name = await self._model_of_transition(transition_id)
        return await self._run("approve", actor, request_id, model_name, subject, body, decode)

    async def _model_of_transition(self, transition_id: str) -> str:
        async with self._store.transaction() as tx:
            t = await tx.get_transition(transition_id)
        return t.model_name if t is not None else ""

    async def _model_of_rollout(self, rollout_id: str) -> str:
        async with self._store.transaction() as tx:
            r = await tx.get_rollout(rollout_id)
        return r.model_name if r is not None else ""

    # ---------------------------------------------------------------------------------------------------
    # Reference renewals

    async def propose_reference(
        self,
        actor: Actor,
        model_name: str,
        version: str,
        uri: str,
        sha256: str,
        period: ReferencePeriod | None,
        reason: str,
        request_id: str,
    ) -> ReferenceRenewal:
        """Propose a new reference profile for a version; it waits for the approvals its policy requires.

        The proposer is recorded as the one who chose the period. When the policy needs no signature, the
        renewal takes effect at once.

        Raises:
            NotFound: Unknown version.
            InvalidArgument: A bad field of the proposal (``profile.<field>``), a ``file://`` profile that cannot be
                read or does not hash to ``sha256``, or the reference already in force.
            FailedPrecondition: The version is retired, rolled back or rejected, or a renewal is already pending.
        """
        subject = f"model/{model_name}/{version}"

        async def body(tx: GovernanceTx, work: _Work) -> ReferenceRenewal:
            v = await self._version(tx, model_name, version)
            validate_proposal(uri, sha256, period)
            if v.state in _NO_RENEWAL:
                raise FailedPrecondition(
                    f"reference renewal requires a version that may still serve; version is {v.state}"
                )
            if sha256 == v.spec.reference_sha256:
                raise InvalidArgument("profile.sha256", "is the reference already in force for this version")
            pending = await tx.pending_renewal_for(model_name, version)
            if pending is not None:
                raise FailedPrecondition(f"reference renewal {pending.renewal_id} is already pending for this version")
            # Hashing a large file must not stall the loop.
            await asyncio.to_thread(check_local_file, uri, sha256, "profile", self._profile_roots)
            policy = self._policy(v)
            unmet = _unmet(policy.reference_renewal_rule(), "reference renewal", ())
            r = ReferenceRenewal(
                self._new_id(), model_name, version, v.reference, Reference(uri, sha256, period, actor.principal),
                TransitionStatus.PENDING, actor.principal, self._clock.now(), reason, (), tuple(unmet),
            )  # fmt: skip
            await tx.insert_renewal(r)
            await self._audit(tx, actor, "reference.proposed", r.subject, None, to_jsonable(r), request_id)
            if unmet:
                return r
            applied = await self._apply_renewal(tx, work, actor, r, request_id)
            stored = await tx.update_renewal(applied, r.row_version)
            await self._audit(tx, actor, "reference.applied", r.subject, None, to_jsonable(stored), request_id)
            return stored

        return await self._run(
            "propose_reference", actor, request_id, model_name, subject, body,
            lambda d: from_jsonable(ReferenceRenewal, d),
        )  # fmt: skip

    async def _apply_renewal(
        self, tx: GovernanceTx, work: _Work, actor: Actor, r: ReferenceRenewal, request_id: str
    ) -> ReferenceRenewal:
        """Put the renewal's reference in force; republish the model's routes when the version is on one."""
        v = await self._version(tx, r.model_name, r.version)
        if v.spec.reference_sha256 != r.previous.sha256:
            raise FailedPrecondition(f"the reference of {v.subject} changed since renewal {r.renewal_id} was proposed")
        spec = replace(
            v.spec, reference_uri=r.proposed.uri, reference_sha256=r.proposed.sha256, reference_period=r.proposed.period
        )
        changed = replace(v, spec=spec, reference_chosen_by=r.proposed.chosen_by, reference_renewal_id=r.renewal_id)
        stored = await tx.update_version(changed, v.row_version)
        after = {**to_jsonable(stored.reference), "renewal_id": r.renewal_id}
        await self._audit(tx, actor, "reference.renewed", v.subject, to_jsonable(v.reference), after, request_id)
        revision = 0
        routes = await tx.get_routes(r.model_name)
        if routes is not None and r.version in routes.serving():
            why = (
                f"reference renewed for version '{r.version}' (renewal {r.renewal_id}, sha256 {r.proposed.sha256[:12]})"
            )
            table = await self._change_routes(
                tx, work, actor, r.model_name, request_id, why, rollout_id=routes.rollout_id
            )
            revision = table.revision
        now = self._clock.now()
        return replace(r, status=TransitionStatus.APPLIED, unmet=(), decided_at=now, route_revision=revision)

    async def approve_reference(
        self, actor: Actor, renewal_id: str, meaning: str, request_id: str
    ) -> tuple[Approval, ReferenceRenewal]:
        """Sign an approval of a pending reference renewal; put it in force when the policy's rule is met.

        The signature covers the renewal id and the proposed profile's SHA-256. The same separation of
        duties as for transitions: the version's registrant may not sign, nor may the renewal's proposer.

        Raises:
            NotFound: Unknown renewal.
            PermissionDenied: The policy does not let the signer's role approve renewals, or the signer
                registered the version or proposed the renewal (audited as ``access.denied``).
            FailedPrecondition: Not pending, the version no longer serves, already signed by this signer, or
                the signer has no key.
        """
        subject = f"reference/{renewal_id}"

        async def body(tx: GovernanceTx, work: _Work) -> tuple[Approval, ReferenceRenewal]:
            r = await self._renewal(tx, renewal_id)
            if r.status != TransitionStatus.PENDING:
                raise FailedPrecondition(f"reference renewal {renewal_id} is {r.status}, not pending")
            v = await self._version(tx, r.model_name, r.version)
            if v.state in _NO_RENEWAL:
                raise FailedPrecondition(
                    f"reference renewal requires a version that may still serve; version is {v.state}"
                )
            policy = self._policy(v)
            rule = policy.reference_renewal_rule()
            if rule is None:
                raise FailedPrecondition(f"policy {policy.ref} needs no approval of reference renewals")
            if actor.role not in rule.roles:
                allowed = " or ".join(str(role) for role in rule.roles)
                raise _Denied(
                    subject,
                    f"role {actor.role} may not approve reference renewals; policy {policy.ref} requires {allowed}",
                )
            if not policy.separation_of_duties.registrant_may_approve:
                if actor.principal == v.registered_by:
                    raise _Denied(
                        subject, f"{actor.principal} registered {v.subject} and may not approve its references"
                    )
                if actor.principal == r.requested_by:
                    raise _Denied(
                        subject, f"{actor.principal} proposed reference renewal {renewal_id} and may not approve it"
                    )
            if rule.distinct_signers and any(a.signer == actor.principal for a in r.approvals):
                raise FailedPrecondition(f"{actor.principal} has already approved reference renewal {renewal_id}")
            signed_at = self._clock.now()
            text = meaning.strip() or "approve reference"
            fields = renewal_record(r.renewal_id, r.proposed.sha256, actor.principal, actor.role, text, signed_at)
            signature, algorithm, key_id = sign_approval(self._keyring, fields)
            approval = Approval(
                self._new_id(), "", actor.principal, actor.role, text, signed_at, signature, algorithm, key_id,
                renewal_id=r.renewal_id,
            )  # fmt: skip
            await tx.insert_approval(approval)
            await self._audit(tx, actor, "reference.approved", subject, None, to_jsonable(approval), request_id)
            approvals = (*r.approvals, approval)
            unmet = _unmet(rule, "reference renewal", approvals)
            updated = replace(r, approvals=approvals, unmet=tuple(unmet))
            if not unmet:
                updated = await self._apply_renewal(tx, work, actor, updated, request_id)
            stored = await tx.update_renewal(updated, r.row_version)
            action = "reference.applied" if stored.status == TransitionStatus.APPLIED else "reference.update"
            await self._audit(tx, actor, action, subject, to_jsonable(r), to_jsonable(stored), request_id)
            return approval, stored

        def decode(data: Any) -> tuple[Approval, ReferenceRenewal]:
            return from_jsonable(Approval, data[0]), from_jsonable(ReferenceRenewal, data[1])

        model_name = await self._model_of_renewal(renewal_id)
        # Its own command name: a request id first used to sign a transition is refused here, not misread.
        return await self._run("approve_reference", actor, request_id, model_name, subject, body, decode)

    async def reject_reference(self, actor: Actor, renewal_id: str, reason: str, request_id: str) -> ReferenceRenewal:
        """Refuse (a signer) or withdraw (its proposer) a pending reference renewal; the reference in force stays.

        Raises:
            NotFound: Unknown renewal.
            PermissionDenied: An operator who did not propose it.
            FailedPrecondition: Not pending.
        """
        subject = f"reference/{renewal_id}"

        async def body(tx: GovernanceTx, work: _Work) -> ReferenceRenewal:
            r = await self._renewal(tx, renewal_id)
            if r.status != TransitionStatus.PENDING:
                raise FailedPrecondition(f"reference renewal {renewal_id} is {r.status}, not pending")
            if actor.role == Role.OPERATOR and actor.principal != r.requested_by:
                raise _Denied(
                    subject, f"an operator may withdraw only their own proposal; {r.requested_by} proposed it"
                )
            why = reason.strip() or "rejected"
            rejected = replace(r, status=TransitionStatus.REJECTED, decided_at=self._clock.now(), rejection_reason=why)
            stored = await tx.update_renewal(rejected, r.row_version)
            await self._audit(tx, actor, "reference.rejected", subject, to_jsonable(r), to_jsonable(stored), request_id)
            return stored

        model_name = await self._model_of_renewal(renewal_id)
        return await self._run(
            "reject_reference", actor, request_id, model_name, subject, body,
            lambda d: from_jsonable(ReferenceRenewal, d),
        )  # fmt: skip

    async def _renewal(self, tx: GovernanceTx, renewal_id: str) -> ReferenceRenewal:
        found = await tx.get_renewal(renewal_id)
        if found is None:
            raise NotFound(f"reference renewal '{renewal_id}'")
        return found

    async def _model_of_renewal(self, renewal_id: str) -> str:
        async with self._store.transaction() as tx:
            r = await tx.get_renewal(renewal_id)
        return r.model_name if r is not None else ""

    async def get_reference_renewal(self, renewal_id: str) -> ReferenceRenewal:
        """One reference renewal with its approvals. Raises NotFound."""
        async with self._store.transaction() as tx:
            return await self._renewal(tx, renewal_id)

    async def list_reference_renewals(self, model_name: str, version: str | None = None) -> list[ReferenceRenewal]:
        """Reference renewals of a model (or one version), oldest first: the history of its references."""
        async with self._store.transaction() as tx:
            return await tx.list_renewals(model_name, version)

    # ---------------------------------------------------------------------------------------------------
    # Rollouts

    async def _rollout(self, tx: GovernanceTx, rollout_id: str) -> Rollout:
        found = await tx.get_rollout(rollout_id)
        if found is None:
            raise NotFound(f"rollout '{rollout_id}'")
        return found

    async def start_rollout(
        self, actor: Actor, model_name: str, candidate_version: str, reason: str, request_id: str
    ) -> Rollout:
        """Start a canary rollout of an approved candidate against the model's production version.

        The candidate must be in ``canary`` (its transition approved), or in ``shadow``/``validated`` when
        its policy needs no approval for that move (the transition is then recorded here).

        Raises:
            FailedPrecondition: Not approved for canary, no production version, or a rollout already runs.
        """
        subject = f"model/{model_name}/{candidate_version}"

        async def body(tx: GovernanceTx, work: _Work) -> Rollout:
            v = await self._version(tx, model_name, candidate_version)
            policy = self._policy(v)
            active = await tx.running_rollout(model_name)
            if active is not None:
                raise FailedPrecondition(f"rollout {active.rollout_id} is already running for model '{model_name}'")
            routes = await tx.get_routes(model_name)
            stable = routes.stable_version if routes else ""
            if not stable:
                raise FailedPrecondition(
                    f"canary requires a production version of model '{model_name}' to compare against"
                )
            if v.state != State.CANARY:
                await self._check_preconditions(tx, v, State.CANARY, policy)
                missing = self._approval_unmet(policy, f"{v.state}->canary", ())
                if missing:
                    raise FailedPrecondition(
                        f"version is not approved for canary: {missing[0]} (request the transition and collect them)"
                    )
                await self._record_applied(tx, actor, v, State.CANARY, reason, request_id)
                v = await self._set_state(tx, actor, v, State.CANARY, request_id, reason)
            now = self._clock.now()
            r = rollouts.start(
                self._new_id(), model_name, candidate_version, stable, policy.plan(), actor.principal, now, policy.ref,
                reason,
            )  # fmt: skip
            await tx.insert_rollout(r)
            await self._audit(tx, actor, "rollout.start", r.subject, None, to_jsonable(r), request_id)
            shadows = tuple(s for s in (routes.shadow_versions if routes else ()) if s != candidate_version)
            await self._change_routes(
                tx, work, actor, model_name, request_id, f"rollout {r.rollout_id} step 1",
                canary=candidate_version, weight_bp=r.weight_bp, shadows=shadows, rollout_id=r.rollout_id,
            )  # fmt: skip
            return r

        return await self._run(
            "start_rollout", actor, request_id, model_name, subject, body, lambda d: from_jsonable(Rollout, d)
        )

    async def _abort(
        self, tx: GovernanceTx, work: _Work, actor: Actor, r: Rollout, reason: str, request_id: str
    ) -> Rollout:
        """Route 100% to stable, then mark the candidate rolled back (one transaction)."""
        aborted = (
            r if r.status == RolloutStatus.ABORTED else rollouts.abort(r, actor.principal, reason, self._clock.now())
        )
        stored = await tx.update_rollout(aborted, r.row_version)
        await self._audit(tx, actor, "rollout.abort", r.subject, to_jsonable(r), to_jsonable(stored), request_id)
        await self._change_routes(
            tx, work, actor, r.model_name, request_id, f"rollout {r.rollout_id} aborted: {reason}",
            canary="", weight_bp=0, rollout_id=r.rollout_id,
        )  # fmt: skip
        candidate = await self._version(tx, r.model_name, r.candidate_version)
        pending = await tx.pending_transition_for(r.model_name, r.candidate_version)
        if pending is not None:
            withdrawn = replace(pending, status=TransitionStatus.REJECTED, unmet=(f"rollout aborted: {reason}",))
            await tx.update_transition(withdrawn, pending.row_version)
            await self._audit(
                tx, actor, "transition.withdraw", pending.subject, None, to_jsonable(withdrawn), request_id
            )
        await self._record_applied(tx, actor, candidate, State.ROLLED_BACK, reason, request_id)
        await self._set_state(tx, actor, candidate, State.ROLLED_BACK, request_id, reason)
        return stored

    async def _rollout_command(
        self,
        command: str,
        actor: Actor,
        rollout_id: str,
        request_id: str,
        body: Callable[[GovernanceTx, _Work, Rollout], Awaitable[Rollout]],
    ) -> Rollout:
        async def run(tx: GovernanceTx, work: _Work) -> Rollout:
            return await body(tx, work, await self._rollout(tx, rollout_id))

        model_name = await self._model_of_rollout(rollout_id)
        return await self._run(
            command, actor, request_id, model_name, f"rollout/{rollout_id}", run, lambda d: from_jsonable(Rollout, d)
        )

    async def pause_rollout(self, actor: Actor, rollout_id: str, reason: str, request_id: str) -> Rollout:
        """Hold a running rollout at its step (the canary keeps its weight)."""
        return await self._hold_or_resume("pause", rollouts.pause, actor, rollout_id, reason, request_id)

    async def resume_rollout(self, actor: Actor, rollout_id: str, reason: str, request_id: str) -> Rollout:
        """Let a paused rollout evaluate its gates again."""
        return await self._hold_or_resume("resume", rollouts.resume, actor, rollout_id, reason, request_id)

    async def _hold_or_resume(
        self,
        verb: str,
        move: Callable[[Rollout, str, str, datetime], Rollout],
        actor: Actor,
        rollout_id: str,
        reason: str,
        request_id: str,
    ) -> Rollout:
        """Pause or resume: the rollout's own state change, stored and audited as ``rollout.<verb>``."""

        async def body(tx: GovernanceTx, work: _Work, r: Rollout) -> Rollout:
            stored = await tx.update_rollout(move(r, actor.principal, reason, self._clock.now()), r.row_version)
            await self._audit(tx, actor, f"rollout.{verb}", r.subject, to_jsonable(r), to_jsonable(stored), request_id)
            return stored

        return await self._rollout_command(f"{verb}_rollout", actor, rollout_id, request_id, body)

    async def abort_rollout(self, actor: Actor, rollout_id: str, reason: str, request_id: str) -> Rollout:
        """Stop a rollout: 100% to stable, the candidate rolled back."""

        async def body(tx: GovernanceTx, work: _Work, r: Rollout) -> Rollout:
            if not r.active:
                raise FailedPrecondition(
                    f"abort requires a running or paused rollout; rollout {rollout_id} is {r.status}"
                )
            return await self._abort(tx, work, actor, r, reason or "aborted by operator", request_id)

        return await self._rollout_command("abort_rollout", actor, rollout_id, request_id, body)

    async def _production_approved(self, tx: GovernanceTx, r: Rollout, policy: Policy) -> Transition | bool | None:
        """True if no approval is needed; the pending production transition if its approvals are complete."""
        if policy.approval_rule("canary->production") is None:
            return True
        pending = await tx.pending_transition_for(r.model_name, r.candidate_version)
        if pending is None or pending.to_state != State.PRODUCTION:
            return None
        if self._approval_unmet(policy, "canary->production", pending.approvals):
            return None
        return pending

    async def _finish(
        self, tx: GovernanceTx, work: _Work, actor: Actor, r: Rollout, policy: Policy, request_id: str, reason: str
    ) -> Rollout | None:
        """Complete a rollout whose final step passed, if its production approvals are in; else None."""
        approved = await self._production_approved(tx, r, policy)
        if approved is None or approved is False:
            return None
        candidate = await self._version(tx, r.model_name, r.candidate_version)
        if isinstance(approved, Transition):
            applied = replace(approved, status=TransitionStatus.APPLIED, unmet=(), applied_at=self._clock.now())
            stored_t = await tx.update_transition(applied, approved.row_version)
            await self._audit(tx, actor, "transition.apply", approved.subject, None, to_jsonable(stored_t), request_id)
        else:
            await self._record_applied(tx, actor, candidate, State.PRODUCTION, reason, request_id)
        await self._complete_rollout(tx, work, actor, candidate, request_id, reason)
        return await self._rollout(tx, r.rollout_id)

    async def promote_rollout(self, actor: Actor, rollout_id: str, reason: str, request_id: str) -> Rollout:
        """Advance one step now, without waiting for evidence; a failing gate still refuses it.

        From the last step the rollout completes, which needs the policy's ``canary->production`` approvals.

        Raises:
            FailedPrecondition: A gate fails, approvals are missing, or the rollout is not running/paused.
        """

        async def body(tx: GovernanceTx, work: _Work, r: Rollout) -> Rollout:
            if not r.active:
                raise FailedPrecondition(
                    f"promote requires a running or paused rollout; rollout {rollout_id} is {r.status}"
                )
            candidate = await self._version(tx, r.model_name, r.candidate_version)
            policy = self._policy(candidate)
            decision, gates = await self._evaluate(r, policy)
            failed = [g for g in gates if g.outcome == GateOutcome.FAIL]
            if failed:
                raise FailedPrecondition(
                    "promote refused: " + "; ".join(f"gate {g.gate} failed ({g.detail})" for g in failed)
                )
            text = (
                f"manual promote by {actor.principal}: {reason}" if reason else f"manual promote by {actor.principal}"
            )
            if r.at_last_step:
                marked = replace(r, last_decision=GateDecision.PROMOTE, gates=gates)
                finished = await self._finish(tx, work, actor, marked, policy, request_id, text)
                if finished is None:
                    raise FailedPrecondition(
                        "completing the rollout requires "
                        + "; ".join(self._approval_unmet(policy, "canary->production", ()))
                        + " (request the transition to production and collect them)"
                    )
                return finished
            evaluated = replace(r, last_decision=decision, gates=gates)
            promoted = rollouts.promote(evaluated, actor.principal, text, self._clock.now())
            stored = await tx.update_rollout(promoted, r.row_version)
            await self._audit(tx, actor, "rollout.promote", r.subject, to_jsonable(r), to_jsonable(stored), request_id)
            await self._change_routes(
                tx, work, actor, r.model_name, request_id,
                f"rollout {r.rollout_id} step {stored.step_index + 1}", weight_bp=stored.weight_bp,
                rollout_id=r.rollout_id,
            )  # fmt: skip
            return stored

        return await self._rollout_command("promote_rollout", actor, rollout_id, request_id, body)

    async def _evaluate(self, r: Rollout, policy: Policy) -> tuple[GateDecision, tuple[Any, ...]]:
        step = r.plan[r.step_index]
        since: datetime = r.step_started_at or r.started_at
        # At 100% the stable arm gets no traffic in the step's window: compare with its whole-rollout window.
        stable_since = since if step.weight_bp < 10000 else r.started_at
        canary = await self._evidence.arm_evidence(r.model_name, r.candidate_version, "canary", since)
        stable = await self._evidence.arm_evidence(r.model_name, r.stable_version, "stable", stable_since)
        breaches = await self._evidence.open_breaches(r.model_name, r.candidate_version, r.started_at)
        return evaluate_step(policy, step, canary, stable, breaches)

    async def evaluate_rollout(self, actor: Actor, rollout_id: str, request_id: str) -> Rollout:
        """The controller's tick: evaluate the current step's gates, then promote, hold or abort.

        A hold that changes nothing writes nothing (no audit entry, no request record).
        """

        async def body(tx: GovernanceTx, work: _Work, r: Rollout) -> Rollout:
            if r.status != RolloutStatus.RUNNING:
                work.record = False
                return r
            candidate = await self._version(tx, r.model_name, r.candidate_version)
            policy = self._policy(candidate)
            decision, gates = await self._evaluate(r, policy)
            now = self._clock.now()
            if decision == GateDecision.ABORT:
                failing = ", ".join(g.gate for g in gates if g.outcome == GateOutcome.FAIL)
                evaluated = rollouts.record_evaluation(r, decision, gates, now)
                return await self._abort(
                    tx, work, actor, evaluated, f"{failing} failed at step {r.step_index + 1}", request_id
                )
            if decision == GateDecision.PROMOTE and not r.at_last_step:
                promoted = rollouts.apply_decision(r, decision, gates, actor.principal, now)
                stored = await tx.update_rollout(promoted, r.row_version)
                await self._audit(
                    tx, actor, "rollout.promote", r.subject, to_jsonable(r), to_jsonable(stored), request_id
                )
                await self._change_routes(
                    tx, work, actor, r.model_name, request_id,
                    f"rollout {r.rollout_id} step {stored.step_index + 1}", weight_bp=stored.weight_bp,
                    rollout_id=r.rollout_id,
                )  # fmt: skip
                return stored
            if decision == GateDecision.PROMOTE:
                marked = replace(r, last_decision=decision, gates=gates)
                finished = await self._finish(tx, work, actor, marked, policy, request_id, "final step's gates passed")
                if finished is not None:
                    return finished
                note = "final step passed; awaiting approvals for canary->production"
            else:
                waiting = ", ".join(g.gate for g in gates if g.outcome != GateOutcome.PASS) or "evidence"
                note = f"holding at step {r.step_index + 1}: {waiting}"
            evaluated = rollouts.record_evaluation(r, decision, gates, now, note)
            unchanged = (
                r.last_decision == decision
                and bool(r.reasons)
                and r.reasons[-1] == note
                and [(g.gate, g.outcome) for g in r.gates] == [(g.gate, g.outcome) for g in gates]
            )
            if unchanged:
                work.record = False
                return r
            stored = await tx.update_rollout(evaluated, r.row_version)
            await self._audit(tx, actor, "rollout.evaluate", r.subject, None, to_jsonable(stored), request_id)
            if decision == GateDecision.PROMOTE:
                await self._reconsider_production(tx, work, actor, stored, request_id)
            return stored

        return await self._rollout_command("evaluate_rollout", actor, rollout_id, request_id, body)

    async def _reconsider_production(
        self, tx: GovernanceTx, work: _Work, actor: Actor, r: Rollout, request_id: str
    ) -> None:
        """Refresh the 'unmet' list of a pending production transition after the final step passed."""
        pending = await tx.pending_transition_for(r.model_name, r.candidate_version)
        if pending is None or pending.to_state != State.PRODUCTION:
            return
        candidate = await self._version(tx, r.model_name, r.candidate_version)
        policy = self._policy(candidate)
        unmet = self._approval_unmet(policy, pending.name, pending.approvals)
        if tuple(unmet) != pending.unmet:
            updated = await tx.update_transition(replace(pending, unmet=tuple(unmet)), pending.row_version)
            await self._audit(tx, actor, "transition.update", pending.subject, None, to_jsonable(updated), request_id)

    async def rollback(
        self, actor: Actor, model_name: str, to_version: str | None, reason: str, request_id: str
    ) -> tuple[RouteState, Version, Version]:
        """Take the serving candidate or production version out of service and restore a previous one.

        With a rollout running this aborts it (the stable version is the one restored). Otherwise the
        production version becomes ``rolled_back`` and ``to_version`` (default: the version production
        before it) becomes production again.

        Returns:
            (route table now in force, version rolled back, version restored).
        """
        subject = f"routes/{model_name}"

        async def body(tx: GovernanceTx, work: _Work) -> tuple[RouteState, Version, Version]:
            routes = await tx.get_routes(model_name)
            if routes is None or not routes.stable_version:
                raise FailedPrecondition(f"rollback requires a production version of model '{model_name}'")
            why = reason or "rollback"
            active = await tx.running_rollout(model_name)
            if active is not None:
                if to_version and to_version != active.stable_version:
                    raise FailedPrecondition(
                        f"rollback during rollout {active.rollout_id} restores its stable version "
                        f"'{active.stable_version}', not '{to_version}'"
                    )
                await self._abort(tx, work, actor, active, why, request_id)
                gone = await self._version(tx, model_name, active.candidate_version)
                kept = await self._version(tx, model_name, active.stable_version)
                now_routes = await tx.get_routes(model_name)
                assert now_routes is not None
                await self._audit(
                    tx,
                    actor,
                    "rollback",
                    subject,
                    None,
                    {"rolled_back": gone.version, "restored": kept.version, "reason": why},
                    request_id,
                )
                return now_routes, gone, kept
            current = await self._version(tx, model_name, routes.stable_version)
            target_label = to_version or ""
            history = await tx.route_history(model_name)
            earlier = [h.stable_version for h in history if h.stable_version and h.stable_version != current.version]
            if not target_label:
                if not earlier:
                    raise FailedPrecondition(f"rollback requires an earlier production version of model '{model_name}'")
                target_label = earlier[-1]
            target = await self._version(tx, model_name, target_label)
            if target_label not in earlier or target.state != State.RETIRED:
                raise FailedPrecondition(
                    f"rollback target must be a retired earlier production version; '{target_label}' is {target.state}"
                )
            await self._record_applied(tx, actor, target, State.PRODUCTION, why, request_id)
            restored = await self._set_state(tx, actor, target, State.PRODUCTION, request_id, why)
            shadows = tuple(s for s in routes.shadow_versions if s != target_label)
            new_routes = await self._change_routes(
                tx, work, actor, model_name, request_id, f"rollback: {why}", stable=target_label, canary="",
                weight_bp=0, shadows=shadows,
            )  # fmt: skip
            await self._record_applied(tx, actor, current, State.ROLLED_BACK, why, request_id)
            gone = await self._set_state(tx, actor, current, State.ROLLED_BACK, request_id, why)
            await self._audit(
                tx,
                actor,
                "rollback",
                subject,
                None,
                {"rolled_back": gone.version, "restored": restored.version, "reason": why},
                request_id,
            )
            return new_routes, gone, restored

        def decode(data: Any) -> tuple[RouteState, Version, Version]:
            return from_jsonable(RouteState, data[0]), from_jsonable(Version, data[1]), from_jsonable(Version, data[2])

        return await self._run("rollback", actor, request_id, model_name, subject, body, decode)

    # ---------------------------------------------------------------------------------------------------
    # Reads

    async def get_rollout(self, rollout_id: str | None = None, model_name: str | None = None) -> Rollout:
        """A rollout by id, or a model's running rollout (else its latest). Raises NotFound."""
        async with self._store.transaction() as tx:
            if rollout_id:
                return await self._rollout(tx, rollout_id)
            if model_name:
                found = await tx.running_rollout(model_name) or await tx.latest_rollout(model_name)
                if found is None:
                    raise NotFound(f"rollout of model '{model_name}'")
                return found
        raise InvalidArgument("rollout_id", "either rollout_id or model_name must be set")

    async def active_rollouts(self) -> list[Rollout]:
        """Running or paused rollouts (what the controller ticks)."""
        async with self._store.transaction() as tx:
            return await tx.active_rollouts()

    async def get_routes(self, model_name: str) -> RouteState:
        """The model's current route table. Raises NotFound."""
        async with self._store.transaction() as tx:
            found = await tx.get_routes(model_name)
        if found is None:
            raise NotFound(f"routes of model '{model_name}'")
        return found

    async def list_routes(self) -> list[RouteState]:
        """Current route table of every model."""
        async with self._store.transaction() as tx:
            return await tx.list_routes()

    async def routes_at(self, model_name: str, at: datetime) -> RouteState | None:
        """The route table in force at ``at``: which version served which arm then."""
        async with self._store.transaction() as tx:
            history = await tx.route_history(model_name)
        in_force = [h for h in history if h.updated_at <= at]
        return in_force[-1] if in_force else None

    async def query_audit(
        self,
        from_seq: int = 1,
        to_seq: int = 0,
        subject: str = "",
        actor: str = "",
        action: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[AuditRecord], str]:
        """Audit entries in seq order, one page; returns (entries, next page token or "")."""
        start, size = _page(page_size, page_token)
        first = max(start, from_seq, 1)
        filters = AuditFilter(subject, actor, action, since, until)
        async with self._store.transaction() as tx:
            rows = await tx.read_audit(first, to_seq, filters, size + 1)
        token = str(rows[size].seq) if len(rows) > size else ""
        return rows[:size], token

    async def verify_audit(self, from_seq: int = 1, to_seq: int = 0) -> ChainVerdict:
        """Recompute the chain over [from_seq, to_seq] (0 = head) and name the first bad entry."""
        first = max(from_seq, 1)
        async with self._store.transaction() as tx:
            head = await tx.audit_head() if to_seq == 0 else None
            if first == 1:
                prev: str | None = GENESIS
            else:
                before = await tx.read_audit(first - 1, first - 1, AuditFilter(), 1)
                if not before or before[0].seq != first - 1:
                    return ChainVerdict(False, first - 1, f"entry {first - 1} is missing", 0, "")
                prev = before[0].hash
            checked = 0
            expected_seq = first
            last_hash = prev or GENESIS
            while True:
                chunk = await tx.read_audit(expected_seq, to_seq, AuditFilter(), VERIFY_CHUNK)
                if not chunk:
                    break
                verdict = verify_chain(chunk, prev, expect_first_seq=expected_seq)
                if not verdict.ok:
                    return ChainVerdict(
                        False,
                        verdict.first_bad_seq,
                        verdict.reason,
                        checked + verdict.entries_checked,
                        verdict.head_hash,
                    )
                checked += verdict.entries_checked
                prev = last_hash = verdict.head_hash
                expected_seq = chunk[-1].seq + 1
                if len(chunk) < VERIFY_CHUNK:
                    break
            if head is not None and (expected_seq - 1 != head.seq or last_hash != head.hash):
                tail = expected_seq - 1
                if tail < head.seq:
                    return ChainVerdict(
                        False,
                        tail + 1,
                        f"entries missing: head is seq {head.seq}, log ends at {tail}",
                        checked,
                        last_hash,
                    )
                if tail > head.seq:
                    return ChainVerdict(
                        False, head.seq + 1, f"entries after the recorded head (seq {head.seq})", checked, last_hash
                    )
                return ChainVerdict(False, tail, "last entry's hash differs from the recorded head", checked, last_hash)
        return ChainVerdict(True, None, "ok", checked, last_hash)
