"""Checks that settings classes share (one wording for every setting that names a file)."""

from __future__ import annotations

import os
from pathlib import Path


def readable_file(value: Path | None) -> Path | None:
    """``value`` when it is a regular file this process can read (None passes).

    Raises:
        ValueError: It does not exist, is not a regular file, or cannot be read (the reason said).
    """
    if value is None:
        return None
    if not value.exists():
        raise ValueError(f"must be a readable file, got '{value}' (no such file)")
    if not value.is_file():
        raise ValueError(f"must be a readable file, got '{value}' (not a regular file)")
    if not os.access(value, os.R_OK):
        raise ValueError(f"must be a readable file, got '{value}' (permission denied)")
    return value
