"""gRPC clients of the governance API and the monitor service's query API, as the dashboard uses them.

Every governance call carries the signed-in person's bearer token, so governance applies that person's
role, policy and audit; the dashboard holds no authority of its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import grpc.aio

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.governance.v1 import governance_pb2 as gpb
from radguard.governance.v1 import governance_pb2_grpc
from radguard.monitoring.v1 import monitoring_pb2 as mpb
from radguard.monitoring.v1 import monitoring_pb2_grpc

ROLE_NAMES = {value: name.removeprefix("ROLE_").lower() for name, value in common_pb2.Role.items()}
STATE_NAMES = {value: name.removeprefix("LIFECYCLE_STATE_").lower() for name, value in gpb.LifecycleState.items()}
ROLLOUT_NAMES = {value: name.removeprefix("ROLLOUT_STATUS_").lower() for name, value in gpb.RolloutStatus.items()}
OUTCOME_NAMES = {value: name.removeprefix("GATE_OUTCOME_").lower() for name, value in gpb.GateOutcome.items()}
DECISION_NAMES = {value: name.removeprefix("GATE_DECISION_").lower() for name, value in gpb.GateDecision.items()}
TRANSITION_NAMES = {
    value: name.removeprefix("TRANSITION_STATUS_").lower() for name, value in gpb.TransitionStatus.items()
}


class ApiError(Exception):
    """An API answered with an error; ``code`` is the gRPC status name."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


def _error(error: grpc.aio.AioRpcError) -> ApiError:
    return ApiError(error.code().name, error.details() or "")


def new_request_id() -> str:
    """A fresh idempotency key for one form submission."""
    return f"dashboard-{uuid.uuid4().hex}"


class GovernanceApi:
    """radguard.governance.v1 over one channel, each call as a given token."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = governance_pb2_grpc.GovernanceStub(self._channel)
        self._timeout = timeout_s

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(self, rpc: str, request: Any, token: str) -> Any:
        metadata = (("authorization", f"Bearer {token}"),)
        try:
            return await getattr(self._stub, rpc)(request, metadata=metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise _error(error) from None

    async def who_am_i(self, token: str) -> tuple[str, str]:
        reply = await self._call("WhoAmI", gpb.WhoAmIRequest(), token)
        return reply.principal, ROLE_NAMES.get(reply.role, "unspecified")

    async def versions(self, token: str, model_name: str = "") -> list[gpb.ModelVersion]:
        out: list[gpb.ModelVersion] = []
        page = ""
        while True:
            reply = await self._call(
                "ListVersions", gpb.ListVersionsRequest(model_name=model_name, page_size=500, page_token=page), token
            )
            out.extend(reply.versions)
            page = reply.next_page_token
            if not page:
                return out

    async def version(self, token: str, model_name: str, version: str) -> gpb.ModelVersion:
        ref = common_pb2.ModelRef(model_name=model_name, model_version=version)
        return await self._call("GetVersion", gpb.GetVersionRequest(model=ref), token)  # type: ignore[no-any-return]

    async def rollout(self, token: str, model_name: str) -> gpb.Rollout | None:
        try:
            return await self._call("GetRollout", gpb.GetRolloutRequest(model_name=model_name), token)  # type: ignore[no-any-return]
        except ApiError as error:
            if error.code == "NOT_FOUND":
                return None
            raise

    async def transitions(self, token: str, model_name: str, version: str = "") -> list[gpb.Transition]:
        request = gpb.ListTransitionsRequest(model_name=model_name, model_version=version)
        reply = await self._call("ListTransitions", request, token)
        return list(reply.transitions)

    async def audit_all(self, token: str, *, subject: str = "", action: str = "") -> list[events_pb2.AuditEntry]:
        out: list[events_pb2.AuditEntry] = []
        page = ""
        while True:
            request = gpb.QueryAuditRequest(subject=subject, action=action, page_size=1000, page_token=page)
            reply = await self._call("QueryAudit", request, token)
            out.extend(reply.entries)
            page = reply.next_page_token
            if not page or len(out) >= 20000:
                return out

    async def verify(self, token: str) -> gpb.VerifyAuditResponse:
        return await self._call("VerifyAudit", gpb.VerifyAuditRequest(), token)  # type: ignore[no-any-return]

    async def approve(self, token: str, transition_id: str, meaning: str, renewal_id: str = "") -> gpb.ApproveResponse:
        """Sign a pending transition, or a pending reference renewal when ``renewal_id`` is given."""
        request = gpb.ApproveRequest(
            transition_id="" if renewal_id else transition_id,
            renewal_id=renewal_id,
            meaning=meaning,
            request_id=new_request_id(),
        )
        return await self._call("Approve", request, token)  # type: ignore[no-any-return]

    async def renewals(self, token: str, model_name: str, version: str = "") -> list[gpb.ReferenceRenewal]:
        """A model's (or one version's) reference renewals, oldest first."""
        request = gpb.ListReferenceRenewalsRequest(model_name=model_name, model_version=version)
        reply = await self._call("ListReferenceRenewals", request, token)
        return list(reply.renewals)

    async def rollout_command(self, token: str, command: str, rollout_id: str, reason: str) -> gpb.Rollout:
        rpc, message = {
            "pause": ("PauseRollout", gpb.PauseRolloutRequest),
            "resume": ("ResumeRollout", gpb.ResumeRolloutRequest),
            "abort": ("AbortRollout", gpb.AbortRolloutRequest),
        }[command]
        request = message(rollout_id=rollout_id, reason=reason, request_id=new_request_id())
        return await self._call(rpc, request, token)  # type: ignore[no-any-return]

    async def rollback(self, token: str, model_name: str, to_version: str, reason: str) -> gpb.RollbackResponse:
        request = gpb.RollbackRequest(
            model_name=model_name, to_version=to_version, reason=reason, request_id=new_request_id()
        )
        return await self._call("Rollback", request, token)  # type: ignore[no-any-return]


class MonitoringApi:
    """radguard.monitoring.v1 (the monitor service's read-only evidence queries)."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self._channel = grpc.aio.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 32 * 1024 * 1024)]
        )
        self._stub = monitoring_pb2_grpc.MonitoringQueryStub(self._channel)
        self._timeout = timeout_s

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(self, rpc: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, rpc)(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise _error(error) from None

    async def findings(self, **filters: Any) -> tuple[list[mpb.Finding], str]:
        reply = await self._call("QueryFindings", mpb.QueryFindingsRequest(**filters))
        return list(reply.findings), str(reply.next_page_token)

    async def series(self, **query: Any) -> list[mpb.SeriesPoint]:
        reply = await self._call("GetMetricSeries", mpb.GetMetricSeriesRequest(**query))
        return list(reply.points)

    async def reliability(self, **query: Any) -> mpb.GetReliabilityDiagramResponse | None:
        try:
            return await self._call("GetReliabilityDiagram", mpb.GetReliabilityDiagramRequest(**query))  # type: ignore[no-any-return]
        except ApiError as error:
            if error.code == "NOT_FOUND":
                return None
            raise

    async def report(self, finding_id: str) -> bytes:
        reply = await self._call("GetWindowReport", mpb.GetWindowReportRequest(finding_id=finding_id))
        return bytes(reply.content)
