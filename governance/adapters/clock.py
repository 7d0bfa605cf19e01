"""The system clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Wall-clock UTC time with microsecond precision."""

    def now(self) -> datetime:
        """Now, UTC."""
        return datetime.now(UTC)
