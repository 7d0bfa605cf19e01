"""The monitor runner's ports: where findings go and where references and reports come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from kernel.serving import ServedVersion
from services.monitors.alerting.sequential import CusumParameters, CusumState
from services.monitors.core.findings import Finding, MonitorKind, Severity
from services.monitors.core.window import Window
from services.monitors.drift.spec import DriftSpec


@dataclass(frozen=True)
class MonitorTarget:
    """One model version and arm whose traffic the monitors judge.

    ``served`` (what the route table says serves and judges the version) is carried along for the reference
    profile; it is not part of the target's identity: charts and cursors belong to (model, version, arm).
    None when no table said (fixed targets, tables written by hand).
    """

    model_name: str
    model_version: str
    arm: str
    served: ServedVersion | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.model_name}/{self.model_version}/{self.arm}"


def reference_identity(target: MonitorTarget) -> str:
    """Which reference profile ``target`` is judged against: the sha256 its route records, else the profile's
    location, else "" (the model repository's profile of the version, as when no route said anything)."""
    served = target.served
    if served is None:
        return ""
    return served.reference_sha256 or served.reference_uri


@dataclass(frozen=True)
class BlockCursor:
    """The newest prediction a target's charts have judged; the next block starts after it.

    Attributes:
        last_event_time: Its event time.
        last_prediction_id: Its id (ties on event time are broken by id, as the ledger orders them).
    """

    last_event_time: datetime
    last_prediction_id: str


@dataclass(frozen=True)
class Chart:
    """One monitor's CUSUM of one target: its state, the parameters it runs with and the reference it judged
    against (see :func:`reference_identity`)."""

    state: CusumState
    parameters: CusumParameters
    reference: str = ""


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


class SequentialStore(Protocol):
    """The charts of each target, and the findings of each block written with them in one transaction."""

    async def charts(self, target: MonitorTarget) -> tuple[BlockCursor | None, dict[MonitorKind, Chart]]:
        """The target's block cursor (None before its first block) and its charts by monitor, as last stored.

        Raises:
            Unavailable: The database cannot be reached.
        """
        ...

    async def commit_block(
        self,
        target: MonitorTarget,
        cursor: BlockCursor,
        findings: Sequence[IssuedFinding],
        charts: Mapping[MonitorKind, Chart],
    ) -> None:
        """Store one block's findings, their outbox rows, the charts and the cursor, all or nothing.

        Raises:
            Unavailable: The database cannot be reached (nothing was stored).
        """
        ...


class TargetSource(Protocol):
    """What to monitor now."""

    def targets(self) -> list[MonitorTarget]:
        """Every (model, version, arm) served at the moment."""
        ...


class FindingPublisher(Protocol):
    """The findings topic."""

    async def publish(self, issued: IssuedFinding) -> None:
        """Publish one finding, keyed by model name; returns once the broker acknowledged it.

        Raises:
            Unavailable: Kafka did not acknowledge the record.
        """
        ...


class ReferenceUnusable(Exception):
    """A version's reference profile exists but cannot be used: wrong hash, unreadable, unsupported URI."""


class ReferenceSource(Protocol):
    """A version's reference profile as a window."""

    def reference(self, target: MonitorTarget) -> Window:
        """The reference window of ``target``'s version (where its ``served`` entry says, if any).

        Raises:
            FileNotFoundError: The version has no reference profile.
            ReferenceUnusable: The profile is there but does not match its recorded hash or cannot be read.
        """
        ...


class DriftReportWriter(Protocol):
    """Writes the human-readable drift report of a window (HTML and JSON)."""

    def write(self, reference: Window, current: Window, spec: DriftSpec, stem: str) -> str:
        """Write the report and return the URI of its HTML file."""
        ...
