"""Fakes of the monitor runner's ports and ledger rows for the unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from services.monitors.alerting.sequential import CusumState
from services.monitors.core.findings import MonitorKind, Severity
from services.monitors.core.window import Window
from services.monitors.drift.spec import DriftSpec
from services.monitors.ledger.domain import Arm, Outcome, Sex
from services.monitors.ledger.queries import (
    LabelledPrediction,
    LedgerCounts,
    LedgerWindow,
    Maturity,
    OrphanRead,
    StoredOffset,
    WindowSpec,
)
from services.monitors.runner.ports import (
    BlockCursor,
    Chart,
    IssuedFinding,
    MonitorTarget,
    StoredFinding,
    WindowMark,
)

T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
SITES = ("site-A", "site-B", "site-C")


def prediction(
    index: int,
    *,
    mean: float,
    label: int | None = None,
    probability: float = 0.3,
    version: str = "3",
    arm: Arm = Arm.STABLE,
) -> LabelledPrediction:
    """One ledger row: descriptors ``intensity.mean``/``intensity.p95``, a 2-component embedding."""
    decision = int(probability >= 0.5)
    outcome = None if label is None else (Outcome.AGREE if label == decision else Outcome.OVERRIDE)
    return LabelledPrediction(
        prediction_id=f"p{index}",
        event_time=T0 + timedelta(minutes=index),
        model_name="chest_nodule",
        model_version=version,
        arm=arm,
        study_uid=f"1.2.{index}",
        site_id=SITES[index % 3],
        modality="DX",
        manufacturer="Acme",
        manufacturer_model="MX-7",
        protocol_name="PA",
        sex=Sex.FEMALE if index % 2 else Sex.MALE,
        age_years=60,
        age_band="50-69",
        raw_score=float(np.log(probability / (1 - probability))),
        probability=probability,
        decision=decision,
        threshold=0.5,
        descriptors={"intensity.mean": mean, "intensity.p95": mean + 0.3},
        embedding=(mean, 0.1),
        read_id=None if label is None else f"r{index}",
        label=label,
        outcome=outcome,
        read_time=None if label is None else T0 + timedelta(hours=5, minutes=index),
        read_count=0 if label is None else 1,
    )


def rows(
    n: int,
    *,
    shift: float = 0.0,
    seed: int = 0,
    probability_shift: float = 0.0,
    version: str = "3",
    arm: Arm = Arm.STABLE,
) -> tuple[LabelledPrediction, ...]:
    """``n`` rows whose intensity mean is N(0.5 + shift, 0.05); every third has a read.

    ``probability_shift`` is added to every served probability (a planted miscalibration; labels unchanged).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    return tuple(
        prediction(
            i,
            mean=float(0.5 + shift + rng.normal(0.0, 0.05)),
            label=int(labels[i]) if i % 3 == 0 else None,
            probability=float(np.clip(0.2 + 0.6 * labels[i] + rng.normal(0, 0.1) + probability_shift, 0.01, 0.99)),
            version=version,
            arm=arm,
        )
        for i in range(n)
    )


class FakeLedger:
    """LedgerQueries over rows in memory (only ``window`` is used by the runner)."""

    def __init__(self, by_version: dict[tuple[str, str], tuple[LabelledPrediction, ...]]) -> None:
        self.by_version = by_version
        self.specs: list[WindowSpec] = []

    async def window(self, spec: WindowSpec) -> LedgerWindow:
        self.specs.append(spec)
        arm = spec.arm.value if spec.arm is not None else ""
        if spec.model_version is None:  # every version of the arm, in time order
            found = [row for (_, key_arm), held in self.by_version.items() if key_arm == arm for row in held]
            selected = tuple(sorted(found, key=lambda row: row.event_time))
        else:
            selected = self.by_version.get((spec.model_version, arm), ())
        start, end = spec.start, spec.end
        selected = tuple(
            row
            for row in selected
            if (start is None or row.event_time >= start) and (end is None or row.event_time < end)
        )
        if spec.last is not None:
            selected = selected[-spec.last :]
        return LedgerWindow(spec, selected)

    async def maturity(self, spec: WindowSpec) -> Maturity:
        raise NotImplementedError

    async def orphan_reads(self, limit: int = 100) -> list[OrphanRead]:
        raise NotImplementedError

    async def counts(self) -> LedgerCounts:
        raise NotImplementedError

    async def stored_offsets(self, group: str | None = None) -> list[StoredOffset]:
        raise NotImplementedError


class FakeReferences:
    """ReferenceSource with windows by version; unknown versions have no profile."""

    def __init__(self, windows: dict[str, Window]) -> None:
        self.windows = windows
        self.loads = 0

    def reference(self, target: MonitorTarget) -> Window:
        self.loads += 1
        if target.model_version not in self.windows:
            raise FileNotFoundError(f"no profile for {target.model_name}/{target.model_version}")
        return self.windows[target.model_version]


@dataclass
class FakeStore:
    """FindingStore in memory."""

    saved: list[IssuedFinding] = field(default_factory=list)
    marks: dict[tuple[str, str, str], WindowMark] = field(default_factory=dict)
    cursors: dict[MonitorTarget, BlockCursor] = field(default_factory=dict)
    charts_held: dict[tuple[MonitorTarget, MonitorKind], Chart] = field(default_factory=dict)
    commits: int = 0

    async def charts(self, target: MonitorTarget) -> tuple[BlockCursor | None, dict[MonitorKind, CusumState]]:
        states = {kind: chart.state for (held, kind), chart in self.charts_held.items() if held == target}
        return self.cursors.get(target), states

    async def commit_block(
        self,
        target: MonitorTarget,
        cursor: BlockCursor,
        findings: Sequence[IssuedFinding],
        charts: Mapping[MonitorKind, Chart],
    ) -> None:
        self.commits += 1
        self.saved.extend(findings)
        self.cursors[target] = cursor
        for kind, chart in charts.items():
            self.charts_held[(target, kind)] = chart

    async def save(self, issued: IssuedFinding) -> bool:
        if any(item.finding_id == issued.finding_id for item in self.saved):
            return False
        self.saved.append(issued)
        return True

    async def recent(
        self, *, model_name: str | None = None, severity: Severity | None = None, limit: int = 20
    ) -> list[StoredFinding]:
        raise NotImplementedError

    async def window_mark(self, model_name: str, model_version: str, arm: str) -> WindowMark | None:
        return self.marks.get((model_name, model_version, arm))

    async def save_window_mark(self, model_name: str, model_version: str, arm: str, mark: WindowMark) -> None:
        self.marks[(model_name, model_version, arm)] = mark


@dataclass
class FakePublisher:
    """FindingPublisher in memory; records what the store held at publish time (to check the order)."""

    store: FakeStore
    published: list[IssuedFinding] = field(default_factory=list)
    stored_first: list[bool] = field(default_factory=list)

    async def publish(self, issued: IssuedFinding) -> None:
        self.stored_first.append(any(item.finding_id == issued.finding_id for item in self.store.saved))
        self.published.append(issued)


@dataclass
class FakeReports:
    """DriftReportWriter that records calls and returns a fixed folder."""

    stems: list[str] = field(default_factory=list)

    def write(self, reference: Window, current: Window, spec: DriftSpec, stem: str) -> str:
        self.stems.append(stem)
        return f"/reports/{stem}.html"
