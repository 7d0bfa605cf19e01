"""The local checkpoint file: every signed checkpoint, one JSON line each, appended and never rewritten.

It lives in the service's state folder, outside the database, and tells a restarted service which head it
signed last (so it never signs a history that changed under it). ``radguard audit verify`` reads it as a
second witness next to the audit topic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from governance.domain.checkpoint import Checkpoint


@dataclass
class CheckpointFileContents:
    """The checkpoints read, and the line numbers that did not parse."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)


class CheckpointFile:
    """An append-only JSON-lines file of checkpoints."""

    def __init__(self, path: Path) -> None:
        """Use ``path`` (created on the first append)."""
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        """Add one line and flush it to disk before returning (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(checkpoint.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> CheckpointFileContents:
        """Every checkpoint in file order (a missing file holds none)."""
        contents = CheckpointFileContents()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return contents
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                contents.checkpoints.append(Checkpoint.from_json(json.loads(line)))
            except (KeyError, TypeError, ValueError):
                contents.bad_lines.append(number)
        return contents
