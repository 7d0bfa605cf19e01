"""A durable, bounded, in-order spool of outgoing Kafka records on local disk.

Every event the gateway produces is appended here first and published from here, so an answered
prediction survives a Kafka outage (and a gateway restart). Records live in segment files; each
frame is ``length (u32) | crc32 (u32) | payload``, so a torn tail after a crash is detected and
dropped instead of being published as garbage. A small cursor file remembers the first record not
yet acknowledged by Kafka; fully published segments are deleted.

The class is synchronous and thread-safe; the async publisher runs it on a worker thread.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

_FRAME = struct.Struct(">II")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SEGMENT_PREFIX = "seg-"
_SEGMENT_SUFFIX = ".log"


class SpoolFull(Exception):
    """The spool reached its size limit: refuse new work rather than lose it."""


@dataclass(frozen=True)
class SpooledRecord:
    """One Kafka record waiting to be published."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def encode(self) -> bytes:
        parts = [_U16.pack(len(self.topic.encode())), self.topic.encode()]
        if self.key is None:
            parts.append(_U32.pack(0xFFFFFFFF))
        else:
            parts += [_U32.pack(len(self.key)), self.key]
        parts.append(_U16.pack(len(self.headers)))
        for name, value in self.headers:
            raw = name.encode()
            parts += [_U16.pack(len(raw)), raw, _U32.pack(len(value)), value]
        parts += [_U32.pack(len(self.value)), self.value]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> SpooledRecord:
        view = memoryview(data)
        pos = 0

        def take(n: int) -> bytes:
            nonlocal pos
            if pos + n > len(view):
                raise ValueError("truncated spool record")
            out = bytes(view[pos : pos + n])
            pos += n
            return out

        topic = take(_U16.unpack(take(2))[0]).decode()
        klen = _U32.unpack(take(4))[0]
        key = None if klen == 0xFFFFFFFF else take(klen)
        headers = []
        for _ in range(_U16.unpack(take(2))[0]):
            name = take(_U16.unpack(take(2))[0]).decode()
            headers.append((name, take(_U32.unpack(take(4))[0])))
        value = take(_U32.unpack(take(4))[0])
        return cls(topic, key, value, tuple(headers))


@dataclass(frozen=True)
class Position:
    """Where a record starts: segment number and byte offset."""

    segment: int
    offset: int


class Spool:
    """Append-only segments plus a cursor; bounded by ``max_bytes`` of unpublished data."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 16 * 1024 * 1024,
        fsync: bool = True,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._cursor_path = directory / "cursor"
        self._cursor = self._load_cursor()
        segments = self._segments()
        self._write_segment = segments[-1] if segments else max(self._cursor.segment, 1)
        self._repair_tail(self._write_segment)
        self._writer = open(self._segment_path(self._write_segment), "ab")  # noqa: SIM115 - held open
        self._pending_bytes = self._measure_pending()

    # ---- layout ------------------------------------------------------------------------------------
    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{_SEGMENT_PREFIX}{number:012d}{_SEGMENT_SUFFIX}"

    def _segments(self) -> list[int]:
        numbers = []
        for path in self.directory.glob(f"{_SEGMENT_PREFIX}*{_SEGMENT_SUFFIX}"):
            stem = path.name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)]
            if stem.isdigit():
                numbers.append(int(stem))
        return sorted(numbers)

    def _load_cursor(self) -> Position:
        try:
            seg, off = self._cursor_path.read_text().split()
            return Position(int(seg), int(off))
        except (OSError, ValueError):
            first = self._segments()
            return Position(first[0] if first else 1, 0)

    def _store_cursor(self, pos: Position) -> None:
        tmp = self._cursor_path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{pos.segment} {pos.offset}\n")
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        tmp.replace(self._cursor_path)

    def _repair_tail(self, segment: int) -> None:
        """Cut a torn final frame left by a crash, so appends continue from a clean boundary."""
        path = self._segment_path(segment)
        if not path.exists():
            return
        good = 0
        with open(path, "rb") as fh:
            data = fh.read()
        pos = 0
        while pos + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + length
            if end > len(data) or zlib.crc32(data[pos + _FRAME.size : end]) != crc:
                break
            pos = end
            good = pos
        if good != len(data):
            with open(path, "r+b") as fh:
                fh.truncate(good)

    def _measure_pending(self) -> int:
        total = 0
        for number in self._segments():
            if number < self._cursor.segment:
                continue
            size = self._segment_path(number).stat().st_size
            total += size - (self._cursor.offset if number == self._cursor.segment else 0)
        return max(total, 0)

    # ---- API ---------------------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet acknowledged."""
        return self._pending_bytes

    @property
    def full(self) -> bool:
        """True when appends are being refused."""
        return self._pending_bytes >= self.max_bytes

    def append(self, records: list[SpooledRecord]) -> None:
        """Durably append records (one write and one fsync for the batch); SpoolFull if over the limit."""
        frames = []
        for rec in records:
            payload = rec.encode()
            frames.append(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
        blob = b"".join(frames)
        with self._lock:
            if self._pending_bytes + len(blob) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} holds {self._pending_bytes} unpublished bytes (limit {self.max_bytes})"
                )
            if self._writer.tell() >= self.segment_bytes:
                self._roll()
            self._writer.write(blob)
            self._writer.flush()
            if self.fsync:
                os.fsync(self._writer.fileno())
            self._pending_bytes += len(blob)

    def _roll(self) -> None:
        self._writer.close()
        self._write_segment += 1
        self._writer = open(self._segment_path(self._write_segment), "ab")  # noqa: SIM115 - held open

    def read(self, max_records: int, start: Position | None = None) -> list[tuple[Position, SpooledRecord]]:
        """Up to ``max_records`` records from ``start`` (default: the cursor), each with its position."""
        out: list[tuple[Position, SpooledRecord]] = []
        pos = start or self._cursor
        with self._lock:
            segments = [n for n in self._segments() if n >= pos.segment]
        for number in segments:
            offset = pos.offset if number == pos.segment else 0
            path = self._segment_path(number)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    while len(out) < max_records:
                        head = fh.read(_FRAME.size)
                        if len(head) < _FRAME.size:
                            break
                        length, crc = _FRAME.unpack(head)
                        payload = fh.read(length)
                        if len(payload) < length or zlib.crc32(payload) != crc:
                            break  # a frame still being written (or torn): stop here
                        out.append((Position(number, offset), SpooledRecord.decode(payload)))
                        offset += _FRAME.size + length
            except FileNotFoundError:
                continue
            if len(out) >= max_records:
                break
        return out

    def next_position(self, pos: Position, record: SpooledRecord) -> Position:
        """Position right after ``record`` stored at ``pos``."""
        return Position(pos.segment, pos.offset + _FRAME.size + len(record.encode()))

    def commit(self, upto: Position) -> None:
        """Mark everything before ``upto`` as published; delete segments left behind."""
        with self._lock:
            self._store_cursor(upto)
            self._cursor = upto
            for number in self._segments():
                if number < upto.segment and number != self._write_segment:
                    self._segment_path(number).unlink(missing_ok=True)
            self._pending_bytes = self._measure_pending()

    @property
    def cursor(self) -> Position:
        """First record not yet acknowledged."""
        return self._cursor

    def close(self) -> None:
        """Close the open segment."""
        with self._lock:
            self._writer.close()
