"""One answer per request id: the answers the gateway gave, found again after a restart for a bounded window.

A client that retries (after a timeout, a dropped connection or a gateway crash) with the same
``request_id`` gets the prediction it was first given, and no second prediction is recorded. The gateway
keeps the answers it gave within the last ``window_s`` seconds, at most ``max_entries`` of them, in memory
and in a small journal beside the event spool, which a restarted gateway reads back.

The journal is JSON lines in ``<spool dir>/answers/answers-<start unix time>.jsonl``; a new file starts
every quarter window or after a quarter of ``max_entries`` lines, files whose every line is older than the
window are deleted, and at most five files are kept (the disk holds about ``1.25 × max_entries`` lines).
A line is keyed by an HMAC of the model name and request id under the gateway's secret key, so the
journal holds no caller id; it holds the answer's numbers (no image, no embedding). Lines are written to
the operating system before the answer leaves (they survive a killed process); they reach the disk with
the next rotation or close, so a power loss may forget the last answers (a retry then gets a fresh one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from services.gateway.domain import ModelOutputs, Prediction
from services.gateway.routing import Arm

_log = logging.getLogger(__name__)

ANSWERS_DIRNAME = "answers"
_PREFIX = "answers-"
_SUFFIX = ".jsonl"
#: Files kept: each holds at most a quarter of max_entries lines, so five cover every answer kept in memory.
_MAX_FILES = 5


def _to_line(key: str, at: float, p: Prediction) -> str:
    return json.dumps(
        {
            "k": key,
            "t": at,
            "id": p.prediction_id,
            "m": p.model_name,
            "v": p.version,
            "a": p.arm.value,
            "raw": p.raw_score,
            "prob": p.probability,
            "pos": p.positive,
            "thr": p.threshold,
            "lat": p.latency_ms,
            "rev": p.route_revision,
        },
        separators=(",", ":"),
    )


def _from_line(line: str) -> tuple[str, float, Prediction]:
    obj = json.loads(line)
    prediction = Prediction(
        prediction_id=str(obj["id"]),
        model_name=str(obj["m"]),
        version=str(obj["v"]),
        arm=Arm(obj["a"]),
        raw_score=float(obj["raw"]),
        probability=float(obj["prob"]),
        positive=bool(obj["pos"]),
        threshold=float(obj["thr"]),
        latency_ms=float(obj["lat"]),
        route_revision=int(obj["rev"]),
        outputs=ModelOutputs(logit=float(obj["raw"]), embedding=(), descriptors={}),
    )
    return str(obj["k"]), float(obj["t"]), prediction


class AnswerJournal:
    """The answers given within the window, by (model, request id); durable when given a directory."""

    def __init__(
        self,
        directory: Path | None,
        secret: bytes,
        *,
        window_s: float = 24 * 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
        siblings: Sequence[Path] = (),
    ) -> None:
        """Open (and read back) the journal.

        Args:
            directory: Where the journal files live; None keeps answers in memory only.
            secret: Key of the HMAC that replaces the caller's ids.
            window_s: How long an answer is found again.
            max_entries: Most answers kept; the oldest go first.
            clock: Wall-clock seconds (the window must hold across restarts).
            siblings: The journal folders of the other processes of a multi-process gateway: their
                answers are read back at start and followed (:meth:`follow_siblings`), so a retry that
                reaches another process than the first call gets the first answer too.
        """
        self.directory = directory
        self.window_s = window_s
        self.max_entries = max_entries
        self._secret = secret
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Prediction]] = OrderedDict()
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._file_start = 0.0
        self._file_lines = 0
        self._siblings = tuple(siblings)
        self._offsets: dict[Path, int] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()
        self.follow_siblings()

    @property
    def rotate_s(self) -> float:
        """How long one journal file takes new lines."""
        return self.window_s / 4

    def key(self, model_name: str, request_id: str) -> str:
        """The journal's name for a request: an HMAC, so no caller id is written anywhere."""
        message = f"{len(model_name)}:{model_name}|{request_id}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def lookup(self, model_name: str, request_id: str) -> Prediction | None:
        """The answer given to this request within the window, if any."""
        found = self._entries.get(self.key(model_name, request_id))
        if found is None or found[0] < self._clock() - self.window_s:
            return None
        return found[1]

    def remember(self, model_name: str, request_id: str, prediction: Prediction) -> None:
        """Keep the answer (in memory, and in the journal when there is one)."""
        key = self.key(model_name, request_id)
        now = self._clock()
        with self._lock:
            self._entries[key] = (now, prediction)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            if self.directory is None:
                return
            try:
                handle = self._writer(now)
                handle.write(_to_line(key, now, prediction) + "\n")
                handle.flush()
                self._file_lines += 1
            except OSError as exc:
                # The answer stands and its event is spooled; only a retry after a restart would miss it.
                _log.error("writing the answer journal failed: %s", exc.strerror)

    @property
    def has_siblings(self) -> bool:
        """Whether other processes' journals are followed."""
        return bool(self._siblings)

    def follow_siblings(self) -> int:
        """Take in the answers the sibling processes journaled since the last call; returns how many.

        Only whole lines are read (a sibling may be writing the next one); files already read are not
        read again, so a call with nothing new costs one ``stat`` per sibling file.
        """
        if not self._siblings:
            return 0
        oldest = self._clock() - self.window_s
        taken = 0
        seen: set[Path] = set()
        for folder in self._siblings:
            for path in sorted(folder.glob(f"{_PREFIX}*{_SUFFIX}")):
                seen.add(path)
                taken += self._follow_file(path, oldest)
        for gone in set(self._offsets) - seen:
            del self._offsets[gone]
        return taken

    def _follow_file(self, path: Path, oldest: float) -> int:
        offset = self._offsets.get(path, 0)
        try:
            if path.stat().st_size <= offset:
                return 0
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except OSError:
            return 0
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        self._offsets[path] = offset + end + 1
        taken = 0
        with self._lock:
            for line in data[: end + 1].decode("utf-8", "replace").splitlines():
                try:
                    key, at, prediction = _from_line(line)
                except (ValueError, KeyError, TypeError):
                    continue
                if at < oldest or key in self._entries:
                    continue
                self._entries[key] = (at, prediction)
                taken += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return taken

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Flush and close the open journal file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # ---- files ---------------------------------------------------------------------------------------
    def _files(self) -> list[tuple[float, Path]]:
        assert self.directory is not None
        found = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            stem = path.name[len(_PREFIX) : -len(_SUFFIX)]
            try:
                found.append((float(stem), path))
            except ValueError:
                continue
        return sorted(found)

    def _writer(self, now: float) -> IO[str]:
        full = self._file_lines >= max(1, self.max_entries // 4)
        if self._file is None or full or now - self._file_start >= self.rotate_s:
            if self._file is not None:
                self._file.close()  # close flushes; the next file starts clean
            self._file_start = now
            self._file_lines = 0
            assert self.directory is not None
            self._file = open(self.directory / f"{_PREFIX}{now:.6f}{_SUFFIX}", "a", encoding="utf-8")  # noqa: SIM115
            self._prune(now)
        return self._file

    def _prune(self, now: float) -> None:
        """Delete files that can hold only lines older than the window, and all but the newest few."""
        files = self._files()
        for index, (start, path) in enumerate(files):
            # A file takes lines for at most rotate_s after it starts.
            if start + self.rotate_s < now - self.window_s or index < len(files) - _MAX_FILES:
                path.unlink(missing_ok=True)

    def _load(self) -> None:
        now = self._clock()
        self._prune(now)
        oldest = now - self.window_s
        loaded = 0
        for _start, path in self._files():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                _log.error("reading the answer journal failed: %s", exc.strerror)
                continue
            for line in lines:
                try:
                    key, at, prediction = _from_line(line)
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash
                if at < oldest:
                    continue
                self._entries[key] = (at, prediction)
                self._entries.move_to_end(key)
                loaded += 1
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if loaded:
            _log.info("answer journal read back answers=%d", len(self._entries))
