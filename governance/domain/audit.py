"""The audit chain: canonical JSON, entry hashes and the verifier.

Each entry's hash is ``sha256(prev_hash || canonical_json(content))`` where the content holds every field
of the entry except the two hashes (seq included). Editing any field, deleting, inserting or reordering
entries therefore breaks the chain at the first affected entry; deleting or appending at the end is caught
by comparing with the head the store records separately (``expect_head``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from governance.domain.codec import format_time, to_jsonable
from governance.domain.model import AuditRecord

GENESIS = "0" * 64


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, UTF-8 (not ASCII-escaped), datetimes as ISO-8601 UTC ``Z`` with microseconds."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """Lowercase hex SHA-256 of the previous hash followed by the canonical content."""
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()


def record_content(
    seq: int,
    actor: str,
    actor_role: str,
    action: str,
    subject: str,
    before_json: str,
    after_json: str,
    time: datetime,
    request_id: str,
) -> dict[str, Any]:
    """The hashed content of an entry."""
    return {
        "seq": seq,
        "actor": actor,
        "actor_role": str(actor_role),
        "action": action,
        "subject": subject,
        "before_json": before_json,
        "after_json": after_json,
        "time": format_time(time),
        "request_id": request_id,
    }


def content_of(record: AuditRecord) -> dict[str, Any]:
    """The hashed content of a stored record."""
    return record_content(
        record.seq,
        record.actor,
        record.actor_role,
        record.action,
        record.subject,
        record.before_json,
        record.after_json,
        record.time,
        record.request_id,
    )


@dataclass(frozen=True)
class AuditHead:
    """The last entry the store says it wrote, kept apart from the entries (catches truncation)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class ChainVerdict:
    """Outcome of :func:`verify_chain`."""

    ok: bool
    first_bad_seq: int | None
    reason: str
    entries_checked: int
    head_hash: str


def verify_chain(  # noqa: PLR0911 - one return per way the chain can break
    records: Sequence[AuditRecord],
    expect_prev: str | None = None,
    *,
    expect_first_seq: int | None = None,
    expect_head: AuditHead | None = None,
) -> ChainVerdict:
    """Recompute the chain over ``records`` (in stored order) and name the first entry that fails.

    Args:
        records: Entries as read, in seq order.
        expect_prev: Hash the first entry must link to (``GENESIS`` for seq 1); None trusts its prev_hash.
        expect_first_seq: Seq the first entry must have (1 for the whole log); None trusts it.
        expect_head: The head recorded by the store; when given, the last entry must be it.

    Returns:
        The verdict; ``first_bad_seq`` is the seq at which the chain first breaks.
    """
    prev = expect_prev
    expected_seq = expect_first_seq
    last_hash = expect_prev or (records[0].prev_hash if records else GENESIS)
    checked = 0

    def bad(seq: int, reason: str) -> ChainVerdict:
        return ChainVerdict(False, seq, reason, checked, last_hash)

    for record in records:
        if expected_seq is not None and record.seq != expected_seq:
            if record.seq > expected_seq:
                return bad(expected_seq, f"seq gap: expected {expected_seq}, found {record.seq}")
            # A seq seen again: an entry was inserted (or moved) before it; name that seq.
            return bad(record.seq, f"seq {record.seq} appears again: entry inserted or reordered")
        if prev is not None and record.prev_hash != prev:
            return bad(record.seq, f"prev_hash does not match entry {record.seq - 1}")
        if entry_hash(record.prev_hash, content_of(record)) != record.hash:
            return bad(record.seq, "hash mismatch")
        checked += 1
        prev = record.hash
        last_hash = record.hash
        expected_seq = record.seq + 1
    if expect_head is not None:
        last_seq = records[-1].seq if records else 0
        if last_seq < expect_head.seq:
            return bad(last_seq + 1, f"entries missing: head is seq {expect_head.seq}, log ends at {last_seq}")
        if last_seq > expect_head.seq:
            return bad(expect_head.seq + 1, f"entries after the recorded head (seq {expect_head.seq})")
        if last_hash != expect_head.hash:
            return bad(last_seq, "last entry's hash differs from the recorded head")
    return ChainVerdict(True, None, "ok", checked, last_hash)
