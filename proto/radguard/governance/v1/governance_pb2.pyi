import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from radguard.common.v1 import common_pb2 as _common_pb2
from radguard.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LifecycleState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_STATE_UNSPECIFIED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_REGISTERED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_VALIDATED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_SHADOW: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_CANARY: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_PRODUCTION: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_RETIRED: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_ROLLED_BACK: _ClassVar[LifecycleState]
    LIFECYCLE_STATE_REJECTED: _ClassVar[LifecycleState]

class TransitionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSITION_STATUS_UNSPECIFIED: _ClassVar[TransitionStatus]
    TRANSITION_STATUS_PENDING: _ClassVar[TransitionStatus]
    TRANSITION_STATUS_APPLIED: _ClassVar[TransitionStatus]
    TRANSITION_STATUS_REJECTED: _ClassVar[TransitionStatus]

class RolloutStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_STATUS_UNSPECIFIED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_RUNNING: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_PAUSED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_COMPLETED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_ABORTED: _ClassVar[RolloutStatus]

class GateOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GATE_OUTCOME_UNSPECIFIED: _ClassVar[GateOutcome]
    GATE_OUTCOME_PASS: _ClassVar[GateOutcome]
    GATE_OUTCOME_FAIL: _ClassVar[GateOutcome]
    GATE_OUTCOME_INSUFFICIENT_EVIDENCE: _ClassVar[GateOutcome]

class GateDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GATE_DECISION_UNSPECIFIED: _ClassVar[GateDecision]
    GATE_DECISION_PROMOTE: _ClassVar[GateDecision]
    GATE_DECISION_HOLD: _ClassVar[GateDecision]
    GATE_DECISION_ABORT: _ClassVar[GateDecision]
LIFECYCLE_STATE_UNSPECIFIED: LifecycleState
LIFECYCLE_STATE_REGISTERED: LifecycleState
LIFECYCLE_STATE_VALIDATED: LifecycleState
LIFECYCLE_STATE_SHADOW: LifecycleState
LIFECYCLE_STATE_CANARY: LifecycleState
LIFECYCLE_STATE_PRODUCTION: LifecycleState
LIFECYCLE_STATE_RETIRED: LifecycleState
LIFECYCLE_STATE_ROLLED_BACK: LifecycleState
LIFECYCLE_STATE_REJECTED: LifecycleState
TRANSITION_STATUS_UNSPECIFIED: TransitionStatus
TRANSITION_STATUS_PENDING: TransitionStatus
TRANSITION_STATUS_APPLIED: TransitionStatus
TRANSITION_STATUS_REJECTED: TransitionStatus
ROLLOUT_STATUS_UNSPECIFIED: RolloutStatus
ROLLOUT_STATUS_RUNNING: RolloutStatus
ROLLOUT_STATUS_PAUSED: RolloutStatus
ROLLOUT_STATUS_COMPLETED: RolloutStatus
ROLLOUT_STATUS_ABORTED: RolloutStatus
GATE_OUTCOME_UNSPECIFIED: GateOutcome
GATE_OUTCOME_PASS: GateOutcome
GATE_OUTCOME_FAIL: GateOutcome
GATE_OUTCOME_INSUFFICIENT_EVIDENCE: GateOutcome
GATE_DECISION_UNSPECIFIED: GateDecision
GATE_DECISION_PROMOTE: GateDecision
GATE_DECISION_HOLD: GateDecision
GATE_DECISION_ABORT: GateDecision

class TritonModel(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[int] = ...) -> None: ...

class Calibration(_message.Message):
    __slots__ = ("temperature", "revision", "fitted_at", "fitted_on")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    FITTED_AT_FIELD_NUMBER: _ClassVar[int]
    FITTED_ON_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    revision: int
    fitted_at: _timestamp_pb2.Timestamp
    fitted_on: str
    def __init__(self, temperature: _Optional[float] = ..., revision: _Optional[int] = ..., fitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fitted_on: _Optional[str] = ...) -> None: ...

class ReferenceProfile(_message.Message):
    __slots__ = ("uri", "sha256", "period")
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    uri: str
    sha256: str
    period: ReferencePeriod
    def __init__(self, uri: _Optional[str] = ..., sha256: _Optional[str] = ..., period: _Optional[_Union[ReferencePeriod, _Mapping]] = ...) -> None: ...

class ReferencePeriod(_message.Message):
    __slots__ = ("labelled_by", "description", "studies", "reads", "read_positives", "chosen_by", "start_time", "end_time")
    LABELLED_BY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    READS_FIELD_NUMBER: _ClassVar[int]
    READ_POSITIVES_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_BY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    labelled_by: str
    description: str
    studies: int
    reads: int
    read_positives: int
    chosen_by: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, labelled_by: _Optional[str] = ..., description: _Optional[str] = ..., studies: _Optional[int] = ..., reads: _Optional[int] = ..., read_positives: _Optional[int] = ..., chosen_by: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Metric(_message.Message):
    __slots__ = ("name", "value", "ci_low", "ci_high", "ci_level", "support")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    CI_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    ci_low: float
    ci_high: float
    ci_level: float
    support: int
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., ci_level: _Optional[float] = ..., support: _Optional[int] = ...) -> None: ...

class SubgroupMetric(_message.Message):
    __slots__ = ("subgroup", "metric")
    SUBGROUP_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    subgroup: str
    metric: Metric
    def __init__(self, subgroup: _Optional[str] = ..., metric: _Optional[_Union[Metric, _Mapping]] = ...) -> None: ...

class ValidationReport(_message.Message):
    __slots__ = ("dataset", "overall", "subgroups")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    SUBGROUPS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    overall: _containers.RepeatedCompositeFieldContainer[Metric]
    subgroups: _containers.RepeatedCompositeFieldContainer[SubgroupMetric]
    def __init__(self, dataset: _Optional[str] = ..., overall: _Optional[_Iterable[_Union[Metric, _Mapping]]] = ..., subgroups: _Optional[_Iterable[_Union[SubgroupMetric, _Mapping]]] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("training_data", "code_revision", "parent_version")
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    CODE_REVISION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    training_data: str
    code_revision: str
    parent_version: str
    def __init__(self, training_data: _Optional[str] = ..., code_revision: _Optional[str] = ..., parent_version: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("ref", "triton", "artifact_sha256", "model_card", "intended_use", "calibration", "operating_threshold", "reference_profile", "validation", "lineage", "state", "registered_by", "registered_at", "state_changed_at", "policy_ref")
    REF_FIELD_NUMBER: _ClassVar[int]
    TRITON_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_FIELD_NUMBER: _ClassVar[int]
    INTENDED_USE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    OPERATING_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PROFILE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_REF_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.ModelRef
    triton: TritonModel
    artifact_sha256: str
    model_card: str
    intended_use: str
    calibration: Calibration
    operating_threshold: float
    reference_profile: ReferenceProfile
    validation: ValidationReport
    lineage: Lineage
    state: LifecycleState
    registered_by: str
    registered_at: _timestamp_pb2.Timestamp
    state_changed_at: _timestamp_pb2.Timestamp
    policy_ref: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., triton: _Optional[_Union[TritonModel, _Mapping]] = ..., artifact_sha256: _Optional[str] = ..., model_card: _Optional[str] = ..., intended_use: _Optional[str] = ..., calibration: _Optional[_Union[Calibration, _Mapping]] = ..., operating_threshold: _Optional[float] = ..., reference_profile: _Optional[_Union[ReferenceProfile, _Mapping]] = ..., validation: _Optional[_Union[ValidationReport, _Mapping]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., state: _Optional[_Union[LifecycleState, str]] = ..., registered_by: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_ref: _Optional[str] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approval_id", "transition_id", "signer", "role", "meaning", "signed_at", "signature", "algorithm", "key_id", "renewal_id")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MEANING_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_ID_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    transition_id: str
    signer: str
    role: _common_pb2.Role
    meaning: str
    signed_at: _timestamp_pb2.Timestamp
    signature: bytes
    algorithm: str
    key_id: str
    renewal_id: str
    def __init__(self, approval_id: _Optional[str] = ..., transition_id: _Optional[str] = ..., signer: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., meaning: _Optional[str] = ..., signed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ..., algorithm: _Optional[str] = ..., key_id: _Optional[str] = ..., renewal_id: _Optional[str] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("transition_id", "model", "from_state", "to_state", "status", "requested_by", "requested_at", "reason", "approvals", "unmet_requirements", "applied_at")
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    UNMET_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    transition_id: str
    model: _common_pb2.ModelRef
    from_state: LifecycleState
    to_state: LifecycleState
    status: TransitionStatus
    requested_by: str
    requested_at: _timestamp_pb2.Timestamp
    reason: str
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    unmet_requirements: _containers.RepeatedScalarFieldContainer[str]
    applied_at: _timestamp_pb2.Timestamp
    def __init__(self, transition_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., from_state: _Optional[_Union[LifecycleState, str]] = ..., to_state: _Optional[_Union[LifecycleState, str]] = ..., status: _Optional[_Union[TransitionStatus, str]] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., unmet_requirements: _Optional[_Iterable[str]] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GateResult(_message.Message):
    __slots__ = ("gate", "outcome", "observed", "limit", "detail", "finding_ids")
    GATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FINDING_IDS_FIELD_NUMBER: _ClassVar[int]
    gate: str
    outcome: GateOutcome
    observed: float
    limit: float
    detail: str
    finding_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gate: _Optional[str] = ..., outcome: _Optional[_Union[GateOutcome, str]] = ..., observed: _Optional[float] = ..., limit: _Optional[float] = ..., detail: _Optional[str] = ..., finding_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RolloutStep(_message.Message):
    __slots__ = ("weight_bp", "min_reads")
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    MIN_READS_FIELD_NUMBER: _ClassVar[int]
    weight_bp: int
    min_reads: int
    def __init__(self, weight_bp: _Optional[int] = ..., min_reads: _Optional[int] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("rollout_id", "candidate", "stable_version", "plan", "step_index", "weight_bp", "status", "last_decision", "gates", "reasons", "started_by", "started_at", "updated_at", "policy_ref")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    STABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_DECISION_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    STARTED_BY_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_REF_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    candidate: _common_pb2.ModelRef
    stable_version: str
    plan: _containers.RepeatedCompositeFieldContainer[RolloutStep]
    step_index: int
    weight_bp: int
    status: RolloutStatus
    last_decision: GateDecision
    gates: _containers.RepeatedCompositeFieldContainer[GateResult]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    started_by: str
    started_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    policy_ref: str
    def __init__(self, rollout_id: _Optional[str] = ..., candidate: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., stable_version: _Optional[str] = ..., plan: _Optional[_Iterable[_Union[RolloutStep, _Mapping]]] = ..., step_index: _Optional[int] = ..., weight_bp: _Optional[int] = ..., status: _Optional[_Union[RolloutStatus, str]] = ..., last_decision: _Optional[_Union[GateDecision, str]] = ..., gates: _Optional[_Iterable[_Union[GateResult, _Mapping]]] = ..., reasons: _Optional[_Iterable[str]] = ..., started_by: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_ref: _Optional[str] = ...) -> None: ...

class RegisterVersionRequest(_message.Message):
    __slots__ = ("version", "request_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    version: ModelVersion
    request_id: str
    def __init__(self, version: _Optional[_Union[ModelVersion, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("model_name", "states", "page_size", "page_token")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    states: _containers.RepeatedScalarFieldContainer[LifecycleState]
    page_size: int
    page_token: str
    def __init__(self, model_name: _Optional[str] = ..., states: _Optional[_Iterable[_Union[LifecycleState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RequestTransitionRequest(_message.Message):
    __slots__ = ("model", "to_state", "reason", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    to_state: LifecycleState
    reason: str
    request_id: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., to_state: _Optional[_Union[LifecycleState, str]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApproveRequest(_message.Message):
    __slots__ = ("transition_id", "meaning", "request_id", "renewal_id")
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    MEANING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_ID_FIELD_NUMBER: _ClassVar[int]
    transition_id: str
    meaning: str
    request_id: str
    renewal_id: str
    def __init__(self, transition_id: _Optional[str] = ..., meaning: _Optional[str] = ..., request_id: _Optional[str] = ..., renewal_id: _Optional[str] = ...) -> None: ...

class ApproveResponse(_message.Message):
    __slots__ = ("approval", "transition", "renewal")
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    transition: Transition
    renewal: ReferenceRenewal
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ..., transition: _Optional[_Union[Transition, _Mapping]] = ..., renewal: _Optional[_Union[ReferenceRenewal, _Mapping]] = ...) -> None: ...

class ReferenceRenewal(_message.Message):
    __slots__ = ("renewal_id", "model", "previous", "proposed", "status", "requested_by", "requested_at", "reason", "approvals", "unmet_requirements", "decided_at", "route_revision", "rejection_reason")
    RENEWAL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    UNMET_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_REVISION_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    renewal_id: str
    model: _common_pb2.ModelRef
    previous: ReferenceProfile
    proposed: ReferenceProfile
    status: TransitionStatus
    requested_by: str
    requested_at: _timestamp_pb2.Timestamp
    reason: str
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    unmet_requirements: _containers.RepeatedScalarFieldContainer[str]
    decided_at: _timestamp_pb2.Timestamp
    route_revision: int
    rejection_reason: str
    def __init__(self, renewal_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., previous: _Optional[_Union[ReferenceProfile, _Mapping]] = ..., proposed: _Optional[_Union[ReferenceProfile, _Mapping]] = ..., status: _Optional[_Union[TransitionStatus, str]] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., unmet_requirements: _Optional[_Iterable[str]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., route_revision: _Optional[int] = ..., rejection_reason: _Optional[str] = ...) -> None: ...

class ProposeReferenceRequest(_message.Message):
    __slots__ = ("model", "profile", "reason", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    profile: ReferenceProfile
    reason: str
    request_id: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., profile: _Optional[_Union[ReferenceProfile, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetReferenceRenewalRequest(_message.Message):
    __slots__ = ("renewal_id",)
    RENEWAL_ID_FIELD_NUMBER: _ClassVar[int]
    renewal_id: str
    def __init__(self, renewal_id: _Optional[str] = ...) -> None: ...

class ListReferenceRenewalsRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class ListReferenceRenewalsResponse(_message.Message):
    __slots__ = ("renewals",)
    RENEWALS_FIELD_NUMBER: _ClassVar[int]
    renewals: _containers.RepeatedCompositeFieldContainer[ReferenceRenewal]
    def __init__(self, renewals: _Optional[_Iterable[_Union[ReferenceRenewal, _Mapping]]] = ...) -> None: ...

class RejectReferenceRenewalRequest(_message.Message):
    __slots__ = ("renewal_id", "reason", "request_id")
    RENEWAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    renewal_id: str
    reason: str
    request_id: str
    def __init__(self, renewal_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartRolloutRequest(_message.Message):
    __slots__ = ("candidate", "reason", "request_id")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    candidate: _common_pb2.ModelRef
    reason: str
    request_id: str
    def __init__(self, candidate: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PauseRolloutRequest(_message.Message):
    __slots__ = ("rollout_id", "reason", "request_id")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    reason: str
    request_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeRolloutRequest(_message.Message):
    __slots__ = ("rollout_id", "reason", "request_id")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    reason: str
    request_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AbortRolloutRequest(_message.Message):
    __slots__ = ("rollout_id", "reason", "request_id")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    reason: str
    request_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PromoteRolloutRequest(_message.Message):
    __slots__ = ("rollout_id", "reason", "request_id")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    reason: str
    request_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("model_name", "to_version", "reason", "request_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    to_version: str
    reason: str
    request_id: str
    def __init__(self, model_name: _Optional[str] = ..., to_version: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("routes", "rolled_back", "restored")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    routes: _common_pb2.RouteTable
    rolled_back: ModelVersion
    restored: ModelVersion
    def __init__(self, routes: _Optional[_Union[_common_pb2.RouteTable, _Mapping]] = ..., rolled_back: _Optional[_Union[ModelVersion, _Mapping]] = ..., restored: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class GetRolloutRequest(_message.Message):
    __slots__ = ("rollout_id", "model_name")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    model_name: str
    def __init__(self, rollout_id: _Optional[str] = ..., model_name: _Optional[str] = ...) -> None: ...

class WatchRoutesRequest(_message.Message):
    __slots__ = ("model_names",)
    MODEL_NAMES_FIELD_NUMBER: _ClassVar[int]
    model_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_names: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryAuditRequest(_message.Message):
    __slots__ = ("from_seq", "to_seq", "subject", "actor", "action", "since", "until", "page_size", "page_token")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    to_seq: int
    subject: str
    actor: str
    action: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., subject: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueryAuditResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_events_pb2.AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_events_pb2.AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyAuditRequest(_message.Message):
    __slots__ = ("from_seq", "to_seq")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    to_seq: int
    def __init__(self, from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ...) -> None: ...

class VerifyAuditResponse(_message.Message):
    __slots__ = ("ok", "first_bad_seq", "reason", "entries_checked", "head_hash")
    OK_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    first_bad_seq: int
    reason: str
    entries_checked: int
    head_hash: str
    def __init__(self, ok: _Optional[bool] = ..., first_bad_seq: _Optional[int] = ..., reason: _Optional[str] = ..., entries_checked: _Optional[int] = ..., head_hash: _Optional[str] = ...) -> None: ...

class QueryFindingsRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "kind", "arm", "min_severity", "since", "until", "page_size", "page_token")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    kind: _events_pb2.MonitorKind
    arm: _common_pb2.Arm
    min_severity: _events_pb2.Severity
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., kind: _Optional[_Union[_events_pb2.MonitorKind, str]] = ..., arm: _Optional[_Union[_common_pb2.Arm, str]] = ..., min_severity: _Optional[_Union[_events_pb2.Severity, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueryFindingsResponse(_message.Message):
    __slots__ = ("findings", "next_page_token")
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    findings: _containers.RepeatedCompositeFieldContainer[_events_pb2.Finding]
    next_page_token: str
    def __init__(self, findings: _Optional[_Iterable[_Union[_events_pb2.Finding, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTransitionsRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class ListTransitionsResponse(_message.Message):
    __slots__ = ("transitions",)
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    transitions: _containers.RepeatedCompositeFieldContainer[Transition]
    def __init__(self, transitions: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("principal", "role")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    principal: str
    role: _common_pb2.Role
    def __init__(self, principal: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...
