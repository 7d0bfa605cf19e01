"""Field checks and read rules of the feedback service: each failure names its field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.feedback import validation
from services.feedback.domain import BoundingBox, Finding, Label, Outcome, PredictionRef, RecordReadCommand
from services.runtime.errors import InvalidArgument
from services.runtime.ids import uuid7

PREDICTED_AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NODULE = Finding("NODULE", BoundingBox(0.1, 0.2, 0.3, 0.4), 12.5)


def _prediction() -> PredictionRef:
    return PredictionRef(uuid7(now_ms=int(PREDICTED_AT.timestamp() * 1000)), PREDICTED_AT)


def _command(outcome: Outcome, label: Label, finding: Finding | None = None) -> RecordReadCommand:
    return RecordReadCommand("key-1", _prediction(), "reader-7", outcome, label, finding, NOW - timedelta(hours=1))


@given(st.integers(min_value=0, max_value=4_000_000_000), st.integers(min_value=0, max_value=999_999_999))
def test_timestamps_convert_exactly_to_the_microsecond(seconds: int, nanos: int) -> None:
    moment = validation.timestamp(seconds, nanos, "read_time")
    assert moment.tzinfo is UTC
    assert int(moment.timestamp()) == seconds
    assert moment.microsecond == nanos // 1000


@pytest.mark.parametrize(
    ("seconds", "nanos", "message"),
    [
        (0, -1, "read_time: nanos must be within 0..999999999, got -1"),
        (0, 1_000_000_000, "read_time: nanos must be within"),
        (253_402_300_800, 0, "read_time: is outside 0001-01-01 .. 9999-12-31"),
        (-62_135_596_801, 0, "read_time: is outside"),
    ],
)
def test_impossible_timestamps_are_refused(seconds: int, nanos: int, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.timestamp(seconds, nanos, "read_time")
    assert caught.value.message.startswith(message)
    assert caught.value.field == "read_time"


def test_text_checks_name_the_field() -> None:
    assert validation.required_text("abc", "idempotency_key", 10) == "abc"
    assert validation.bounded_text("", "reader_pseudonym", 10) == ""
    with pytest.raises(InvalidArgument, match=r"^idempotency_key: is required$"):
        validation.required_text("", "idempotency_key", 10)
    with pytest.raises(InvalidArgument, match=r"^reader_pseudonym: is longer than 3 characters$"):
        validation.bounded_text("abcd", "reader_pseudonym", 3)
    with pytest.raises(InvalidArgument, match=r"^reader_pseudonym: contains control characters$"):
        validation.bounded_text("a\nb", "reader_pseudonym", 10)


def test_prediction_ref_carries_the_time_of_the_id() -> None:
    ref = validation.prediction_ref(uuid7(now_ms=1_740_819_600_123))
    assert ref.predicted_at == datetime(2025, 3, 1, 9, 0, 0, 123000, tzinfo=UTC)
    with pytest.raises(InvalidArgument, match=r"^prediction_id: must be a time-ordered UUID"):
        validation.prediction_ref("6f1c2a8e-2b1d-4c3f-9a7e-1d2c3b4a5f60")


@pytest.mark.parametrize(
    ("code", "box", "size", "message"),
    [
        ("", None, None, "finding.category_code: is required"),
        ("left upper lobe nodule", None, None, "finding.category_code: must be a code"),
        ("X" * 65, None, None, "finding.category_code: is longer than 64 characters"),
        ("NODULE", BoundingBox(-0.1, 0, 0.5, 0.5), None, "finding.location.x_min: must be within [0, 1], got -0.1"),
        ("NODULE", BoundingBox(0, 0, 1.5, 0.5), None, "finding.location.x_max: must be within [0, 1]"),
        ("NODULE", BoundingBox(0.6, 0, 0.5, 0.5), None, "finding.location.x_max: must not be less than x_min"),
        ("NODULE", BoundingBox(0, 0.6, 0.5, 0.5), None, "finding.location.y_max: must not be less than y_min"),
        ("NODULE", BoundingBox(0, math.nan, 0.5, 0.5), None, "finding.location.y_min: must be within [0, 1]"),
        ("NODULE", None, 0.0, "finding.size_mm: must be within (0, 1000] mm, got 0.0"),
        ("NODULE", None, math.inf, "finding.size_mm: must be within"),
    ],
)
def test_bad_findings_name_the_field(code: str, box: BoundingBox | None, size: float | None, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.finding(code, box, size)
    assert caught.value.message.startswith(message)


def test_a_coded_finding_passes_unchanged() -> None:
    assert validation.finding("RID5657", BoundingBox(0, 0, 1, 1), 1000.0) == Finding(
        "RID5657", BoundingBox(0, 0, 1, 1), 1000.0
    )


@pytest.mark.parametrize(
    ("outcome", "label", "finding", "decision", "message"),
    [
        (Outcome.CORRECT, Label.NEGATIVE, None, None, "outcome: correct amends a finding"),
        (Outcome.AGREE, Label.NEGATIVE, NODULE, None, "finding: must be absent when ground_truth is negative"),
        (Outcome.CORRECT, Label.POSITIVE, None, None, "finding: is required when outcome is correct"),
        (Outcome.AGREE, Label.NEGATIVE, None, Label.POSITIVE, "outcome: agree needs ground_truth to equal"),
        (Outcome.CORRECT, Label.POSITIVE, NODULE, Label.NEGATIVE, "outcome: correct needs ground_truth to equal"),
        (Outcome.OVERRIDE, Label.POSITIVE, None, Label.POSITIVE, "outcome: override needs ground_truth to differ"),
    ],
)
def test_inconsistent_reads_are_refused(
    outcome: Outcome, label: Label, finding: Finding | None, decision: Label | None, message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.check_read_rules(_command(outcome, label, finding), decision)
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("outcome", "label", "finding", "decision"),
    [
        (Outcome.AGREE, Label.NEGATIVE, None, Label.NEGATIVE),
        (Outcome.AGREE, Label.POSITIVE, NODULE, Label.POSITIVE),
        (Outcome.AGREE, Label.POSITIVE, None, Label.POSITIVE),
        (Outcome.OVERRIDE, Label.POSITIVE, NODULE, Label.NEGATIVE),
        (Outcome.OVERRIDE, Label.NEGATIVE, None, Label.POSITIVE),
        (Outcome.CORRECT, Label.POSITIVE, NODULE, Label.POSITIVE),
        # Without the model's decision only the decision-free rules apply.
        (Outcome.AGREE, Label.NEGATIVE, None, None),
        (Outcome.OVERRIDE, Label.POSITIVE, NODULE, None),
    ],
)
def test_consistent_reads_pass(outcome: Outcome, label: Label, finding: Finding | None, decision: Label | None) -> None:
    validation.check_read_rules(_command(outcome, label, finding), decision)


@pytest.mark.parametrize(
    ("read_time", "message"),
    [
        (PREDICTED_AT - timedelta(milliseconds=1), "read_time: is before the prediction was made"),
        (NOW + timedelta(seconds=61), "read_time: is in the future"),
    ],
)
def test_read_times_outside_prediction_to_now_are_refused(read_time: datetime, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.check_read_time(read_time, _prediction(), NOW, timedelta(seconds=60))
    assert caught.value.message.startswith(message)


def test_read_time_limits_are_inclusive() -> None:
    validation.check_read_time(PREDICTED_AT, _prediction(), NOW, timedelta(seconds=60))
    validation.check_read_time(NOW + timedelta(seconds=60), _prediction(), NOW, timedelta(seconds=60))


def test_a_prediction_id_from_the_future_is_refused() -> None:
    future = PredictionRef(uuid7(), NOW + timedelta(hours=1))
    with pytest.raises(InvalidArgument, match=r"^prediction_id: carries a time in the future"):
        validation.check_read_time(NOW, future, NOW, timedelta(seconds=60))
