"""The gateway's dead-letter folder: spooled records Kafka refused for good, kept for inspection and replay.

A record the broker can never accept (larger than its limit, or refused with any non-retriable error)
would otherwise hold the spool's cursor forever. The publisher moves it here instead and goes on.

Format (read by ``radguard deadletter``; keep it stable): the folder ``<spool dir>/deadletter/`` holds
``*.jsonl`` files (one per UTC day, ``YYYY-MM-DD.jsonl``), one JSON object per line::

    {"id": "<event id>", "topic": "radguard.predictions.v1", "key": "<base64>" | null,
     "value": "<base64>", "headers": [["traceparent", "<base64>"], ...],
     "reason": "MessageSizeTooLargeError", "quarantined_at": "2026-12-03T13:05:01.123456+00:00",
     "size": 1234}

``value`` is the record exactly as it would have been published (a serialized ``PredictionEvent``), so a
replay sends the same bytes. ``reason`` names the error class only; ``size`` counts key, value and
headers in bytes. Nothing in a line is a raw patient identifier (events carry pseudonyms).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: The folder, under the spool's, that holds the quarantined records.
DEADLETTER_DIRNAME = "deadletter"
#: Longest ``reason`` written.
MAX_REASON_CHARS = 120


@dataclass(frozen=True)
class DeadLetter:
    """One quarantined record.

    Attributes:
        id: The event id (the prediction id for prediction events); empty when unknown.
        topic: Where the record was to be published.
        key: Its Kafka key.
        value: Its payload, byte for byte.
        headers: Its headers.
        reason: Why Kafka refused it (the error's class name).
        quarantined_at: When it was moved here (UTC).
        size: Key, value and header bytes together.
    """

    id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    quarantined_at: datetime
    size: int


def record_size(key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...]) -> int:
    """Bytes a record puts on the wire, roughly as the broker counts them against its limit."""
    return len(key or b"") + len(value) + sum(len(name.encode()) + len(data) for name, data in headers)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_line(letter: DeadLetter) -> str:
    """One JSON line for ``letter`` (without the newline)."""
    return json.dumps(
        {
            "id": letter.id,
            "topic": letter.topic,
            "key": None if letter.key is None else _b64(letter.key),
            "value": _b64(letter.value),
            "headers": [[name, _b64(data)] for name, data in letter.headers],
            "reason": letter.reason,
            "quarantined_at": letter.quarantined_at.astimezone(UTC).isoformat(),
            "size": letter.size,
        },
        separators=(",", ":"),
    )


def decode_line(line: str) -> DeadLetter:
    """Parse one line written by :func:`encode_line` (ValueError, KeyError or TypeError when malformed)."""
    obj = json.loads(line)
    key = obj["key"]
    return DeadLetter(
        id=str(obj["id"]),
        topic=str(obj["topic"]),
        key=None if key is None else base64.b64decode(key, validate=True),
        value=base64.b64decode(obj["value"], validate=True),
        headers=tuple((str(name), base64.b64decode(data, validate=True)) for name, data in obj["headers"]),
        reason=str(obj["reason"]),
        quarantined_at=datetime.fromisoformat(obj["quarantined_at"]),
        size=int(obj["size"]),
    )


class DeadLetterWriter:
    """Appends quarantined records to the day's file; each line is on disk before :meth:`write` returns."""

    def __init__(self, spool_dir: Path, *, fsync: bool = True) -> None:
        self.directory = spool_dir / DEADLETTER_DIRNAME
        self.fsync = fsync
        self._lock = threading.Lock()

    def write(self, letter: DeadLetter) -> Path:
        """Append ``letter``; returns the file it went to. Raises OSError when the disk refuses."""
        path = self.directory / f"{letter.quarantined_at.astimezone(UTC):%Y-%m-%d}.jsonl"
        line = (encode_line(letter) + "\n").encode()
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as fh:
                fh.write(line)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
        return path


def read_dead_letters(spool_dir: Path) -> list[DeadLetter]:
    """Every record quarantined under ``spool_dir``, oldest file first, in the order they were written.

    A torn last line (a crash mid-write) is skipped; other malformed lines raise ValueError naming the
    file and line.
    """
    directory = Path(spool_dir) / DEADLETTER_DIRNAME
    if not directory.is_dir():
        return []
    letters: list[DeadLetter] = []
    for path in sorted(directory.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                letters.append(decode_line(line))
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines):  # no newline after it: written only in part
                    continue
                raise ValueError(f"{path.name}:{number}: not a dead-letter record ({type(exc).__name__})") from None
    return letters


def now_utc() -> datetime:
    """The current time in UTC (one place, so tests and files agree on the zone)."""
    return datetime.now(UTC)
