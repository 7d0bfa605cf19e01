"""Checks on what readers' software sends. Every failure is an InvalidArgument that names the field.

Two layers: field checks (one field at a time, used while translating a request) and read rules (how
outcome, label, finding and times must relate, checked by the use case, which knows the clock and,
when the ledger has it, the model's decision).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from services.feedback.domain import BoundingBox, Finding, Label, Outcome, PredictionRef, RecordReadCommand
from services.runtime.errors import InvalidArgument
from services.runtime.ids import parse_uuid7

#: Longest idempotency key, reader pseudonym and category code accepted.
MAX_KEY_LENGTH = 128
MAX_PSEUDONYM_LENGTH = 128
MAX_CATEGORY_LENGTH = 64
#: Largest plausible finding diameter in millimetres (a whole chest is ~400 mm across).
MAX_SIZE_MM = 1000.0

# Codes from a coded vocabulary (RadLex ids, "NODULE", "RID5657"): letters, digits and . _ : - only, so
# free text (and with it patient data) cannot travel in this field.
_CATEGORY_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")

# protobuf Timestamp's valid range, 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def required_text(value: str, field: str, max_length: int) -> str:
    """A required, bounded, printable string."""
    if not value:
        raise InvalidArgument(field, "is required")
    return bounded_text(value, field, max_length)


def bounded_text(value: str, field: str, max_length: int) -> str:
    """An optional string that must stay short and printable."""
    if len(value) > max_length:
        raise InvalidArgument(field, f"is longer than {max_length} characters")
    if not value.isprintable():
        raise InvalidArgument(field, "contains control characters")
    return value


def prediction_ref(value: str, field: str = "prediction_id") -> PredictionRef:
    """A prediction id: required, canonical UUIDv7 text (the gateway mints them)."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        prediction_id, predicted_at = parse_uuid7(value)
    except ValueError as error:
        raise InvalidArgument(field, str(error)) from None
    return PredictionRef(prediction_id, predicted_at)


def read_id(value: str, field: str = "read_id") -> str:
    """A read id as radguard minted it (canonical UUIDv7 text)."""
    try:
        return parse_uuid7(value)[0]
    except ValueError as error:
        raise InvalidArgument(field, str(error)) from None


def timestamp(seconds: int, nanos: int, field: str) -> datetime:
    """A protobuf Timestamp's parts as an aware UTC datetime, truncated to microseconds.

    Microseconds are what PostgreSQL stores; truncating here means a retried request compares equal to
    the read that was stored for it.
    """
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidArgument(field, f"nanos must be within 0..999999999, got {nanos}")
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise InvalidArgument(field, "is outside 0001-01-01 .. 9999-12-31")
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def bounding_box(box: BoundingBox, field: str) -> BoundingBox:
    """Normalised coordinates within [0, 1] with min <= max on both axes."""
    for name in ("x_min", "y_min", "x_max", "y_max"):
        value = getattr(box, name)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidArgument(f"{field}.{name}", f"must be within [0, 1], got {value}")
    if box.x_min > box.x_max:
        raise InvalidArgument(f"{field}.x_max", f"must not be less than x_min ({box.x_max} < {box.x_min})")
    if box.y_min > box.y_max:
        raise InvalidArgument(f"{field}.y_max", f"must not be less than y_min ({box.y_max} < {box.y_min})")
    return box


def finding(category_code: str, location: BoundingBox | None, size_mm: float | None) -> Finding:
    """A finding: a coded category (required once a finding is sent), an optional box and size."""
    code = required_text(category_code, "finding.category_code", MAX_CATEGORY_LENGTH)
    if _CATEGORY_CODE.fullmatch(code) is None:
        raise InvalidArgument(
            "finding.category_code", "must be a code (letters, digits and . _ : - only), not free text"
        )
    if location is not None:
        bounding_box(location, "finding.location")
    if size_mm is not None and not (math.isfinite(size_mm) and 0.0 < size_mm <= MAX_SIZE_MM):
        raise InvalidArgument("finding.size_mm", f"must be within (0, {MAX_SIZE_MM:g}] mm, got {size_mm}")
    return Finding(code, location, size_mm)


def check_read_rules(command: RecordReadCommand, decision: Label | None) -> None:
    """Check how outcome, label and finding relate, and against the model's decision when known.

    The rules (the same ones the simulator's readers follow):

    * ``correct`` amends a finding the reader agrees is there: the label is positive and a finding is sent.
    * A negative label has no finding.
    * Knowing the model's decision: ``agree`` and ``correct`` need the label to equal it, ``override``
      needs it to differ. Without the decision (the prediction has not reached the ledger yet) only the
      decision-free rules apply; the ledger reports a read whose prediction never arrives as an orphan.

    Args:
        command: The request.
        decision: The model's decision for the prediction, or None when unknown.

    Raises:
        InvalidArgument: Naming ``outcome``, ``ground_truth`` or ``finding``.
    """
    outcome, label = command.outcome, command.label
    if outcome is Outcome.CORRECT and label is not Label.POSITIVE:
        raise InvalidArgument("outcome", "correct amends a finding, so ground_truth must be positive")
    if label is Label.NEGATIVE and command.finding is not None:
        raise InvalidArgument("finding", "must be absent when ground_truth is negative")
    if outcome is Outcome.CORRECT and command.finding is None:
        raise InvalidArgument("finding", "is required when outcome is correct (the amended finding)")
    if decision is None:
        return
    if outcome is Outcome.OVERRIDE and label is decision:
        raise InvalidArgument(
            "outcome",
            f"override needs ground_truth to differ from the model's decision ({decision.word}); "
            f"got {label.word}: use agree",
        )
    if outcome is not Outcome.OVERRIDE and label is not decision:
        raise InvalidArgument(
            "outcome",
            f"{outcome.value} needs ground_truth to equal the model's decision ({decision.word}); "
            f"got {label.word}: use override",
        )


def check_read_time(read_time: datetime, prediction: PredictionRef, now: datetime, max_skew: timedelta) -> None:
    """A read is signed after its prediction was made and not after now (plus the allowed clock skew).

    Args:
        read_time: When the reader signed.
        prediction: The judged prediction (its id carries when it was made, to the millisecond).
        now: The service's clock.
        max_skew: How far ahead of the service's clock a reading workstation's clock may run.

    Raises:
        InvalidArgument: Naming ``read_time`` (or ``prediction_id`` when the id's own time is in the future).
    """
    if prediction.predicted_at > now + max_skew:
        raise InvalidArgument("prediction_id", "carries a time in the future; it was not minted by radguard")
    if read_time < prediction.predicted_at:
        raise InvalidArgument(
            "read_time",
            f"is before the prediction was made ({read_time.isoformat()} < {prediction.predicted_at.isoformat()})",
        )
    if read_time > now + max_skew:
        raise InvalidArgument("read_time", f"is in the future ({read_time.isoformat()} > now {now.isoformat()})")
