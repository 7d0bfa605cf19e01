"""The monitor runner's ports: where findings go and where references and reports come from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.monitors.core.findings import Finding, MonitorKind, Severity
from services.monitors.core.window import Window
from services.monitors.drift.spec import DriftSpec


@dataclass(frozen=True)
class IssuedFinding:
    """A finding with the id and time it was issued under (the same in PostgreSQL and on Kafka)."""

    finding_id: str
    issued_at: datetime
    finding: Finding


@dataclass(frozen=True)
class StoredFinding:
    """A row of the findings table, as ``radguard findings`` lists it."""

    finding_id: str
    kind: MonitorKind
    model_name: str
    model_version: str
    arm: str
    severity: Severity
    summary: str
    window_count: int
    window_labelled: int
    report_uri: str
    created_at: datetime


@dataclass(frozen=True)
class WindowMark:
    """What a target's last judged window held; a pass that finds exactly this again issues nothing.

    Attributes:
        count: Predictions in the window.
        labelled: Of which with a read.
        last_event_time: Event time of the window's newest prediction.
        last_prediction_id: That prediction's id.
    """

    count: int
    labelled: int
    last_event_time: datetime | None
    last_prediction_id: str


class FindingStore(Protocol):
    """The findings table, and the marks of the windows judged last (so a restarted runner does not repeat)."""

    async def save(self, issued: IssuedFinding) -> bool:
        """Store one finding; returns False when its id was already stored (a replay).

        Raises:
            Unavailable: The database cannot be reached.
        """
        ...

    async def recent(
        self, *, model_name: str | None = None, severity: Severity | None = None, limit: int = 20
    ) -> list[StoredFinding]:
        """The latest findings, newest first, optionally of one model and/or severity."""
        ...

    async def window_mark(self, model_name: str, model_version: str, arm: str) -> WindowMark | None:
        """The mark of the last window judged for this version and arm, or None.

        Raises:
            Unavailable: The database cannot be reached.
        """
        ...

    async def save_window_mark(self, model_name: str, model_version: str, arm: str, mark: WindowMark) -> None:
        """Remember the window just judged for this version and arm (replacing the previous mark).

        Raises:
            Unavailable: The database cannot be reached.
        """
        ...


class FindingPublisher(Protocol):
    """The findings topic."""

    async def publish(self, issued: IssuedFinding) -> None:
        """Publish one finding, keyed by model name; returns once the broker acknowledged it.

        Raises:
            Unavailable: Kafka did not acknowledge the record.
        """
        ...


class ReferenceSource(Protocol):
    """A version's reference profile as a window."""

    def reference(self, model_name: str, model_version: str) -> Window:
        """The reference window of ``model_name`` version ``model_version``.

        Raises:
            FileNotFoundError: The version has no reference profile.
        """
        ...


class DriftReportWriter(Protocol):
    """Writes the human-readable drift report of a window (HTML and JSON)."""

    def write(self, reference: Window, current: Window, spec: DriftSpec, stem: str) -> str:
        """Write the report and return the URI of its HTML file."""
        ...
