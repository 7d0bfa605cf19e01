import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from radguard.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MonitorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MONITOR_KIND_UNSPECIFIED: _ClassVar[MonitorKind]
    MONITOR_KIND_DRIFT: _ClassVar[MonitorKind]
    MONITOR_KIND_CALIBRATION: _ClassVar[MonitorKind]
    MONITOR_KIND_BIAS: _ClassVar[MonitorKind]
    MONITOR_KIND_PERFORMANCE: _ClassVar[MonitorKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_BREACH: _ClassVar[Severity]
MONITOR_KIND_UNSPECIFIED: MonitorKind
MONITOR_KIND_DRIFT: MonitorKind
MONITOR_KIND_CALIBRATION: MonitorKind
MONITOR_KIND_BIAS: MonitorKind
MONITOR_KIND_PERFORMANCE: MonitorKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_BREACH: Severity

class PredictionEvent(_message.Message):
    __slots__ = ("meta", "prediction_id", "model", "arm", "study", "patient_pseudonym", "patient_context", "age_band", "acquisition", "raw_score", "probability", "decision", "threshold", "descriptors", "embedding", "latency_ms", "route_revision", "request_id", "served_prediction_id")
    class DescriptorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    META_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    PATIENT_PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    PATIENT_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    AGE_BAND_FIELD_NUMBER: _ClassVar[int]
    ACQUISITION_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_REVISION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVED_PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    prediction_id: str
    model: _common_pb2.ModelRef
    arm: _common_pb2.Arm
    study: _common_pb2.StudyRef
    patient_pseudonym: str
    patient_context: _common_pb2.PatientContext
    age_band: str
    acquisition: _common_pb2.AcquisitionContext
    raw_score: float
    probability: float
    decision: _common_pb2.Decision
    threshold: float
    descriptors: _containers.ScalarMap[str, float]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    latency_ms: float
    route_revision: int
    request_id: str
    served_prediction_id: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., prediction_id: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., arm: _Optional[_Union[_common_pb2.Arm, str]] = ..., study: _Optional[_Union[_common_pb2.StudyRef, _Mapping]] = ..., patient_pseudonym: _Optional[str] = ..., patient_context: _Optional[_Union[_common_pb2.PatientContext, _Mapping]] = ..., age_band: _Optional[str] = ..., acquisition: _Optional[_Union[_common_pb2.AcquisitionContext, _Mapping]] = ..., raw_score: _Optional[float] = ..., probability: _Optional[float] = ..., decision: _Optional[_Union[_common_pb2.Decision, str]] = ..., threshold: _Optional[float] = ..., descriptors: _Optional[_Mapping[str, float]] = ..., embedding: _Optional[_Iterable[float]] = ..., latency_ms: _Optional[float] = ..., route_revision: _Optional[int] = ..., request_id: _Optional[str] = ..., served_prediction_id: _Optional[str] = ...) -> None: ...

class ReadEvent(_message.Message):
    __slots__ = ("meta", "read_id", "prediction_id", "reader_pseudonym", "outcome", "ground_truth", "finding", "read_time", "idempotency_key")
    META_FIELD_NUMBER: _ClassVar[int]
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    READER_PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    read_id: str
    prediction_id: str
    reader_pseudonym: str
    outcome: _common_pb2.Outcome
    ground_truth: _common_pb2.Label
    finding: _common_pb2.FindingDetail
    read_time: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., read_id: _Optional[str] = ..., prediction_id: _Optional[str] = ..., reader_pseudonym: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., ground_truth: _Optional[_Union[_common_pb2.Label, str]] = ..., finding: _Optional[_Union[_common_pb2.FindingDetail, _Mapping]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("start", "end", "count", "labelled_count")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    count: int
    labelled_count: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ..., labelled_count: _Optional[int] = ...) -> None: ...

class Statistic(_message.Message):
    __slots__ = ("name", "value", "ci_low", "ci_high", "ci_level", "p_value", "p_value_adjusted", "test", "adjustment", "subgroup", "feature", "limit", "breached")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    CI_LEVEL_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_ADJUSTED_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENT_FIELD_NUMBER: _ClassVar[int]
    SUBGROUP_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BREACHED_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float
    p_value_adjusted: float
    test: str
    adjustment: str
    subgroup: str
    feature: str
    limit: float
    breached: bool
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., ci_level: _Optional[float] = ..., p_value: _Optional[float] = ..., p_value_adjusted: _Optional[float] = ..., test: _Optional[str] = ..., adjustment: _Optional[str] = ..., subgroup: _Optional[str] = ..., feature: _Optional[str] = ..., limit: _Optional[float] = ..., breached: _Optional[bool] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("meta", "finding_id", "kind", "model", "arm", "window", "severity", "summary", "statistics", "report_uri", "spec_ref")
    META_FIELD_NUMBER: _ClassVar[int]
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    REPORT_URI_FIELD_NUMBER: _ClassVar[int]
    SPEC_REF_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    finding_id: str
    kind: MonitorKind
    model: _common_pb2.ModelRef
    arm: _common_pb2.Arm
    window: Window
    severity: Severity
    summary: str
    statistics: _containers.RepeatedCompositeFieldContainer[Statistic]
    report_uri: str
    spec_ref: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., finding_id: _Optional[str] = ..., kind: _Optional[_Union[MonitorKind, str]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., arm: _Optional[_Union[_common_pb2.Arm, str]] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., severity: _Optional[_Union[Severity, str]] = ..., summary: _Optional[str] = ..., statistics: _Optional[_Iterable[_Union[Statistic, _Mapping]]] = ..., report_uri: _Optional[str] = ..., spec_ref: _Optional[str] = ...) -> None: ...

class RouteTableEvent(_message.Message):
    __slots__ = ("meta", "table")
    META_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    table: _common_pb2.RouteTable
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., table: _Optional[_Union[_common_pb2.RouteTable, _Mapping]] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("seq", "prev_hash", "hash", "actor", "actor_role", "action", "subject", "before_json", "after_json", "time", "request_id")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    seq: int
    prev_hash: str
    hash: str
    actor: str
    actor_role: _common_pb2.Role
    action: str
    subject: str
    before_json: str
    after_json: str
    time: _timestamp_pb2.Timestamp
    request_id: str
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ..., actor: _Optional[str] = ..., actor_role: _Optional[_Union[_common_pb2.Role, str]] = ..., action: _Optional[str] = ..., subject: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AuditCheckpoint(_message.Message):
    __slots__ = ("seq", "head_hash", "entry_count", "time", "key_id", "algorithm", "signature")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    head_hash: str
    entry_count: int
    time: _timestamp_pb2.Timestamp
    key_id: str
    algorithm: str
    signature: bytes
    def __init__(self, seq: _Optional[int] = ..., head_hash: _Optional[str] = ..., entry_count: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("meta", "entry", "checkpoint")
    META_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    entry: AuditEntry
    checkpoint: AuditCheckpoint
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., entry: _Optional[_Union[AuditEntry, _Mapping]] = ..., checkpoint: _Optional[_Union[AuditCheckpoint, _Mapping]] = ...) -> None: ...
