"""Protobuf forms of the feedback domain's shared parts (enums, finding, times), used by servicer and events."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from services.feedback.domain import Finding, Label, Outcome

#: Wire enum value → domain outcome (UNSPECIFIED deliberately absent).
OUTCOMES = {
    common_pb2.OUTCOME_AGREE: Outcome.AGREE,
    common_pb2.OUTCOME_OVERRIDE: Outcome.OVERRIDE,
    common_pb2.OUTCOME_CORRECT: Outcome.CORRECT,
}
#: Wire enum value → domain label (UNSPECIFIED deliberately absent).
LABELS = {common_pb2.LABEL_NEGATIVE: Label.NEGATIVE, common_pb2.LABEL_POSITIVE: Label.POSITIVE}
OUTCOME_TO_WIRE = {domain: wire for wire, domain in OUTCOMES.items()}
LABEL_TO_WIRE = {domain: wire for wire, domain in LABELS.items()}


def timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def finding_message(finding: Finding) -> common_pb2.FindingDetail:
    """The protobuf form of a finding."""
    message = common_pb2.FindingDetail(category_code=finding.category_code)
    if finding.location is not None:
        box = finding.location
        message.location.CopyFrom(
            common_pb2.BoundingBox(x_min=box.x_min, y_min=box.y_min, x_max=box.x_max, y_max=box.y_max)
        )
    if finding.size_mm is not None:
        message.size_mm = finding.size_mm
    return message
