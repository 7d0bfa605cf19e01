"""Protobuf ↔ governance domain objects for the Governance API, with request validation.

Requests are checked here, before a use case runs: a bad field raises ``InvalidArgument`` whose
message starts with the field's path in the request (``version.ref.model_name: required``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from governance.domain.audit import ChainVerdict
from governance.domain.lifecycle import State
from governance.domain.model import (
    Approval,
    AuditRecord,
    GateDecision,
    GateOutcome,
    GateResult,
    MetricValue,
    Reference,
    ReferencePeriod,
    ReferenceRenewal,
    Role,
    Rollout,
    RolloutStatus,
    RouteState,
    SubgroupMetricValue,
    Transition,
    TransitionStatus,
    Version,
    VersionSpec,
)
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.governance.v1 import governance_pb2 as pb
from services.runtime.adapters.served import served_to_proto
from services.runtime.errors import InvalidArgument

#: Model names and version labels: what Triton and Kafka keys accept without quoting.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUBGROUP = re.compile(r"[^=,\s]+=[^=,]+(,[^=,\s]+=[^=,]+)*")
#: Policy used when a registration names none.
DEFAULT_POLICY = "standard"
_MAX_TEXT = 64 * 1024
_MAX_REASON = 2000
#: Largest registration (the ModelVersion as encoded): its audit entry carries it as JSON, and that event
#: must stay well within Kafka's 1 MB message limit (JSON escaping at most doubles the text).
MAX_VERSION_BYTES = 256 * 1024
#: Longest reference profile URI, validation dataset name and metric name.
_MAX_URI = 2048
_MAX_DATASET = 500
_MAX_METRIC_NAME = 100
#: Most validation metrics overall and per subgroup.
_MAX_METRICS = 200
_MAX_SUBGROUP_METRICS = 2000

#: Where the governance library's registration checks (named after its VersionSpec) live in the request.
SPEC_FIELD_IN_REQUEST: dict[str, str] = {
    "spec.model_name": "ref.model_name",
    "spec.version": "ref.model_version",
    "spec.triton_model": "triton.model_name",
    "spec.triton_version": "triton.model_version",
    "spec.artifact_sha256": "artifact_sha256",
    "spec.policy_name": "policy_ref",
    "spec.operating_threshold": "operating_threshold",
    "spec.temperature": "calibration.temperature",
    "spec.calibration_revision": "calibration.revision",
    "spec.parent_version": "lineage.parent_version",
    "spec.validation_overall": "validation.overall",
    "spec.validation_subgroups": "validation.subgroups",
    "spec.model_card": "model_card",
    "spec.intended_use": "intended_use",
    "spec.reference_uri": "reference_profile.uri",
    "spec.reference_sha256": "reference_profile.sha256",
}


def request_field(spec_field: str, prefix: str = "version") -> str:
    """The request's own path of a field the governance library names after its VersionSpec.

    ``spec.parent_version`` → ``version.lineage.parent_version``; an indexed path keeps its index
    (``spec.validation_overall[2].ci_low`` → ``version.validation.overall[2].ci_low``). Paths that are not
    a spec's are returned unchanged.
    """
    head, bracket, rest = spec_field.partition("[")
    mapped = SPEC_FIELD_IN_REQUEST.get(head)
    if mapped is None:
        return spec_field
    return f"{prefix}.{mapped}{bracket}{rest}"


_STATE_TO_PROTO: dict[State, int] = {
    State.REGISTERED: pb.LIFECYCLE_STATE_REGISTERED,
    State.VALIDATED: pb.LIFECYCLE_STATE_VALIDATED,
    State.SHADOW: pb.LIFECYCLE_STATE_SHADOW,
    State.CANARY: pb.LIFECYCLE_STATE_CANARY,
    State.PRODUCTION: pb.LIFECYCLE_STATE_PRODUCTION,
    State.RETIRED: pb.LIFECYCLE_STATE_RETIRED,
    State.ROLLED_BACK: pb.LIFECYCLE_STATE_ROLLED_BACK,
    State.REJECTED: pb.LIFECYCLE_STATE_REJECTED,
}
_STATE_FROM_PROTO = {value: state for state, value in _STATE_TO_PROTO.items()}
_ROLE_TO_PROTO: dict[Role, int] = {
    Role.CLINICIAN: common_pb2.ROLE_CLINICIAN,
    Role.BOARD: common_pb2.ROLE_BOARD,
    Role.OPERATOR: common_pb2.ROLE_OPERATOR,
    Role.SERVICE: common_pb2.ROLE_SERVICE,
}
_TRANSITION_STATUS: dict[TransitionStatus, int] = {
    TransitionStatus.PENDING: pb.TRANSITION_STATUS_PENDING,
    TransitionStatus.APPLIED: pb.TRANSITION_STATUS_APPLIED,
    TransitionStatus.REJECTED: pb.TRANSITION_STATUS_REJECTED,
}
_ROLLOUT_STATUS: dict[RolloutStatus, int] = {
    RolloutStatus.RUNNING: pb.ROLLOUT_STATUS_RUNNING,
    RolloutStatus.PAUSED: pb.ROLLOUT_STATUS_PAUSED,
    RolloutStatus.COMPLETED: pb.ROLLOUT_STATUS_COMPLETED,
    RolloutStatus.ABORTED: pb.ROLLOUT_STATUS_ABORTED,
}
_GATE_OUTCOME: dict[GateOutcome, int] = {
    GateOutcome.PASS: pb.GATE_OUTCOME_PASS,
    GateOutcome.FAIL: pb.GATE_OUTCOME_FAIL,
    GateOutcome.INSUFFICIENT_EVIDENCE: pb.GATE_OUTCOME_INSUFFICIENT_EVIDENCE,
}
_GATE_DECISION: dict[GateDecision, int] = {
    GateDecision.PROMOTE: pb.GATE_DECISION_PROMOTE,
    GateDecision.HOLD: pb.GATE_DECISION_HOLD,
    GateDecision.ABORT: pb.GATE_DECISION_ABORT,
}


# --- scalars ------------------------------------------------------------------------------------


def timestamp(moment: datetime | None) -> Timestamp | None:
    """Protobuf timestamp of a tz-aware datetime (None stays None)."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _set_time(target: Timestamp, moment: datetime | None) -> None:
    stamp = timestamp(moment)
    if stamp is not None:
        target.CopyFrom(stamp)


def datetime_from(stamp: Timestamp, field: str = "time") -> datetime:
    """UTC datetime of a protobuf timestamp.

    Raises:
        InvalidArgument: The timestamp is outside years 1-9999 or its nanos are out of range.
    """
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument(field, "must be a valid time between years 1 and 9999") from None


#: Largest sequence number or offset a request may name (PostgreSQL bigint).
MAX_SEQ = 2**63 - 1
#: Longest page token accepted; tokens this service issues are far shorter.
MAX_PAGE_TOKEN = 200


def seq(value: int, field: str, maximum: int = MAX_SEQ) -> int:
    """A sequence number from a request, at most ``maximum``."""
    if value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum}")
    return value


def offset_token(value: str, field: str = "page_token") -> str:
    """A page token of the versions and audit pages: a decimal offset this service issued."""
    if not value:
        return value
    if len(value) > 19 or not (value.isascii() and value.isdigit()) or int(value) > MAX_SEQ:
        raise InvalidArgument(field, "is not a token this service issued")
    return value


def opaque_token(value: str, field: str = "page_token") -> str:
    """A page token this service issued in another form: bounded printable ASCII."""
    if len(value) > MAX_PAGE_TOKEN or not (value.isascii() and value.isprintable()):
        raise InvalidArgument(field, "is not a token this service issued")
    return value


def state_to_proto(state: State) -> int:
    """LifecycleState of a domain state."""
    return _STATE_TO_PROTO[State(state)]


def state_from_proto(value: int, field: str) -> State:
    """Domain state of a LifecycleState.

    Raises:
        InvalidArgument: Unspecified or unknown value.
    """
    state = _STATE_FROM_PROTO.get(value)
    if state is None:
        raise InvalidArgument(field, "must be a lifecycle state (not UNSPECIFIED)")
    return state


def role_to_proto(role: Role) -> int:
    """Role enum value of a domain role."""
    return _ROLE_TO_PROTO[Role(role)]


def role_from_name(name: str) -> Role:
    """Domain role from its lowercase name (as carried by tokens)."""
    return Role(name)


# --- validation helpers -------------------------------------------------------------------------


def require_name(value: str, field: str) -> str:
    """A model name or version label: required, 1-128 of letters, digits, ``_ . -``."""
    if not value:
        raise InvalidArgument(field, "required")
    if not _NAME.fullmatch(value):
        raise InvalidArgument(field, "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


def optional_name(value: str, field: str) -> str | None:
    """Like :func:`require_name`, but empty means "not given"."""
    return require_name(value, field) if value else None


def require_request_id(value: str, field: str = "request_id") -> str:
    """The idempotency key of a command: required, at most 128 printable characters."""
    if not value.strip():
        raise InvalidArgument(field, "required (the command's idempotency key)")
    if len(value) > 128 or not value.isprintable():
        raise InvalidArgument(field, "must be at most 128 printable characters")
    return value


def require_text(value: str, field: str, *, limit: int = _MAX_TEXT, required: bool = True) -> str:
    """Free text: required unless said otherwise, bounded in length."""
    if required and not value.strip():
        raise InvalidArgument(field, "required")
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} characters")
    if any((ord(ch) < 0x20 and ch not in "\n\t") or ch == "\x7f" for ch in value):
        raise InvalidArgument(field, "must not contain control characters")
    return value


def reason(value: str, field: str = "reason") -> str:
    """A command's reason (optional, bounded)."""
    return require_text(value, field, limit=_MAX_REASON, required=False)


def require_id(value: str, field: str) -> str:
    """An opaque id (transition, rollout): required, printable, bounded."""
    if not value:
        raise InvalidArgument(field, "required")
    if len(value) > 128 or not value.isprintable():
        raise InvalidArgument(field, "must be at most 128 printable characters")
    return value


def page_size(value: int, default: int, field: str = "page_size", maximum: int = 1000) -> int:
    """The page size to use: the default for 0, otherwise at most ``maximum``."""
    if value == 0:
        return default
    if value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum}")
    return value


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _metric(message: pb.Metric, field: str) -> MetricValue:
    require_text(message.name, f"{field}.name", limit=_MAX_METRIC_NAME)
    if not _finite(message.value):
        raise InvalidArgument(f"{field}.value", "must be a finite number")
    ci_low = message.ci_low if message.HasField("ci_low") else None
    ci_high = message.ci_high if message.HasField("ci_high") else None
    ci_level = message.ci_level if message.HasField("ci_level") else None
    for name, bound in (("ci_low", ci_low), ("ci_high", ci_high)):
        if bound is not None and not _finite(bound):
            raise InvalidArgument(f"{field}.{name}", "must be a finite number")
    if ci_low is not None and ci_high is not None and ci_low > ci_high:
        raise InvalidArgument(f"{field}.ci_low", f"must not exceed ci_high ({ci_low} > {ci_high})")
    if ci_level is not None and not 0.0 < ci_level < 1.0:
        raise InvalidArgument(f"{field}.ci_level", "must be within (0, 1), e.g. 0.95")
    if (ci_low is None) != (ci_high is None):
        raise InvalidArgument(
            f"{field}.ci_high" if ci_high is None else f"{field}.ci_low", "give both CI bounds or none"
        )
    return MetricValue(
        name=message.name,
        value=message.value,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=ci_level,
        support=message.support,
    )


# --- requests → domain --------------------------------------------------------------------------


def spec_from_proto(version: pb.ModelVersion, field: str = "version") -> VersionSpec:  # noqa: PLR0912 - one check per field
    """The registration a ModelVersion describes (state and governance-set fields are ignored).

    Raises:
        InvalidArgument: Naming the first bad field.
    """
    if version.ByteSize() > MAX_VERSION_BYTES:
        raise InvalidArgument(field, f"must be at most {MAX_VERSION_BYTES} bytes encoded (all its text together)")
    ref = version.ref
    model_name = require_name(ref.model_name, f"{field}.ref.model_name")
    label = require_name(ref.model_version, f"{field}.ref.model_version")
    triton_model = require_name(version.triton.model_name, f"{field}.triton.model_name")
    if version.triton.model_version < 1:
        raise InvalidArgument(f"{field}.triton.model_version", "must be >= 1 (a numeric version folder)")
    if not _SHA256.fullmatch(version.artifact_sha256):
        raise InvalidArgument(f"{field}.artifact_sha256", "must be 64 lowercase hex digits")
    model_card = require_text(version.model_card, f"{field}.model_card")
    intended_use = require_text(version.intended_use, f"{field}.intended_use")
    calibration = version.calibration
    if not version.HasField("calibration"):
        raise InvalidArgument(f"{field}.calibration", "required (temperature 1 for an uncalibrated score)")
    if not _finite(calibration.temperature) or calibration.temperature <= 0:
        raise InvalidArgument(f"{field}.calibration.temperature", "must be > 0")
    if not _finite(version.operating_threshold) or not 0.0 <= version.operating_threshold <= 1.0:
        raise InvalidArgument(f"{field}.operating_threshold", "must be within [0, 1]")
    reference = version.reference_profile
    if not reference.uri:
        raise InvalidArgument(f"{field}.reference_profile.uri", "required")
    require_text(reference.uri, f"{field}.reference_profile.uri", limit=_MAX_URI)
    if not _SHA256.fullmatch(reference.sha256):
        raise InvalidArgument(f"{field}.reference_profile.sha256", "must be 64 lowercase hex digits")
    period = _reference_period(reference, f"{field}.reference_profile.period")
    validation = version.validation
    require_text(validation.dataset, f"{field}.validation.dataset", limit=_MAX_DATASET)
    if not validation.overall:
        raise InvalidArgument(f"{field}.validation.overall", "at least one metric is required")
    if len(validation.overall) > _MAX_METRICS:
        raise InvalidArgument(f"{field}.validation.overall", f"must hold at most {_MAX_METRICS} metrics")
    if len(validation.subgroups) > _MAX_SUBGROUP_METRICS:
        raise InvalidArgument(f"{field}.validation.subgroups", f"must hold at most {_MAX_SUBGROUP_METRICS} metrics")
    overall = tuple(_metric(m, f"{field}.validation.overall[{i}]") for i, m in enumerate(validation.overall))
    subgroups: list[SubgroupMetricValue] = []
    for i, sub in enumerate(validation.subgroups):
        where = f"{field}.validation.subgroups[{i}]"
        if not _SUBGROUP.fullmatch(sub.subgroup):
            raise InvalidArgument(f"{where}.subgroup", "must be 'attribute=value', e.g. 'sex=female'")
        if not sub.HasField("metric"):
            raise InvalidArgument(f"{where}.metric", "required")
        subgroups.append(SubgroupMetricValue(subgroup=sub.subgroup, metric=_metric(sub.metric, f"{where}.metric")))
    lineage = version.lineage
    if lineage.parent_version:
        require_name(lineage.parent_version, f"{field}.lineage.parent_version")
    policy_name = version.policy_ref.partition("@")[0] or DEFAULT_POLICY
    require_name(policy_name, f"{field}.policy_ref")
    return VersionSpec(
        model_name=model_name,
        version=label,
        triton_model=triton_model,
        triton_version=int(version.triton.model_version),
        artifact_sha256=version.artifact_sha256,
        model_card=model_card,
        intended_use=intended_use,
        temperature=calibration.temperature,
        calibration_revision=calibration.revision or 1,
        calibration_fitted_on=require_text(calibration.fitted_on, f"{field}.calibration.fitted_on", limit=500),
        operating_threshold=version.operating_threshold,
        reference_uri=reference.uri,
        reference_sha256=reference.sha256,
        reference_period=period,
        validation_dataset=validation.dataset,
        validation_overall=overall,
        validation_subgroups=tuple(subgroups),
        training_data=require_text(lineage.training_data, f"{field}.lineage.training_data"),
        code_revision=require_text(lineage.code_revision, f"{field}.lineage.code_revision", limit=200),
        parent_version=lineage.parent_version,
        policy_name=policy_name,
    )


#: How a reference may be labelled.
REFERENCE_LABELS = ("reads", "ground_truth")


def _reference_period(reference: pb.ReferenceProfile, field: str) -> ReferencePeriod | None:
    """The reference's period, validated; None when the registration gives none."""
    if not reference.HasField("period"):
        return None
    period = reference.period
    if period.labelled_by not in REFERENCE_LABELS:
        raise InvalidArgument(f"{field}.labelled_by", f"must be one of {', '.join(REFERENCE_LABELS)}")
    description = require_text(period.description, f"{field}.description", limit=500)
    for name in ("studies", "reads", "read_positives"):
        if getattr(period, name) < 0:
            raise InvalidArgument(f"{field}.{name}", "must be >= 0")
    if period.reads > period.studies:
        raise InvalidArgument(f"{field}.reads", "cannot exceed studies")
    if period.read_positives > period.reads:
        raise InvalidArgument(f"{field}.read_positives", "cannot exceed reads")
    start = period.start_time.ToDatetime(tzinfo=UTC) if period.HasField("start_time") else None
    end = period.end_time.ToDatetime(tzinfo=UTC) if period.HasField("end_time") else None
    if start is not None and end is not None and end < start:
        raise InvalidArgument(f"{field}.end_time", "must not be before start_time")
    return ReferencePeriod(
        labelled_by=period.labelled_by,
        description=description,
        studies=int(period.studies),
        reads=int(period.reads),
        read_positives=int(period.read_positives),
        start=start,
        end=end,
    )


def _period_to_proto(period: ReferencePeriod | None, chosen_by: str) -> pb.ReferencePeriod | None:
    if period is None:
        return None
    message = pb.ReferencePeriod(
        labelled_by=period.labelled_by,
        description=period.description,
        studies=period.studies,
        reads=period.reads,
        read_positives=period.read_positives,
        chosen_by=chosen_by,
    )
    if period.start is not None:
        message.start_time.FromDatetime(period.start)
    if period.end is not None:
        message.end_time.FromDatetime(period.end)
    return message


def model_ref(ref: common_pb2.ModelRef, field: str) -> tuple[str, str]:
    """(model name, version label) of a required ModelRef."""
    return require_name(ref.model_name, f"{field}.model_name"), require_name(
        ref.model_version, f"{field}.model_version"
    )


# --- domain → responses -------------------------------------------------------------------------


def _metric_to_proto(metric: MetricValue) -> pb.Metric:
    message = pb.Metric(name=metric.name, value=metric.value, support=metric.support)
    if metric.ci_low is not None:
        message.ci_low = metric.ci_low
    if metric.ci_high is not None:
        message.ci_high = metric.ci_high
    if metric.ci_level is not None:
        message.ci_level = metric.ci_level
    return message


def version_to_proto(version: Version) -> pb.ModelVersion:
    """The ModelVersion of a registry version."""
    spec = version.spec
    message = pb.ModelVersion(
        ref=common_pb2.ModelRef(model_name=spec.model_name, model_version=spec.version),
        triton=pb.TritonModel(model_name=spec.triton_model, model_version=spec.triton_version),
        artifact_sha256=spec.artifact_sha256,
        model_card=spec.model_card,
        intended_use=spec.intended_use,
        calibration=pb.Calibration(
            temperature=spec.temperature, revision=spec.calibration_revision, fitted_on=spec.calibration_fitted_on
        ),
        operating_threshold=spec.operating_threshold,
        reference_profile=reference_to_proto(version.reference),
        validation=pb.ValidationReport(
            dataset=spec.validation_dataset,
            overall=[_metric_to_proto(m) for m in spec.validation_overall],
            subgroups=[
                pb.SubgroupMetric(subgroup=s.subgroup, metric=_metric_to_proto(s.metric))
                for s in spec.validation_subgroups
            ],
        ),
        lineage=pb.Lineage(
            training_data=spec.training_data, code_revision=spec.code_revision, parent_version=spec.parent_version
        ),
        state=state_to_proto(version.state),  # type: ignore[arg-type]
        registered_by=version.registered_by,
        policy_ref=version.policy_ref,
    )
    _set_time(message.registered_at, version.registered_at)
    _set_time(message.state_changed_at, version.state_changed_at)
    return message


def approval_to_proto(approval: Approval) -> pb.Approval:
    """The Approval message of a recorded signature."""
    message = pb.Approval(
        approval_id=approval.approval_id,
        transition_id=approval.transition_id,
        signer=approval.signer,
        role=role_to_proto(approval.role),  # type: ignore[arg-type]
        meaning=approval.meaning,
        signature=approval.signature,
        algorithm=approval.algorithm,
        key_id=approval.key_id,
        renewal_id=approval.renewal_id,
    )
    _set_time(message.signed_at, approval.signed_at)
    return message


def reference_to_proto(reference: Reference) -> pb.ReferenceProfile:
    """The ReferenceProfile of a reference (its period's chosen_by is who chose it)."""
    return pb.ReferenceProfile(
        uri=reference.uri, sha256=reference.sha256, period=_period_to_proto(reference.period, reference.chosen_by)
    )


def renewal_to_proto(renewal: ReferenceRenewal) -> pb.ReferenceRenewal:
    """The ReferenceRenewal message of a renewal."""
    message = pb.ReferenceRenewal(
        renewal_id=renewal.renewal_id,
        model=common_pb2.ModelRef(model_name=renewal.model_name, model_version=renewal.version),
        previous=reference_to_proto(renewal.previous),
        proposed=reference_to_proto(renewal.proposed),
        status=_TRANSITION_STATUS[TransitionStatus(renewal.status)],  # type: ignore[arg-type]
        requested_by=renewal.requested_by,
        reason=renewal.reason,
        approvals=[approval_to_proto(a) for a in renewal.approvals],
        unmet_requirements=list(renewal.unmet),
        route_revision=renewal.route_revision,
        rejection_reason=renewal.rejection_reason,
    )
    _set_time(message.requested_at, renewal.requested_at)
    _set_time(message.decided_at, renewal.decided_at)
    return message


def proposed_reference(profile: pb.ReferenceProfile, field: str = "profile") -> tuple[str, str, ReferencePeriod | None]:
    """(uri, sha256, period) of a proposed reference, checked for shape (the service checks the rest).

    Raises:
        InvalidArgument: Naming the first bad field, e.g. ``profile.period.reads``.
    """
    if not profile.uri:
        raise InvalidArgument(f"{field}.uri", "required")
    require_text(profile.uri, f"{field}.uri", limit=_MAX_URI)
    if not _SHA256.fullmatch(profile.sha256):
        raise InvalidArgument(f"{field}.sha256", "must be 64 lowercase hex digits")
    if not profile.HasField("period"):
        raise InvalidArgument(f"{field}.period", "required (labelled_by, counts, start_time and end_time)")
    for name in ("start_time", "end_time"):
        if profile.period.HasField(name):
            datetime_from(getattr(profile.period, name), f"{field}.period.{name}")
    return profile.uri, profile.sha256, _reference_period(profile, f"{field}.period")


def transition_to_proto(transition: Transition) -> pb.Transition:
    """The Transition message of a transition request."""
    message = pb.Transition(
        transition_id=transition.transition_id,
        model=common_pb2.ModelRef(model_name=transition.model_name, model_version=transition.version),
        from_state=state_to_proto(transition.from_state),  # type: ignore[arg-type]
        to_state=state_to_proto(transition.to_state),  # type: ignore[arg-type]
        status=_TRANSITION_STATUS[TransitionStatus(transition.status)],  # type: ignore[arg-type]
        requested_by=transition.requested_by,
        reason=transition.reason,
        approvals=[approval_to_proto(a) for a in transition.approvals],
        unmet_requirements=list(transition.unmet),
    )
    _set_time(message.requested_at, transition.requested_at)
    _set_time(message.applied_at, transition.applied_at)
    return message


def gate_to_proto(gate: GateResult) -> pb.GateResult:
    """The GateResult message of one evaluated criterion."""
    return pb.GateResult(
        gate=gate.gate,
        outcome=_GATE_OUTCOME[GateOutcome(gate.outcome)],  # type: ignore[arg-type]
        observed=gate.observed if _finite(gate.observed) else 0.0,
        limit=gate.limit if _finite(gate.limit) else 0.0,
        detail=gate.detail,
        finding_ids=list(gate.finding_ids),
    )


def rollout_to_proto(rollout: Rollout) -> pb.Rollout:
    """The Rollout message of a rollout."""
    message = pb.Rollout(
        rollout_id=rollout.rollout_id,
        candidate=common_pb2.ModelRef(model_name=rollout.model_name, model_version=rollout.candidate_version),
        stable_version=rollout.stable_version,
        plan=[pb.RolloutStep(weight_bp=s.weight_bp, min_reads=s.min_reads) for s in rollout.plan],
        step_index=rollout.step_index,
        weight_bp=rollout.weight_bp,
        status=_ROLLOUT_STATUS[RolloutStatus(rollout.status)],  # type: ignore[arg-type]
        last_decision=(
            _GATE_DECISION[GateDecision(rollout.last_decision)]  # type: ignore[arg-type]
            if rollout.last_decision is not None
            else pb.GATE_DECISION_UNSPECIFIED
        ),
        gates=[gate_to_proto(g) for g in rollout.gates],
        reasons=list(rollout.reasons),
        started_by=rollout.started_by,
        policy_ref=rollout.policy_ref,
    )
    _set_time(message.started_at, rollout.started_at)
    _set_time(message.updated_at, rollout.updated_at)
    return message


def route_to_proto(route: RouteState) -> common_pb2.RouteTable:
    """The RouteTable of a model's route state."""
    message = common_pb2.RouteTable(
        model_name=route.model_name,
        stable_version=route.stable_version,
        canary_version=route.canary_version,
        canary_weight_bp=route.canary_weight_bp,
        shadow_versions=list(route.shadow_versions),
        revision=route.revision,
        reason=route.reason,
        rollout_id=route.rollout_id or "",
        served=served_to_proto(route.served),
    )
    _set_time(message.updated_at, route.updated_at)
    return message


def audit_to_proto(record: AuditRecord) -> events_pb2.AuditEntry:
    """The AuditEntry of a committed audit record."""
    message = events_pb2.AuditEntry(
        seq=record.seq,
        prev_hash=record.prev_hash,
        hash=record.hash,
        actor=record.actor,
        actor_role=role_to_proto(record.actor_role),  # type: ignore[arg-type]
        action=record.action,
        subject=record.subject,
        before_json=record.before_json or "",
        after_json=record.after_json or "",
        request_id=record.request_id,
    )
    _set_time(message.time, record.time)
    return message


def verdict_to_proto(verdict: ChainVerdict) -> pb.VerifyAuditResponse:
    """The VerifyAuditResponse of a chain verdict."""
    message = pb.VerifyAuditResponse(
        ok=verdict.ok,
        reason=verdict.reason,
        entries_checked=verdict.entries_checked,
        head_hash=verdict.head_hash,
    )
    if verdict.first_bad_seq is not None:
        message.first_bad_seq = verdict.first_bad_seq
    return message
