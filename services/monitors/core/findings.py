"""What a monitor concludes about a window: a finding made of statistics, each with its uncertainty.

These are domain types; the adapter translates them to the ``radguard.events.v1.Finding`` message field
by field (the names match).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.monitors.core.window import LabelMaturity, Window


class MonitorKind(StrEnum):
    """Which monitor produced a finding."""

    DRIFT = "drift"
    CALIBRATION = "calibration"
    BIAS = "bias"
    PERFORMANCE = "performance"


class Severity(StrEnum):
    """How much a finding or statistic matters, in increasing order."""

    INFO = "info"
    """Recorded for the evidence trail; nothing crossed."""
    WARNING = "warning"
    """Approaching a limit, or evidence not yet conclusive."""
    BREACH = "breach"
    """A limit is crossed with the required confidence; gates fail on it."""

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for breach."""
        return _RANKS[self]

    @classmethod
    def highest(cls, severities: Iterable[Severity]) -> Severity:
        """The most severe of ``severities`` (info when there are none)."""
        return max(severities, key=lambda severity: severity.rank, default=cls.INFO)


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.BREACH: 2}


@dataclass(frozen=True)
class Statistic:
    """One computed quantity with its uncertainty and what the alerting policy made of it.

    Attributes:
        name: What was measured, e.g. ``ece``, ``auroc``, ``sensitivity``, ``ks_statistic``.
        value: Point estimate.
        test: Test or interval method, e.g. ``kolmogorov-smirnov``, ``wilson``, ``bootstrap-basic``.
        ci_low: Lower confidence bound, if the statistic has an interval.
        ci_high: Upper confidence bound.
        ci_level: Confidence level of the interval, e.g. 0.95.
        p_value: Raw p-value of ``test``, if a test was run.
        p_value_adjusted: p-value after ``adjustment``; alerting uses this one.
        adjustment: Multiple-testing correction applied (``holm``, ``benjamini-hochberg``), or empty.
        subgroup: ``attribute=value`` (joined by ``,`` for intersections), or empty for the whole window.
        feature: Input a drift statistic is about, e.g. ``intensity.p5``; empty otherwise.
        limit: Policy limit compared against, if any.
        severity: What the alerting policy concluded for this statistic.
        n: Observations behind the statistic.
        note: Short qualifier for people, e.g. ``insufficient evidence``.
        secondary: Reported for people and capped at warning, but not evidence of a model failure (e.g.
            calibration-in-the-large, which a prevalence change moves): the runner's sequential chart ignores it.
        sequential: Evidence built for the runner's sequential charts (a test sized for one block, e.g. a
            subgroup's sensitivity against the prevalence-adjusted reference with the few reads one block
            holds). When a finding carries any, only these feed its charts.
    """

    name: str
    value: float
    test: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    adjustment: str = ""
    subgroup: str = ""
    feature: str = ""
    limit: float | None = None
    severity: Severity = Severity.INFO
    n: int | None = None
    note: str = ""
    secondary: bool = False
    sequential: bool = False

    @property
    def breached(self) -> bool:
        """True when this statistic is a breach."""
        return self.severity is Severity.BREACH


@dataclass(frozen=True)
class Finding:
    """A monitor's conclusion about one model version and arm over one window.

    Attributes:
        kind: Which monitor.
        model_name: The model.
        model_version: The version evaluated.
        arm: The arm whose traffic was evaluated.
        start: First event time of the window, if known.
        end: End of the window (exclusive), if known.
        maturity: Label maturity of the window (always stated, also for drift).
        severity: The highest severity among the statistics.
        summary: One line for people; no patient data.
        statistics: The statistics behind the finding.
        spec_ref: ``<spec name>@<revision>`` of the spec that produced it.
        report_uri: Where a full report lives (e.g. an Evidently HTML file), or empty.
    """

    kind: MonitorKind
    model_name: str
    model_version: str
    arm: str
    start: datetime | None
    end: datetime | None
    maturity: LabelMaturity
    severity: Severity
    summary: str
    statistics: tuple[Statistic, ...]
    spec_ref: str
    report_uri: str = ""

    @classmethod
    def for_window(
        cls, kind: MonitorKind, window: Window, statistics: Iterable[Statistic], summary: str, spec_ref: str
    ) -> Finding:
        """A finding about ``window`` whose severity is the highest of its statistics'."""
        collected = tuple(statistics)
        return cls(
            kind=kind,
            model_name=window.model_name,
            model_version=window.model_version,
            arm=window.arm,
            start=window.start,
            end=window.end,
            maturity=window.maturity,
            severity=Severity.highest(statistic.severity for statistic in collected),
            summary=summary,
            statistics=collected,
            spec_ref=spec_ref,
        )

    def select(
        self, name: str | None = None, *, subgroup: str | None = None, feature: str | None = None
    ) -> list[Statistic]:
        """The statistics matching every criterion given."""
        return [
            statistic
            for statistic in self.statistics
            if (name is None or statistic.name == name)
            and (subgroup is None or statistic.subgroup == subgroup)
            and (feature is None or statistic.feature == feature)
        ]

    def get(self, name: str, *, subgroup: str = "", feature: str = "") -> Statistic:
        """The one statistic with this name, subgroup and feature.

        Raises:
            KeyError: If there is none.
        """
        for statistic in self.select(name, subgroup=subgroup, feature=feature):
            return statistic
        raise KeyError(f"no statistic {name!r} subgroup={subgroup!r} feature={feature!r}")

    @property
    def chart(self) -> Statistic | None:
        """The runner's sequential chart statistic (``cusum``, its ``subgroup`` the scope it reports), if any."""
        return next((s for s in self.statistics if s.name == "cusum"), None)

    def with_report(self, uri: str) -> Finding:
        """A copy that points at a full report."""
        return replace(self, report_uri=uri)

    def with_statistics(self, extra: Iterable[Statistic], summary: str) -> Finding:
        """A copy with more statistics and a new summary; the severity stays the highest of all of them."""
        statistics = (*self.statistics, *extra)
        return replace(
            self, statistics=statistics, summary=summary, severity=Severity.highest(s.severity for s in statistics)
        )
