"""radguard.governance.v1.Governance: protobuf ↔ domain translation over the GovernanceService.

Each call validates its request (``convert``), acts as the identity the bearer-token interceptor
established, and awaits one use case. Role checks, policy, audit and idempotency are the service's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from governance.domain.model import Actor
from governance.domain.model import RouteState as DomainRouteState
from governance.service import GovernanceService
from radguard.common.v1 import common_pb2
from radguard.governance.v1 import governance_pb2 as pb
from radguard.governance.v1 import governance_pb2_grpc
from services.governance_api.adapters import convert
from services.governance_api.adapters.findings import (
    FindingsFilter,
    PostgresFindings,
    arm_name,
    kind_name,
    severity_name,
)
from services.governance_api.auth import current_identity
from services.runtime.errors import InvalidArgument, NotFound, Unavailable
from services.runtime.server import RadguardServer

#: Services the Governance servicer registers (for health and reflection).
GOVERNANCE_SERVICE = pb.DESCRIPTOR.services_by_name["Governance"]
#: Most lifecycle states a ListVersions filter may name (there are far fewer states; repeats are refused).
MAX_STATES_FILTER = 16
#: Most models one WatchRoutes call may name.
MAX_WATCHED_MODELS = 256
#: Highest seq VerifyAudit takes: the chain is verified entry by entry, so its range is bounded too.
MAX_VERIFY_SEQ = 2**31 - 1

#: Awaitable that returns when route tables may have changed (or after a poll interval).
RouteChanges = Callable[[float], Awaitable[None]]


def caller() -> Actor:
    """The authenticated caller as a governance actor."""
    identity = current_identity()
    return Actor(identity.principal, convert.role_from_name(identity.role))


class GovernanceServicer(governance_pb2_grpc.GovernanceServicer):
    """Every RPC of governance.proto over the governance service."""

    def __init__(
        self,
        service: GovernanceService,
        *,
        findings: PostgresFindings | None = None,
        route_changes: RouteChanges | None = None,
        default_page_size: int = 50,
        watch_poll_s: float = 0.25,
        ensure_signer: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """Create the servicer.

        Args:
            service: The governance use cases.
            findings: Reads monitor findings (QueryFindings is UNAVAILABLE without it).
            route_changes: Waits until a command committed (or the timeout passed); WatchRoutes
                polls every ``watch_poll_s`` without it.
            default_page_size: Page size when a request asks for 0.
            watch_poll_s: Longest time WatchRoutes goes without looking at the route tables.
            ensure_signer: Makes sure the caller has a signing key before Approve.
        """
        self._service = service
        self._findings = findings
        self._route_changes = route_changes
        self._page = default_page_size
        self._watch_poll_s = watch_poll_s
        self._ensure_signer = ensure_signer

    # --- registry ---------------------------------------------------------------------------------

    async def RegisterVersion(self, request: pb.RegisterVersionRequest, context: Any) -> pb.ModelVersion:
        """Register a version as the caller."""
        if not request.HasField("version"):
            raise InvalidArgument("version", "required")
        spec = convert.spec_from_proto(request.version)
        request_id = convert.require_request_id(request.request_id)
        try:
            version = await self._service.register_version(caller(), spec, request_id)
        except InvalidArgument as error:
            # The library names its own VersionSpec's fields; the caller needs the request's paths.
            field = convert.request_field(error.field)
            if field == error.field:
                raise
            raise InvalidArgument(field, error.message.removeprefix(f"{error.field}: ")) from error
        return convert.version_to_proto(version)

    async def GetVersion(self, request: pb.GetVersionRequest, context: Any) -> pb.ModelVersion:
        """One version."""
        model, label = convert.model_ref(request.model, "model")
        current_identity()
        return convert.version_to_proto(await self._service.get_version(model, label))

    async def ListVersions(self, request: pb.ListVersionsRequest, context: Any) -> pb.ListVersionsResponse:
        """A page of versions, newest registration first."""
        current_identity()
        model = convert.optional_name(request.model_name, "model_name")
        if len(request.states) > MAX_STATES_FILTER:
            raise InvalidArgument("states", f"must list at most {MAX_STATES_FILTER} states")
        states = tuple(convert.state_from_proto(s, f"states[{i}]") for i, s in enumerate(request.states))
        size = convert.page_size(request.page_size, self._page)
        versions, token = await self._service.list_versions(
            model, states, size, convert.offset_token(request.page_token)
        )
        return pb.ListVersionsResponse(
            versions=[convert.version_to_proto(v) for v in versions], next_page_token=token or ""
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def RequestTransition(self, request: pb.RequestTransitionRequest, context: Any) -> pb.Transition:
        """Ask for a lifecycle transition."""
        model, label = convert.model_ref(request.model, "model")
        to_state = convert.state_from_proto(request.to_state, "to_state")
        reason = convert.reason(request.reason)
        request_id = convert.require_request_id(request.request_id)
        transition = await self._service.request_transition(caller(), model, label, to_state, reason, request_id)
        return convert.transition_to_proto(transition)

    async def Approve(self, request: pb.ApproveRequest, context: Any) -> pb.ApproveResponse:
        """Sign an approval of a transition or of a reference renewal as the caller."""
        if request.transition_id and request.renewal_id:
            raise InvalidArgument("renewal_id", "set transition_id or renewal_id, not both")
        renewal_id = convert.require_id(request.renewal_id, "renewal_id") if request.renewal_id else ""
        transition_id = "" if renewal_id else convert.require_id(request.transition_id, "transition_id")
        meaning = convert.require_text(request.meaning, "meaning", limit=200)
        request_id = convert.require_request_id(request.request_id)
        actor = caller()
        if self._ensure_signer is not None:
            await self._ensure_signer(actor.principal)
        if renewal_id:
            approval, renewal = await self._service.approve_reference(actor, renewal_id, meaning, request_id)
            return pb.ApproveResponse(
                approval=convert.approval_to_proto(approval), renewal=convert.renewal_to_proto(renewal)
            )
        approval, transition = await self._service.approve(actor, transition_id, meaning, request_id)
        return pb.ApproveResponse(
            approval=convert.approval_to_proto(approval), transition=convert.transition_to_proto(transition)
        )

    # --- references -----------------------------------------------------------------------------

    async def ProposeReference(self, request: pb.ProposeReferenceRequest, context: Any) -> pb.ReferenceRenewal:
        """Propose a new reference profile for a version, as the caller (who is recorded as choosing it)."""
        model, label = convert.model_ref(request.model, "model")
        if not request.HasField("profile"):
            raise InvalidArgument("profile", "required")
        uri, sha256, period = convert.proposed_reference(request.profile)
        reason = convert.reason(request.reason)
        request_id = convert.require_request_id(request.request_id)
        renewal = await self._service.propose_reference(caller(), model, label, uri, sha256, period, reason, request_id)
        return convert.renewal_to_proto(renewal)

    async def GetReferenceRenewal(self, request: pb.GetReferenceRenewalRequest, context: Any) -> pb.ReferenceRenewal:
        """One reference renewal with its approvals."""
        current_identity()
        renewal_id = convert.require_id(request.renewal_id, "renewal_id")
        return convert.renewal_to_proto(await self._service.get_reference_renewal(renewal_id))

    async def ListReferenceRenewals(
        self, request: pb.ListReferenceRenewalsRequest, context: Any
    ) -> pb.ListReferenceRenewalsResponse:
        """A model's (or one version's) reference renewals, oldest first."""
        current_identity()
        model = convert.require_name(request.model_name, "model_name")
        version = convert.optional_name(request.model_version, "model_version")
        renewals = await self._service.list_reference_renewals(model, version)
        return pb.ListReferenceRenewalsResponse(renewals=[convert.renewal_to_proto(r) for r in renewals])

    async def RejectReferenceRenewal(
        self, request: pb.RejectReferenceRenewalRequest, context: Any
    ) -> pb.ReferenceRenewal:
        """Refuse or withdraw a pending reference renewal."""
        renewal_id = convert.require_id(request.renewal_id, "renewal_id")
        reason = convert.reason(request.reason)
        request_id = convert.require_request_id(request.request_id)
        renewal = await self._service.reject_reference(caller(), renewal_id, reason, request_id)
        return convert.renewal_to_proto(renewal)

    # --- rollouts -------------------------------------------------------------------------------

    async def StartRollout(self, request: pb.StartRolloutRequest, context: Any) -> pb.Rollout:
        """Start a canary rollout of a candidate."""
        model, label = convert.model_ref(request.candidate, "candidate")
        reason = convert.reason(request.reason)
        request_id = convert.require_request_id(request.request_id)
        rollout = await self._service.start_rollout(caller(), model, label, reason, request_id)
        return convert.rollout_to_proto(rollout)

    async def _rollout_command(self, request: Any, use_case: Callable[..., Awaitable[Any]]) -> pb.Rollout:
        rollout_id = convert.require_id(request.rollout_id, "rollout_id")
        reason = convert.reason(request.reason)
        request_id = convert.require_request_id(request.request_id)
        return convert.rollout_to_proto(await use_case(caller(), rollout_id, reason, request_id))

    async def PauseRollout(self, request: pb.PauseRolloutRequest, context: Any) -> pb.Rollout:
        """Hold a running rollout."""
        return await self._rollout_command(request, self._service.pause_rollout)

    async def ResumeRollout(self, request: pb.ResumeRolloutRequest, context: Any) -> pb.Rollout:
        """Let a paused rollout continue."""
        return await self._rollout_command(request, self._service.resume_rollout)

    async def AbortRollout(self, request: pb.AbortRolloutRequest, context: Any) -> pb.Rollout:
        """Stop a rollout: 100% to stable, candidate rolled back."""
        return await self._rollout_command(request, self._service.abort_rollout)

    async def PromoteRollout(self, request: pb.PromoteRolloutRequest, context: Any) -> pb.Rollout:
        """Advance a rollout one step."""
        return await self._rollout_command(request, self._service.promote_rollout)

    async def Rollback(self, request: pb.RollbackRequest, context: Any) -> pb.RollbackResponse:
        """Put a previous version back into production."""
        model = convert.require_name(request.model_name, "model_name")
        to_version = convert.optional_name(request.to_version, "to_version")
        reason = convert.reason(request.reason)
        request_id = convert.require_request_id(request.request_id)
        routes, rolled_back, restored = await self._service.rollback(caller(), model, to_version, reason, request_id)
        return pb.RollbackResponse(
            routes=convert.route_to_proto(routes),
            rolled_back=convert.version_to_proto(rolled_back),
            restored=convert.version_to_proto(restored),
        )

    async def GetRollout(self, request: pb.GetRolloutRequest, context: Any) -> pb.Rollout:
        """One rollout, by id or the model's running (else latest) one."""
        current_identity()
        key = request.WhichOneof("key")
        if key == "rollout_id":
            rollout = await self._service.get_rollout(rollout_id=convert.require_id(request.rollout_id, "rollout_id"))
        elif key == "model_name":
            rollout = await self._service.get_rollout(model_name=convert.require_name(request.model_name, "model_name"))
        else:
            raise InvalidArgument("key", "set rollout_id or model_name")
        return convert.rollout_to_proto(rollout)

    # --- routes ---------------------------------------------------------------------------------

    async def _tables(self, models: Sequence[str]) -> list[DomainRouteState]:
        if models:
            tables = []
            for model in models:
                try:
                    tables.append(await self._service.get_routes(model))
                except NotFound:
                    continue
            return tables
        return list(await self._service.list_routes())

    async def WatchRoutes(self, request: pb.WatchRoutesRequest, context: Any) -> AsyncIterator[common_pb2.RouteTable]:
        """Current table of each requested model, then every new revision, until the caller leaves."""
        current_identity()
        if len(request.model_names) > MAX_WATCHED_MODELS:
            raise InvalidArgument("model_names", f"must list at most {MAX_WATCHED_MODELS} models")
        models = [convert.require_name(m, f"model_names[{i}]") for i, m in enumerate(request.model_names)]
        sent: dict[str, int] = {}
        while True:
            for table in sorted(await self._tables(models), key=lambda t: t.model_name):
                if sent.get(table.model_name, -1) < table.revision:
                    sent[table.model_name] = table.revision
                    yield convert.route_to_proto(table)
            if self._route_changes is not None:
                await self._route_changes(self._watch_poll_s)
            else:
                await asyncio.sleep(self._watch_poll_s)

    # --- audit ----------------------------------------------------------------------------------

    async def QueryAudit(self, request: pb.QueryAuditRequest, context: Any) -> pb.QueryAuditResponse:
        """A page of audit entries in seq order."""
        current_identity()
        from_seq = convert.seq(request.from_seq, "from_seq")
        to_seq = convert.seq(request.to_seq, "to_seq")
        if to_seq and from_seq > to_seq:
            raise InvalidArgument("to_seq", f"must not be below from_seq ({to_seq} < {from_seq})")
        records, token = await self._service.query_audit(
            from_seq=from_seq,
            to_seq=to_seq,
            subject=convert.require_text(request.subject, "subject", limit=300, required=False),
            actor=convert.require_text(request.actor, "actor", limit=300, required=False),
            action=convert.require_text(request.action, "action", limit=100, required=False),
            since=convert.datetime_from(request.since, "since") if request.HasField("since") else None,
            until=convert.datetime_from(request.until, "until") if request.HasField("until") else None,
            page_size=convert.page_size(request.page_size, self._page),
            page_token=convert.offset_token(request.page_token),
        )
        return pb.QueryAuditResponse(entries=[convert.audit_to_proto(r) for r in records], next_page_token=token or "")

    async def VerifyAudit(self, request: pb.VerifyAuditRequest, context: Any) -> pb.VerifyAuditResponse:
        """Recompute the hash chain."""
        current_identity()
        from_seq = convert.seq(request.from_seq, "from_seq", MAX_VERIFY_SEQ)
        to_seq = convert.seq(request.to_seq, "to_seq", MAX_VERIFY_SEQ)
        if to_seq and from_seq > to_seq:
            raise InvalidArgument("to_seq", f"must not be below from_seq ({to_seq} < {from_seq})")
        return convert.verdict_to_proto(await self._service.verify_audit(from_seq, to_seq))

    # --- findings -------------------------------------------------------------------------------

    async def QueryFindings(self, request: pb.QueryFindingsRequest, context: Any) -> pb.QueryFindingsResponse:
        """A page of monitor findings, newest first."""
        current_identity()
        if self._findings is None:
            raise Unavailable("findings", "this governance instance has no findings reader")
        model = convert.optional_name(request.model_name, "model_name")
        version = convert.optional_name(request.model_version, "model_version")
        if version is not None and model is None:
            raise InvalidArgument("model_version", "requires model_name")
        query = FindingsFilter(
            model_name=model,
            model_version=version,
            kind=kind_name(request.kind),
            arm=arm_name(request.arm),
            min_severity=severity_name(request.min_severity),
            since=convert.datetime_from(request.since, "since") if request.HasField("since") else None,
            until=convert.datetime_from(request.until, "until") if request.HasField("until") else None,
            page_size=convert.page_size(request.page_size, self._page),
            page_token=convert.opaque_token(request.page_token),
        )
        findings, token = await self._findings.query(query)
        return pb.QueryFindingsResponse(findings=findings, next_page_token=token)

    async def ListTransitions(self, request: pb.ListTransitionsRequest, context: Any) -> pb.ListTransitionsResponse:
        """A model's transitions (or one version's), oldest first, with their approvals."""
        current_identity()
        model = convert.require_name(request.model_name, "model_name")
        version = convert.optional_name(request.model_version, "model_version")
        transitions = await self._service.list_transitions(model, version)
        return pb.ListTransitionsResponse(transitions=[convert.transition_to_proto(t) for t in transitions])

    async def WhoAmI(self, request: pb.WhoAmIRequest, context: Any) -> pb.WhoAmIResponse:
        """The caller's principal and role."""
        actor = caller()
        return pb.WhoAmIResponse(principal=actor.principal, role=convert.role_to_proto(actor.role))  # type: ignore[arg-type]


def register(server: RadguardServer, servicer: GovernanceServicer) -> None:
    """Add the Governance service to a server."""
    server.add_service(GOVERNANCE_SERVICE, lambda s: governance_pb2_grpc.add_GovernanceServicer_to_server(servicer, s))


__all__ = ["GOVERNANCE_SERVICE", "GovernanceServicer", "caller", "register"]
