import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEX_UNSPECIFIED: _ClassVar[Sex]
    SEX_FEMALE: _ClassVar[Sex]
    SEX_MALE: _ClassVar[Sex]
    SEX_OTHER: _ClassVar[Sex]

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]
    DATA_TYPE_FLOAT16: _ClassVar[DataType]
    DATA_TYPE_UINT8: _ClassVar[DataType]
    DATA_TYPE_UINT16: _ClassVar[DataType]
    DATA_TYPE_INT16: _ClassVar[DataType]
    DATA_TYPE_INT32: _ClassVar[DataType]
    DATA_TYPE_FLOAT64: _ClassVar[DataType]

class Arm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARM_UNSPECIFIED: _ClassVar[Arm]
    ARM_STABLE: _ClassVar[Arm]
    ARM_CANARY: _ClassVar[Arm]
    ARM_SHADOW: _ClassVar[Arm]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_NEGATIVE: _ClassVar[Decision]
    DECISION_POSITIVE: _ClassVar[Decision]

class Label(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_UNSPECIFIED: _ClassVar[Label]
    LABEL_NEGATIVE: _ClassVar[Label]
    LABEL_POSITIVE: _ClassVar[Label]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_AGREE: _ClassVar[Outcome]
    OUTCOME_OVERRIDE: _ClassVar[Outcome]
    OUTCOME_CORRECT: _ClassVar[Outcome]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_CLINICIAN: _ClassVar[Role]
    ROLE_BOARD: _ClassVar[Role]
    ROLE_OPERATOR: _ClassVar[Role]
    ROLE_SERVICE: _ClassVar[Role]
SEX_UNSPECIFIED: Sex
SEX_FEMALE: Sex
SEX_MALE: Sex
SEX_OTHER: Sex
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_FLOAT32: DataType
DATA_TYPE_FLOAT16: DataType
DATA_TYPE_UINT8: DataType
DATA_TYPE_UINT16: DataType
DATA_TYPE_INT16: DataType
DATA_TYPE_INT32: DataType
DATA_TYPE_FLOAT64: DataType
ARM_UNSPECIFIED: Arm
ARM_STABLE: Arm
ARM_CANARY: Arm
ARM_SHADOW: Arm
DECISION_UNSPECIFIED: Decision
DECISION_NEGATIVE: Decision
DECISION_POSITIVE: Decision
LABEL_UNSPECIFIED: Label
LABEL_NEGATIVE: Label
LABEL_POSITIVE: Label
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_AGREE: Outcome
OUTCOME_OVERRIDE: Outcome
OUTCOME_CORRECT: Outcome
ROLE_UNSPECIFIED: Role
ROLE_CLINICIAN: Role
ROLE_BOARD: Role
ROLE_OPERATOR: Role
ROLE_SERVICE: Role

class StudyRef(_message.Message):
    __slots__ = ("study_instance_uid", "series_instance_uid", "accession_number", "sop_instance_uid")
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    ACCESSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SOP_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    study_instance_uid: str
    series_instance_uid: str
    accession_number: str
    sop_instance_uid: str
    def __init__(self, study_instance_uid: _Optional[str] = ..., series_instance_uid: _Optional[str] = ..., accession_number: _Optional[str] = ..., sop_instance_uid: _Optional[str] = ...) -> None: ...

class PatientRef(_message.Message):
    __slots__ = ("patient_id", "issuer", "pseudonym")
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    patient_id: str
    issuer: str
    pseudonym: str
    def __init__(self, patient_id: _Optional[str] = ..., issuer: _Optional[str] = ..., pseudonym: _Optional[str] = ...) -> None: ...

class PatientContext(_message.Message):
    __slots__ = ("sex", "age_years")
    SEX_FIELD_NUMBER: _ClassVar[int]
    AGE_YEARS_FIELD_NUMBER: _ClassVar[int]
    sex: Sex
    age_years: int
    def __init__(self, sex: _Optional[_Union[Sex, str]] = ..., age_years: _Optional[int] = ...) -> None: ...

class PixelSpacing(_message.Message):
    __slots__ = ("row_mm", "col_mm")
    ROW_MM_FIELD_NUMBER: _ClassVar[int]
    COL_MM_FIELD_NUMBER: _ClassVar[int]
    row_mm: float
    col_mm: float
    def __init__(self, row_mm: _Optional[float] = ..., col_mm: _Optional[float] = ...) -> None: ...

class AcquisitionContext(_message.Message):
    __slots__ = ("site_id", "modality", "body_part", "manufacturer", "manufacturer_model", "protocol_name", "pixel_spacing_mm", "view_position")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    BODY_PART_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_FIELD_NUMBER: _ClassVar[int]
    MANUFACTURER_MODEL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    VIEW_POSITION_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    modality: str
    body_part: str
    manufacturer: str
    manufacturer_model: str
    protocol_name: str
    pixel_spacing_mm: PixelSpacing
    view_position: str
    def __init__(self, site_id: _Optional[str] = ..., modality: _Optional[str] = ..., body_part: _Optional[str] = ..., manufacturer: _Optional[str] = ..., manufacturer_model: _Optional[str] = ..., protocol_name: _Optional[str] = ..., pixel_spacing_mm: _Optional[_Union[PixelSpacing, _Mapping]] = ..., view_position: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("data", "shape", "dtype")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DataType
    def __init__(self, data: _Optional[bytes] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DataType, str]] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class FindingDetail(_message.Message):
    __slots__ = ("category_code", "location", "size_mm")
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    category_code: str
    location: BoundingBox
    size_mm: float
    def __init__(self, category_code: _Optional[str] = ..., location: _Optional[_Union[BoundingBox, _Mapping]] = ..., size_mm: _Optional[float] = ...) -> None: ...

class EventMeta(_message.Message):
    __slots__ = ("schema_version", "event_id", "event_time", "producer", "trace_id", "span_id", "request_id")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    event_id: str
    event_time: _timestamp_pb2.Timestamp
    producer: str
    trace_id: str
    span_id: str
    request_id: str
    def __init__(self, schema_version: _Optional[int] = ..., event_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., producer: _Optional[str] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RouteTable(_message.Message):
    __slots__ = ("model_name", "stable_version", "canary_version", "canary_weight_bp", "shadow_versions", "revision", "updated_at", "reason", "rollout_id", "served")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    stable_version: str
    canary_version: str
    canary_weight_bp: int
    shadow_versions: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    updated_at: _timestamp_pb2.Timestamp
    reason: str
    rollout_id: str
    served: _containers.RepeatedCompositeFieldContainer[ServedVersion]
    def __init__(self, model_name: _Optional[str] = ..., stable_version: _Optional[str] = ..., canary_version: _Optional[str] = ..., canary_weight_bp: _Optional[int] = ..., shadow_versions: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., rollout_id: _Optional[str] = ..., served: _Optional[_Iterable[_Union[ServedVersion, _Mapping]]] = ...) -> None: ...

class ServedVersion(_message.Message):
    __slots__ = ("version", "triton_model", "triton_version", "reference_uri", "reference_sha256")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRITON_VERSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_URI_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    version: str
    triton_model: str
    triton_version: int
    reference_uri: str
    reference_sha256: str
    def __init__(self, version: _Optional[str] = ..., triton_model: _Optional[str] = ..., triton_version: _Optional[int] = ..., reference_uri: _Optional[str] = ..., reference_sha256: _Optional[str] = ...) -> None: ...
