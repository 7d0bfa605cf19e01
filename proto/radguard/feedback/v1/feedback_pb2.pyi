import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from radguard.common.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordReadRequest(_message.Message):
    __slots__ = ("idempotency_key", "prediction_id", "reader_pseudonym", "outcome", "ground_truth", "finding", "read_time")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    READER_PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    prediction_id: str
    reader_pseudonym: str
    outcome: _common_pb2.Outcome
    ground_truth: _common_pb2.Label
    finding: _common_pb2.FindingDetail
    read_time: _timestamp_pb2.Timestamp
    def __init__(self, idempotency_key: _Optional[str] = ..., prediction_id: _Optional[str] = ..., reader_pseudonym: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., ground_truth: _Optional[_Union[_common_pb2.Label, str]] = ..., finding: _Optional[_Union[_common_pb2.FindingDetail, _Mapping]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Read(_message.Message):
    __slots__ = ("read_id", "prediction_id", "reader_pseudonym", "outcome", "ground_truth", "finding", "read_time", "recorded_at", "idempotency_key")
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    READER_PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    read_id: str
    prediction_id: str
    reader_pseudonym: str
    outcome: _common_pb2.Outcome
    ground_truth: _common_pb2.Label
    finding: _common_pb2.FindingDetail
    read_time: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, read_id: _Optional[str] = ..., prediction_id: _Optional[str] = ..., reader_pseudonym: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., ground_truth: _Optional[_Union[_common_pb2.Label, str]] = ..., finding: _Optional[_Union[_common_pb2.FindingDetail, _Mapping]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RecordReadResponse(_message.Message):
    __slots__ = ("read", "created")
    READ_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    read: Read
    created: bool
    def __init__(self, read: _Optional[_Union[Read, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetReadRequest(_message.Message):
    __slots__ = ("read_id", "idempotency_key")
    READ_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    read_id: str
    idempotency_key: str
    def __init__(self, read_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...
