"""A durable, bounded, in-order spool of outgoing Kafka records on local disk.

Every event the gateway produces is appended here first and published from here, so an answered
prediction survives a Kafka outage (and a gateway restart). Records live in segment files; each
frame is ``length (u32) | crc32 (u32) | payload``, so a torn tail after a crash is detected and
dropped instead of being published as garbage. A small cursor file remembers the first record not
yet acknowledged by Kafka; fully published segments are deleted.

The class is synchronous and thread-safe. The gateway appends on its event loop without fsync (a write
to the page cache, microseconds), syncs on a worker thread in group commits, and publishes from
another.
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


@dataclass(frozen=True, order=True)
class Position:
    """Where a record starts: segment number and byte offset."""

    segment: int
    offset: int


class Spool:
    """Append-only segments plus a cursor; bounded by ``max_bytes`` of unpublished data.

    Appending and syncing are separate steps. ``append(..., sync=False)`` hands the frames to the
    operating system, which keeps them if the process dies (SIGKILL, OOM); :meth:`sync` then fsyncs,
    which keeps them through a power loss. Only synced records are ever read back for publishing, so the
    cursor never points past what a crash of the machine could leave on disk.
    """

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
        # _lock guards the in-memory state and the open segment; _sync_lock serialises fsync with a roll,
        # so that fsync never runs on a segment being closed. Neither is held across a disk flush by
        # the appending thread's fast path.
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._cursor_path = directory / "cursor"
        self._cursor = self._load_cursor()
        segments = self._segments()
        self._write_segment = segments[-1] if segments else max(self._cursor.segment, 1)
        for number in segments:  # published before a crash that came between the cursor and the unlink
            if number < self._cursor.segment and number != self._write_segment:
                self._segment_path(number).unlink(missing_ok=True)
        self._repair_tail(self._write_segment)
        self._writer = open(self._segment_path(self._write_segment), "ab")  # noqa: SIM115 - held open
        #: Size of every segment at or after the cursor's (what pending_bytes is computed from).
        self._sizes = {n: self._segment_path(n).stat().st_size for n in self._segments() if n >= self._cursor.segment}
        self._sizes.setdefault(self._write_segment, self._writer.tell())
        #: End of the data known to be on disk (fsynced, or written when fsync is off).
        self._durable = Position(self._write_segment, self._writer.tell())
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
        total = sum(size for number, size in self._sizes.items() if number >= self._cursor.segment)
        return max(total - self._cursor.offset, 0)

    # ---- API ---------------------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet acknowledged."""
        return self._pending_bytes

    @property
    def full(self) -> bool:
        """True when appends are being refused."""
        return self._pending_bytes >= self.max_bytes

    @property
    def unsynced(self) -> bool:
        """True when appended bytes are waiting for :meth:`sync`."""
        return self._durable != Position(self._write_segment, self._sizes[self._write_segment])

    def append(self, records: list[SpooledRecord], *, sync: bool = True) -> None:
        """Append records in one write; SpoolFull if over the limit.

        Args:
            records: What to append, in order.
            sync: Also fsync now (one fsync for the batch). Without it the records survive the process
                but wait for :meth:`sync` to survive the machine, and are not read back until then.
        """
        frames = []
        for rec in records:
            payload = rec.encode()
            frames.append(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
        blob = b"".join(frames)
        if self._sizes[self._write_segment] >= self.segment_bytes:
            with self._sync_lock, self._lock:  # the locks' one order: _sync_lock, then _lock
                if self._sizes[self._write_segment] >= self.segment_bytes:
                    self._roll()
        with self._lock:
            if self._pending_bytes + len(blob) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} holds {self._pending_bytes} unpublished bytes (limit {self.max_bytes})"
                )
            self._writer.write(blob)
            self._writer.flush()
            self._sizes[self._write_segment] += len(blob)
            self._pending_bytes += len(blob)
            if not self.fsync:
                self._durable = Position(self._write_segment, self._sizes[self._write_segment])
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make everything appended so far durable (fsync) and readable for publishing."""
        with self._sync_lock:
            with self._lock:
                end = Position(self._write_segment, self._sizes[self._write_segment])
                fileno = self._writer.fileno()
            if end == self._durable:
                return
            if self.fsync:
                os.fsync(fileno)  # a roll (which closes the file) waits on _sync_lock
            with self._lock:
                self._durable = max(self._durable, end)

    def _roll(self) -> None:
        # Called with _sync_lock and _lock held. The finished segment is made durable before the next one
        # starts, so that every segment before the durable position is whole on disk.
        self._writer.flush()
        if self.fsync:
            os.fsync(self._writer.fileno())
        self._writer.close()
        self._durable = Position(self._write_segment, self._sizes[self._write_segment])
        self._write_segment += 1
        self._writer = open(self._segment_path(self._write_segment), "ab")  # noqa: SIM115 - held open
        self._sizes[self._write_segment] = 0

    def read(self, max_records: int, start: Position | None = None) -> list[tuple[Position, SpooledRecord]]:
        """Up to ``max_records`` durable records from ``start`` (default: the cursor), each with its position."""
        out: list[tuple[Position, SpooledRecord]] = []
        pos = start or self._cursor
        with self._lock:
            durable = self._durable
            segments = [n for n in sorted(self._sizes) if pos.segment <= n <= durable.segment]
        for number in segments:
            offset = pos.offset if number == pos.segment else 0
            limit = durable.offset if number == durable.segment else None
            path = self._segment_path(number)
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    while len(out) < max_records and (limit is None or offset < limit):
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
        self._store_cursor(upto)  # its own file: appends go on meanwhile
        with self._lock:
            self._cursor = upto
            done = [n for n in self._sizes if n < upto.segment and n != self._write_segment]
            for number in done:
                del self._sizes[number]
            self._pending_bytes = self._measure_pending()
        for number in done:
            self._segment_path(number).unlink(missing_ok=True)

    @property
    def cursor(self) -> Position:
        """First record not yet acknowledged."""
        return self._cursor

    def close(self) -> None:
        """Make what was appended durable, then close the open segment (closed even if the fsync fails)."""
        try:
            self.sync()
        finally:
            with self._sync_lock, self._lock:
                self._writer.close()
