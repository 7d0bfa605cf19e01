import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Statistic(_message.Message):
    __slots__ = ("name", "value", "test", "ci_low", "ci_high", "ci_level", "p_value", "p_value_adjusted", "adjustment", "subgroup", "feature", "limit", "severity", "n", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    CI_LEVEL_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_ADJUSTED_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENT_FIELD_NUMBER: _ClassVar[int]
    SUBGROUP_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    test: str
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float
    p_value_adjusted: float
    adjustment: str
    subgroup: str
    feature: str
    limit: float
    severity: str
    n: int
    note: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., test: _Optional[str] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., ci_level: _Optional[float] = ..., p_value: _Optional[float] = ..., p_value_adjusted: _Optional[float] = ..., adjustment: _Optional[str] = ..., subgroup: _Optional[str] = ..., feature: _Optional[str] = ..., limit: _Optional[float] = ..., severity: _Optional[str] = ..., n: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("finding_id", "kind", "model_name", "model_version", "arm", "window_start", "window_end", "window_count", "window_labelled", "severity", "summary", "statistics", "spec_ref", "has_report", "created_at")
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    WINDOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_LABELLED_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    SPEC_REF_FIELD_NUMBER: _ClassVar[int]
    HAS_REPORT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    finding_id: str
    kind: str
    model_name: str
    model_version: str
    arm: str
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    window_count: int
    window_labelled: int
    severity: str
    summary: str
    statistics: _containers.RepeatedCompositeFieldContainer[Statistic]
    spec_ref: str
    has_report: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, finding_id: _Optional[str] = ..., kind: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., arm: _Optional[str] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_count: _Optional[int] = ..., window_labelled: _Optional[int] = ..., severity: _Optional[str] = ..., summary: _Optional[str] = ..., statistics: _Optional[_Iterable[_Union[Statistic, _Mapping]]] = ..., spec_ref: _Optional[str] = ..., has_report: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueryFindingsRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "kind", "arm", "min_severity", "since", "until", "page_size", "page_token", "omit_statistics")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OMIT_STATISTICS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    kind: str
    arm: str
    min_severity: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    omit_statistics: bool
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., kind: _Optional[str] = ..., arm: _Optional[str] = ..., min_severity: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., omit_statistics: _Optional[bool] = ...) -> None: ...

class QueryFindingsResponse(_message.Message):
    __slots__ = ("findings", "next_page_token")
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    next_page_token: str
    def __init__(self, findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetMetricSeriesRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "arm", "kind", "metric", "subgroup", "feature", "since", "until", "limit")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SUBGROUP_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    arm: str
    kind: str
    metric: str
    subgroup: str
    feature: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., arm: _Optional[str] = ..., kind: _Optional[str] = ..., metric: _Optional[str] = ..., subgroup: _Optional[str] = ..., feature: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class SeriesPoint(_message.Message):
    __slots__ = ("finding_id", "window_start", "window_end", "created_at", "value", "ci_low", "ci_high", "n", "severity")
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    finding_id: str
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    value: float
    ci_low: float
    ci_high: float
    n: int
    severity: str
    def __init__(self, finding_id: _Optional[str] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., n: _Optional[int] = ..., severity: _Optional[str] = ...) -> None: ...

class GetMetricSeriesResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[SeriesPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[SeriesPoint, _Mapping]]] = ...) -> None: ...

class GetReliabilityDiagramRequest(_message.Message):
    __slots__ = ("finding_id", "model_name", "model_version", "arm")
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    finding_id: str
    model_name: str
    model_version: str
    arm: str
    def __init__(self, finding_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...

class ReliabilityBin(_message.Message):
    __slots__ = ("lower", "upper", "mean_predicted", "observed_rate", "ci_low", "ci_high", "count")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    MEAN_PREDICTED_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_RATE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    mean_predicted: float
    observed_rate: float
    ci_low: float
    ci_high: float
    count: int
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., mean_predicted: _Optional[float] = ..., observed_rate: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class GetReliabilityDiagramResponse(_message.Message):
    __slots__ = ("finding", "bins")
    FINDING_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    finding: Finding
    bins: _containers.RepeatedCompositeFieldContainer[ReliabilityBin]
    def __init__(self, finding: _Optional[_Union[Finding, _Mapping]] = ..., bins: _Optional[_Iterable[_Union[ReliabilityBin, _Mapping]]] = ...) -> None: ...

class GetWindowReportRequest(_message.Message):
    __slots__ = ("finding_id",)
    FINDING_ID_FIELD_NUMBER: _ClassVar[int]
    finding_id: str
    def __init__(self, finding_id: _Optional[str] = ...) -> None: ...

class GetWindowReportResponse(_message.Message):
    __slots__ = ("media_type", "content")
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    media_type: str
    content: bytes
    def __init__(self, media_type: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...
