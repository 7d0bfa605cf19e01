from radguard.common.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DicomInstance(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("model_name", "request_id", "study", "patient", "patient_context", "acquisition", "tensor", "dicom")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    PATIENT_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ACQUISITION_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    DICOM_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    request_id: str
    study: _common_pb2.StudyRef
    patient: _common_pb2.PatientRef
    patient_context: _common_pb2.PatientContext
    acquisition: _common_pb2.AcquisitionContext
    tensor: _common_pb2.Tensor
    dicom: DicomInstance
    def __init__(self, model_name: _Optional[str] = ..., request_id: _Optional[str] = ..., study: _Optional[_Union[_common_pb2.StudyRef, _Mapping]] = ..., patient: _Optional[_Union[_common_pb2.PatientRef, _Mapping]] = ..., patient_context: _Optional[_Union[_common_pb2.PatientContext, _Mapping]] = ..., acquisition: _Optional[_Union[_common_pb2.AcquisitionContext, _Mapping]] = ..., tensor: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., dicom: _Optional[_Union[DicomInstance, _Mapping]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("prediction_id", "raw_score", "probability", "decision", "threshold", "model", "arm", "latency_ms", "study", "request_id", "route_revision", "error")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_REVISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    raw_score: float
    probability: float
    decision: _common_pb2.Decision
    threshold: float
    model: _common_pb2.ModelRef
    arm: _common_pb2.Arm
    latency_ms: float
    study: _common_pb2.StudyRef
    request_id: str
    route_revision: int
    error: ItemError
    def __init__(self, prediction_id: _Optional[str] = ..., raw_score: _Optional[float] = ..., probability: _Optional[float] = ..., decision: _Optional[_Union[_common_pb2.Decision, str]] = ..., threshold: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., arm: _Optional[_Union[_common_pb2.Arm, str]] = ..., latency_ms: _Optional[float] = ..., study: _Optional[_Union[_common_pb2.StudyRef, _Mapping]] = ..., request_id: _Optional[str] = ..., route_revision: _Optional[int] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class GetRouteRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...
