"""UUIDv7 minting and parsing: the time round-trips, other versions and spellings are refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.ids import parse_uuid7, uuid7

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_the_embedded_millisecond_time_round_trips(ms: int) -> None:
    text = uuid7(now_ms=ms)
    parsed, moment = parse_uuid7(text)
    assert parsed == text
    assert uuid.UUID(text).version == 7
    assert uuid.UUID(text).variant == uuid.RFC_4122
    assert moment == _EPOCH + timedelta(milliseconds=ms)


@given(st.integers(min_value=0, max_value=(1 << 48) - 2))
def test_ids_of_later_milliseconds_sort_later_as_text(ms: int) -> None:
    assert uuid7(now_ms=ms) < uuid7(now_ms=ms + 1)


def test_uppercase_canonical_text_is_accepted_and_lowered() -> None:
    text = uuid7(now_ms=1_700_000_000_000)
    assert parse_uuid7(text.upper())[0] == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "canonical text form"),
        ("not-a-uuid", "canonical text form"),
        (str(uuid.UUID(int=0x1234, version=4)), "version 7"),
        ("{" + uuid7(now_ms=5) + "}", "canonical text form"),
        (uuid7(now_ms=5).replace("-", ""), "canonical text form"),
        ("urn:uuid:" + uuid7(now_ms=5), "canonical text form"),
    ],
)
def test_other_versions_and_spellings_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_uuid7(text)


def test_version_4_is_named_in_the_message() -> None:
    with pytest.raises(ValueError, match="got version 4"):
        parse_uuid7(str(uuid.uuid4()))


def test_a_time_beyond_what_a_clock_can_show_is_refused() -> None:
    assert parse_uuid7(uuid7(now_ms=253_402_300_799_999))[1] == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    with pytest.raises(ValueError, match="after 9999-12-31"):
        parse_uuid7(uuid7(now_ms=253_402_300_800_000))
