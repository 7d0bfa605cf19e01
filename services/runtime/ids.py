"""Time-ordered UUIDs (version 7), the ids of radguard's events and records: minting them, reading their time."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

_MS_BITS = 48
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 9999-12-31T23:59:59.999Z, the last millisecond a datetime can hold; 48 bits of milliseconds reach further.
_MAX_MS = 253_402_300_799_999


def uuid7(now_ms: int | None = None) -> str:
    """Mint a UUIDv7: 48 bits of Unix milliseconds, version 7, variant 10, then random bits.

    Args:
        now_ms: The millisecond timestamp to embed; the current time when None.

    Returns:
        Canonical lowercase UUID text.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << _MS_BITS) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def parse_uuid7(text: str) -> tuple[str, datetime]:
    """Check that ``text`` is a canonical UUIDv7 and return it with its embedded time.

    Args:
        text: Candidate id, e.g. a prediction id from a client.

    Returns:
        The id in canonical lowercase form, and the UTC time (millisecond precision) it carries.

    Raises:
        ValueError: With a caller-facing reason: not a UUID, not canonical text, or another version.
    """
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise ValueError("must be a UUID in canonical text form (8-4-4-4-12 hex digits)") from None
    # uuid.UUID also accepts braces, urn: prefixes and missing hyphens; ids travel as canonical text only,
    # so two spellings of one id can never become two keys.
    if str(parsed) != text.lower() or len(text) != 36:
        raise ValueError("must be a UUID in canonical text form (8-4-4-4-12 hex digits)")
    if parsed.version != 7 or parsed.variant != uuid.RFC_4122:
        raise ValueError(f"must be a time-ordered UUID (version 7), got version {parsed.version}")
    ms = parsed.int >> 80
    if ms > _MAX_MS:
        raise ValueError("carries a time after 9999-12-31, so it was not minted by a clock")
    return str(parsed), _EPOCH + timedelta(milliseconds=ms)
