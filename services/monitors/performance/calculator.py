"""The performance calculator: realised AUROC, sensitivity, specificity, PPV and override rate as reads arrive.

Override rate needs only the read's verdict, so it moves first: it is the earliest clinical signal. Every
finding states the label maturity (reads / predictions) — early in a window the metrics describe only the
studies read so far, which may not be representative (fast reads are often the easy ones).

Against the reference, the baseline is the reference reweighted to the window's prevalence (label shift,
:mod:`services.monitors.core.label_shift`): reads are imperfect, so at a lower prevalence more of the
read-positives are readers' false alarms and read-labelled sensitivity falls with the model unchanged. The
prevalence change itself is reported (``prevalence_ratio``, at most a warning) and the summary says so,
instead of a sensitivity breach. While reads are pending, confidence-based estimates (CBPE) of
sensitivity, specificity and AUROC are reported, marked as estimates, until the reads mature.
"""

from __future__ import annotations

import math
from dataclasses import replace

from services.monitors.alerting.policy import Hypothesis, judge, limit_severity
from services.monitors.core.classification import (
    GroupPerformance,
    degradation,
    group_performance,
    metric_statistics,
    scores_by_label,
)
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.label_shift import PrevalenceShift, confidence_estimates, prevalence_shift
from services.monitors.core.window import Window
from services.monitors.performance.spec import PerformanceSpec


class PerformanceMonitor:
    """Realised performance of windows against a baseline (the reference, or the stable arm's window)."""

    def __init__(self, reference: Window, spec: PerformanceSpec) -> None:
        """Evaluate the reference once.

        Args:
            reference: The version's reference window (reads; decisions for proportion metrics).
            spec: The performance spec.
        """
        self._spec = spec
        self._reference = reference
        self._reference_performance = group_performance(reference, None, spec.ci_level)

    @property
    def spec(self) -> PerformanceSpec:
        """The spec in force."""
        return self._spec

    def evaluate(self, window: Window, comparator: Window | None = None) -> Finding:
        """Judge the window's realised performance.

        Args:
            window: Current traffic with the reads that have arrived.
            comparator: Baseline to test against instead of the reference (e.g. the stable arm over the
                same period, for a canary gate).

        Returns:
            A performance finding (insufficient evidence below ``min_reads``).
        """
        spec = self._spec
        maturity = window.maturity
        maturity_statistic = Statistic(
            name="label_maturity", value=maturity.fraction, n=maturity.total, note=str(maturity)
        )
        estimates = self._estimates(window) if maturity.fraction < spec.estimate_below_maturity else []
        if maturity.labelled < spec.min_reads:
            statistic = replace(maturity_statistic, note=f"insufficient evidence; {maturity}")
            summary = f"performance: insufficient evidence ({maturity.labelled} reads < {spec.min_reads})"
            if estimates:
                summary += "; " + _estimate_text(estimates)
            return Finding.for_window(MonitorKind.PERFORMANCE, window, [statistic, *estimates], summary, spec.ref)
        current = group_performance(window, None, spec.ci_level)
        shift_statistics: list[Statistic] = []
        if comparator is None:
            baseline, baseline_window = self._reference_performance, self._reference
            if spec.adjust_prevalence and self._reference.labelled.any():
                shift = prevalence_shift(self._reference, window)
                baseline = group_performance(self._reference, None, spec.ci_level, weights=shift.weights)
                shift_statistics.append(self._prevalence_statistic(shift, len(window)))
        else:
            baseline, baseline_window = group_performance(comparator, None, spec.ci_level), comparator
        statistics = [
            maturity_statistic,
            *self._with_limits(metric_statistics(current, "", spec.ci_level), window),
            *shift_statistics,
            *estimates,
        ]
        current_scores = scores_by_label(window, window.labelled, sort=False)
        baseline_scores = scores_by_label(baseline_window, baseline_window.labelled, sort=True)
        hypotheses = []
        for metric in spec.alert_metrics:
            result = degradation(
                metric,
                current,
                baseline,
                current_scores=current_scores,
                baseline_sorted_scores=baseline_scores,
                method=spec.degradation_test,
            )
            statistic = Statistic(
                name=f"{metric}_change",
                value=result.change,
                test=result.test,
                p_value=result.p_value,
                n=current[metric].n,
                note=f"vs {baseline_window.arm} {baseline[metric].value:.3f}",
            )
            worsening = result.worsening
            material = math.isfinite(worsening) and worsening >= spec.min_worsening.get(metric, 0.0)
            hypotheses.append(Hypothesis(statistic, material))
        statistics.extend(judge(hypotheses, spec.alerting))
        return Finding.for_window(
            MonitorKind.PERFORMANCE, window, statistics, _summary(current, statistics, maturity.fraction), spec.ref
        )

    def _prevalence_statistic(self, shift: PrevalenceShift, n: int) -> Statistic:
        """The window's prevalence against the reference's: a case-mix finding, never a model failure."""
        spec = self._spec
        ratio = shift.ratio
        material = math.isfinite(ratio) and abs(ratio - 1.0) >= spec.min_prevalence_change
        severity = Severity.WARNING if material else Severity.INFO
        return Statistic(
            name="prevalence_ratio",
            value=ratio,
            test="em-label-shift",
            n=n,
            severity=severity,
            note=(
                f"estimated prevalence {shift.window_prevalence:.3f} vs reference {shift.reference_prevalence:.3f}; "
                "baseline reweighted to it (a prevalence or case-mix change, not a model failure)"
            ),
        )

    def _estimates(self, window: Window) -> list[Statistic]:
        """CBPE estimates of the whole window's read-labelled metrics, marked as estimates."""
        spec = self._spec
        return [
            Statistic(
                name=f"{estimate.metric}_estimate",
                value=estimate.value,
                test="cbpe",
                ci_low=estimate.ci_low,
                ci_high=estimate.ci_high,
                ci_level=spec.ci_level,
                n=estimate.n,
                note="estimate from calibrated probabilities while reads are pending; replaced by realised "
                f"metrics as reads mature ({window.maturity})",
            )
            for estimate in confidence_estimates(self._reference, window, spec.ci_level, seed=spec.seed)
        ]

    def _with_limits(self, statistics: list[Statistic], window: Window) -> list[Statistic]:
        spec = self._spec
        if not (spec.minimum or spec.maximum):
            return statistics
        # Breach bounds are one-sided at 1 - alpha_breach: a two-sided interval at 1 - 2 alpha_breach.
        strict = group_performance(window, None, 1.0 - 2.0 * spec.alerting.alpha_breach)
        limited = []
        for statistic in statistics:
            metric = statistic.name
            severity, limit = Severity.INFO, None
            if metric in spec.minimum:
                limit = spec.minimum[metric]
                severity = limit_severity(statistic.value, strict[metric].ci_high, limit, higher_is_worse=False)
            elif metric in spec.maximum:
                limit = spec.maximum[metric]
                severity = limit_severity(statistic.value, strict[metric].ci_low, limit, higher_is_worse=True)
            limited.append(replace(statistic, limit=limit, severity=severity))
        return limited


def _estimate_text(estimates: list[Statistic]) -> str:
    parts = [f"{s.name.removesuffix('_estimate')} {s.value:.3f} ({s.ci_low:.3f}-{s.ci_high:.3f})" for s in estimates]
    return "estimated (CBPE): " + ", ".join(parts)


def _summary(current: GroupPerformance, statistics: list[Statistic], maturity: float) -> str:
    severity = Severity.highest(s.severity for s in statistics)
    auroc, sens, spec, override = (current[m] for m in ("auroc", "sensitivity", "specificity", "override_rate"))
    worse = [s.name.removesuffix("_change") for s in statistics if s.name.endswith("_change") and s.severity.rank]
    text = (
        f"performance {severity}: AUROC {auroc.value:.3f}, sensitivity {sens.value:.3f}, "
        f"specificity {spec.value:.3f}, override rate {override.value:.3f}; labels {maturity:.0%} mature"
    )
    prevalence = [s for s in statistics if s.name == "prevalence_ratio" and s.severity.rank]
    if prevalence:
        text += f"; prevalence changed (x{prevalence[0].value:.2f} vs reference), not a model failure"
    return f"{text}; worse than baseline: {', '.join(worse)}" if worse else text
