"""The calibration calculator: ECE with CI, reliability bins, Brier score, calibration line, change test.

Reads are the labels. The alert is the ECE change test of
:func:`kernel.calibration.ece_change_test` (one test per window, so no correction is
needed); the ECE's own interval and the policy limit ``max_ece`` are reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from kernel.calibration import (
    BinTotals,
    EceChangeTest,
    EceInterval,
    ReliabilityBin,
    brier_score,
    ece_change_test,
    ece_interval,
    reliability_bins,
)
from kernel.calibration_line import CalibrationLine, fit_calibration_line
from kernel.distributions import normal_quantile
from services.monitors.alerting.policy import Hypothesis, judge, limit_severity
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.findings import Finding, MonitorKind, Statistic
from services.monitors.core.window import Window


@dataclass(frozen=True)
class CalibrationSummary:
    """Everything the calibration monitor computes for a window.

    Attributes:
        reads: Predictions with a read.
        ece: Plug-in ECE.
        ece_ci: Double-bootstrap calibrated interval of the ECE at the spec's level.
        change: The ECE change test.
        brier: Brier score.
        brier_se: Its standard error.
        line: Calibration slope and intercept.
        bins: Reliability diagram.
    """

    reads: int
    ece: float
    ece_ci: EceInterval
    change: EceChangeTest
    brier: float
    brier_se: float
    line: CalibrationLine
    bins: tuple[ReliabilityBin, ...]


class CalibrationMonitor:
    """Calibration of windows against a reference, with the reference binned once.

    Example:
        >>> monitor = CalibrationMonitor(reference_window, CalibrationSpec(name="chest-calibration"))
        >>> monitor.evaluate(window).summary
    """

    def __init__(self, reference: Window | None, spec: CalibrationSpec) -> None:
        """Bin the reference's reads.

        Args:
            reference: The version's reference (needs reads when ``spec.null_model`` is ``reference``).
            spec: The calibration spec.

        Raises:
            ValueError: If the null model is ``reference`` but the reference has no reads.
        """
        self._spec = spec
        self._reference: BinTotals | None = None
        if spec.null_model == "reference":
            if reference is None or not reference.labelled.any():
                raise ValueError("null_model 'reference' needs a reference window with reads")
            rows = reference.labelled
            self._reference = BinTotals.of(reference.probability[rows], reference.label[rows], spec.bins)

    @property
    def spec(self) -> CalibrationSpec:
        """The spec in force."""
        return self._spec

    def summarise(self, window: Window) -> CalibrationSummary:
        """Compute every calibration statistic of the window's reads (no alerting).

        Raises:
            ValueError: If the window has no reads.
        """
        spec = self._spec
        rows = window.labelled
        if not rows.any():
            raise ValueError("the window has no reads")
        p, y = window.probability[rows], window.label[rows]
        rng = np.random.default_rng(spec.seed)
        totals = BinTotals.of(p, y, spec.bins)
        brier, brier_se = brier_score(p, y)
        return CalibrationSummary(
            reads=int(y.size),
            ece=totals.ece,
            ece_ci=ece_interval(p, y, spec.bins, spec.ci_level, rng, spec.bootstrap_resamples, spec.inner_resamples),
            change=ece_change_test(totals, self._reference, spec.null_resamples, rng),
            brier=brier,
            brier_se=brier_se,
            line=fit_calibration_line(p, y),
            bins=reliability_bins(totals, spec.ci_level),
        )

    def evaluate(self, window: Window) -> Finding:
        """Judge the window's calibration.

        Returns:
            A calibration finding; below ``min_reads`` an info finding saying the evidence is insufficient.
        """
        spec = self._spec
        reads = int(window.labelled.sum())
        if reads < spec.min_reads:
            statistic = Statistic(name="reads", value=float(reads), n=reads, note="insufficient evidence")
            text = f"calibration: insufficient evidence ({reads} reads < {spec.min_reads}; {window.maturity})"
            return Finding.for_window(MonitorKind.CALIBRATION, window, [statistic], text, spec.ref)
        summary = self.summarise(window)
        statistics = judge([self._change_hypothesis(summary)], spec.alerting)
        statistics.extend(self._descriptive(summary))
        return Finding.for_window(MonitorKind.CALIBRATION, window, statistics, _text(summary, statistics), spec.ref)

    def _change_hypothesis(self, summary: CalibrationSummary) -> Hypothesis:
        change = summary.change
        statistic = Statistic(
            name="ece_increase",
            value=change.increase,
            test=f"ece-resampling-vs-{change.null_model}",
            p_value=change.p_value,
            n=summary.reads,
            note=f"ECE {change.observed:.4f} vs {change.expected:.4f} expected with no change",
        )
        return Hypothesis(statistic, change.increase >= self._spec.min_ece_increase)

    def _descriptive(self, summary: CalibrationSummary) -> list[Statistic]:
        spec = self._spec
        level = spec.ci_level
        ece_severity = (
            limit_severity(summary.ece, math.nan, spec.max_ece, higher_is_worse=True)
            if spec.max_ece is not None
            else None
        )
        ece = Statistic(
            name="ece",
            value=summary.ece,
            test="double-bootstrap-basic",
            ci_low=summary.ece_ci.low,
            ci_high=summary.ece_ci.high,
            ci_level=level,
            limit=spec.max_ece,
            n=summary.reads,
        )
        if ece_severity is not None:
            ece = replace(ece, severity=ece_severity)
        z = normal_quantile(0.5 + level / 2.0)
        statistics = [
            ece,
            Statistic(
                name="brier",
                value=summary.brier,
                test="normal",
                ci_low=summary.brier - z * summary.brier_se,
                ci_high=summary.brier + z * summary.brier_se,
                ci_level=level,
                n=summary.reads,
            ),
        ]
        line = summary.line
        for parameter, value in (("slope", line.slope), ("intercept", line.intercept)):
            low, high = line.interval(parameter, level)
            statistics.append(
                Statistic(
                    name=f"calibration_{parameter}",
                    value=value,
                    test="logistic-wald",
                    ci_low=low,
                    ci_high=high,
                    ci_level=level,
                    n=line.n,
                )
            )
        statistics.extend(
            Statistic(
                name="reliability_bin",
                value=b.observed_rate,
                test="wilson",
                ci_low=b.ci_low,
                ci_high=b.ci_high,
                ci_level=level,
                feature=f"probability[{b.lower:.2f},{b.upper:.2f})",
                n=b.count,
                note=f"mean predicted {b.mean_probability:.3f}",
            )
            for b in summary.bins
            if b.count > 0
        )
        return statistics


def _text(summary: CalibrationSummary, statistics: list[Statistic]) -> str:
    change = statistics[0]
    low, high = summary.ece_ci.low, summary.ece_ci.high
    severity = max((s.severity for s in statistics), key=lambda s: s.rank)
    return (
        f"calibration {severity}: ECE {summary.ece:.3f} (CI {low:.3f}-{high:.3f}), "
        f"{change.value:+.3f} vs no-change expectation (p={change.p_value:.2g}); "
        f"slope {summary.line.slope:.2f}, intercept {summary.line.intercept:+.2f}; {summary.reads} reads"
    )
