"""The SHA-256 of a file, as governance records artefacts and reference profiles and every reader checks them."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Bytes read at a time (a reference profile is tens of megabytes; a model artefact may be larger).
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Lowercase hex SHA-256 of the file's bytes, read in chunks.

    Raises:
        OSError: The file cannot be opened or read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
