"""The subgroup bias calculator: per-subgroup performance with CIs, gaps, and degradation tests.

For each subgroup with enough reads: sensitivity, specificity, PPV, AUROC and override rate with intervals
(Wilson; DeLong for AUROC), the gap to the overall value (Newcombe interval), the difference to the stable
version when its window is given, and — for the spec's alert metrics — a one-sided test that the subgroup
got worse than the same subgroup in the reference. Subgroups below the minimum evidence are listed as
insufficient evidence (info), never as alarms.

Two families, declared before looking at the data (the spec's ``breach_metrics``):

- primary: the degradation tests of the breach metrics (sensitivity by default: a missed nodule is the harm
  a subgroup audit exists for) across every tested subgroup. Holm-adjusted together; they alone can
  breach. With 17 subgroups Holm at ``alpha_breach`` = 0.01 keeps the share of no-change windows with a
  breach at most 1% (measured: see tests/unit/monitors_stats/test_bias.py) while a 10-point drop in one
  subgroup with 150 read-positives is detectable; one family of all 34 tests at 0.001 was not (the
  smallest raw p-value of such a drop is typically 1e-4 to 3e-3, and would need to be below 3e-5).
- secondary: the other alert metrics (specificity by default), Holm-adjusted as their own family and
  capped at warning: a subgroup recalled more often is worth a look, not a board alarm.

Sequential evidence. A runner block of 500 predictions holds only a dozen or two read-positives of a
subgroup such as men aged 50-69, too few for the window tests above (``min_positives``), so on their own a
subgroup's missed nodules would never reach the runner's chart. For each breach metric (sensitivity) the
monitor therefore also reports, per subgroup, a one-sided z of the block's detected read-positives against
the count the reference predicts, beyond a margin of ``c`` (``reference_margin_sd``) standard errors of the
reference's own estimate, ``z = (n s0 - x - c n sqrt(s0 (1 - s0) / n_ref)) / sqrt(n s0 (1 - s0))``
(:func:`drop_evidence`), marked ``sequential``: the runner's chart of that subgroup sums these block by block
(a CUSUM), so evidence accumulates over blocks however few reads each holds. The reference's error is the
same in every block, so a chart would sum it like a change; the margin, not a per-block variance term, is
what keeps it out. ``s0`` is the subgroup's read-labelled sensitivity in
the reference reweighted to the block's prevalence (label shift, :mod:`services.monitors.core.label_shift`):
at a lower prevalence a larger share of read-positives are readers' false alarms, which the model rightly
calls negative, and the unadjusted comparison would call that a sensitivity loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from kernel.distributions import normal_quantile, normal_sf
from kernel.intervals import newcombe_interval
from services.monitors.alerting.policy import Hypothesis, judge, limit_severity
from services.monitors.bias.spec import BiasSpec
from services.monitors.bias.subgroups import Subgroup, enumerate_subgroups
from services.monitors.core.classification import (
    HIGHER_IS_WORSE,
    METRICS,
    GroupPerformance,
    degradation,
    group_performance,
    metric_statistics,
    scores_by_label,
)
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.label_shift import prevalence_shift
from services.monitors.core.window import Window

#: Proportion metrics the sequential evidence can be built for: (label the metric is conditioned on, the
#: decision counted as a success).
_SEQUENTIAL: dict[str, tuple[float, float]] = {"sensitivity": (1.0, 1.0), "specificity": (0.0, 0.0)}

_PROPORTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    # metric: (successes, the counts whose sum is the denominator)
    "sensitivity": ("tp", ("tp", "fn")),
    "specificity": ("tn", ("tn", "fp")),
    "ppv": ("tp", ("tp", "fp")),
    "override_rate": ("overrides", ("reads",)),
}


def _fraction(metric: str, counts: dict[str, float]) -> tuple[float, float]:
    successes, denominator = _PROPORTIONS[metric]
    return counts[successes], sum(counts[name] for name in denominator)


@dataclass(frozen=True)
class _ReferenceGroup:
    performance: GroupPerformance
    sorted_scores: Callable[[float], NDArray[np.float64]]


class BiasMonitor:
    """Subgroup performance of windows against one reference.

    Example:
        >>> monitor = BiasMonitor(reference_window, BiasSpec(name="chest-bias"))
        >>> finding = monitor.evaluate(canary_window, stable=stable_window)
    """

    def __init__(self, reference: Window, spec: BiasSpec) -> None:
        """Keep the reference; its subgroups are evaluated once each, on first use.

        Args:
            reference: The version's reference window (with reads; decisions for proportion metrics).
            spec: The bias spec.
        """
        self._reference = reference
        self._spec = spec
        self._groups: dict[Subgroup, _ReferenceGroup] = {}
        self._evidence_rows: dict[Subgroup | None, NDArray[np.bool_]] = {}

    @property
    def spec(self) -> BiasSpec:
        """The spec in force."""
        return self._spec

    def _reference_group(self, subgroup: Subgroup) -> _ReferenceGroup:
        if subgroup not in self._groups:
            rows = subgroup.rows(self._reference)
            self._groups[subgroup] = _ReferenceGroup(
                performance=group_performance(self._reference, rows, self._spec.ci_level),
                sorted_scores=scores_by_label(self._reference, rows & self._reference.labelled, sort=True),
            )
        return self._groups[subgroup]

    def evaluate(self, window: Window, stable: Window | None = None) -> Finding:
        """Judge every subgroup of ``window``.

        Args:
            window: Current traffic of the version, with the reads that have arrived.
            stable: The stable version's window over the same period, for per-subgroup differences.

        Returns:
            A bias finding.
        """
        spec = self._spec
        level = spec.ci_level
        overall = group_performance(window, None, level)
        statistics = metric_statistics(overall, "", level)
        against = f"vs stable version {stable.model_version} over the same period" if stable is not None else ""
        if stable is not None:
            statistics.extend(_versus_stable(overall, group_performance(stable, None, level), "", level, against))
        subgroups = enumerate_subgroups(window, spec.attributes, spec.intersections)
        hypotheses: list[Hypothesis] = []
        for subgroup in subgroups:
            rows = subgroup.rows(window)
            performance = group_performance(window, rows, level)
            if performance.positives < spec.min_positives or performance.negatives < spec.min_negatives:
                statistics.append(_insufficient(subgroup.name, performance, "window"))
                continue
            statistics.extend(metric_statistics(performance, subgroup.name, level))
            statistics.extend(self._gaps(performance, overall, subgroup.name, len(subgroups)))
            if stable is not None:
                stable_performance = group_performance(stable, subgroup.rows(stable), level)
                statistics.extend(_versus_stable(performance, stable_performance, subgroup.name, level, against))
            reference = self._reference_group(subgroup)
            if not self._enough_reference(reference.performance):
                statistics.append(_insufficient(subgroup.name, reference.performance, "reference"))
                continue
            current_scores = scores_by_label(window, rows & window.labelled, sort=False)
            hypotheses.extend(self._degradations(performance, reference, current_scores, subgroup.name))
        statistics.extend(self._judge(hypotheses))
        statistics.extend(self._sequential_evidence(window, subgroups))
        finding_statistics = tuple(statistics)
        return Finding.for_window(
            MonitorKind.BIAS, window, finding_statistics, _summary(finding_statistics, len(subgroups)), spec.ref
        )

    def _reference_rows(self, subgroup: Subgroup | None) -> NDArray[np.bool_]:
        """The reference's read and decided rows of ``subgroup`` (all of them for None), computed once."""
        if subgroup not in self._evidence_rows:
            reference = self._reference
            rows = reference.labelled & np.isfinite(reference.decision)
            self._evidence_rows[subgroup] = rows if subgroup is None else rows & subgroup.rows(reference)
        return self._evidence_rows[subgroup]

    def _sequential_evidence(self, window: Window, subgroups: list[Subgroup]) -> list[Statistic]:
        """Per subgroup and breach metric: the block's one-sided z against the prevalence-adjusted reference."""
        spec = self._spec
        metrics = [metric for metric in spec.breach_metrics if metric in _SEQUENTIAL]
        reference = self._reference
        if not metrics or not window.labelled.any() or not reference.labelled.any():
            return []
        weights = prevalence_shift(reference, window).weights
        evidence: list[Statistic] = []
        for subgroup in [None, *subgroups]:
            name = "" if subgroup is None else subgroup.name
            window_rows = window.labelled & np.isfinite(window.decision)
            reference_rows = self._reference_rows(subgroup)
            if subgroup is not None:
                window_rows &= subgroup.rows(window)
            for metric in metrics:
                label, success = _SEQUENTIAL[metric]
                current = window_rows & (window.label == label)
                n = int(np.count_nonzero(current))
                base = reference_rows & (reference.label == label)
                w = weights[base]
                if n < spec.sequential_min_reads or w.size < spec.min_reference or not w.sum() > 0.0:
                    continue
                x = float(np.count_nonzero(window.decision[current] == success))
                expected = float(np.sum(w * (reference.decision[base] == success)) / w.sum())
                n_reference = float(w.sum() ** 2 / np.sum(w * w))  # effective size of the reweighted reference
                shortfall = drop_evidence(x, n, expected, n_reference, spec.reference_margin_sd)
                evidence.append(
                    Statistic(
                        name=f"{metric}_evidence",
                        value=x / n - expected,
                        test="one-sided z vs prevalence-adjusted reference, beyond its margin (sequential)",
                        p_value=float(normal_sf(shortfall)),
                        subgroup=name,
                        n=n,
                        note=(
                            f"{x:.0f}/{n} vs {expected:.3f} expected at this block's prevalence; reference "
                            f"margin {spec.reference_margin_sd:g} SE of {n_reference:.0f} effective reads"
                        ),
                        sequential=True,
                    )
                )
        return evidence

    def _judge(self, hypotheses: list[Hypothesis]) -> list[Statistic]:
        """Severities of the primary family (may breach) and of the secondary family (at most warning)."""
        breach_names = {f"{metric}_change" for metric in self._spec.breach_metrics}
        primary = [h for h in hypotheses if h.statistic.name in breach_names]
        secondary = [h for h in hypotheses if h.statistic.name not in breach_names]
        judged = judge(primary, self._spec.alerting) if primary else []
        for statistic in judge(secondary, self._spec.alerting) if secondary else []:
            note = f"{statistic.note}; secondary family (at most warning)".lstrip("; ")
            severity = Severity.WARNING if statistic.severity is Severity.BREACH else statistic.severity
            judged.append(replace(statistic, severity=severity, note=note, secondary=True))
        return judged

    def _enough_reference(self, reference: GroupPerformance) -> bool:
        spec = self._spec
        # Rank tests need reads only; proportion tests also need the reference's decisions.
        if spec.degradation_test == "rank":
            classes = (reference.auroc.positives, reference.auroc.negatives)
        else:
            classes = (reference.positives, reference.negatives)
        return min(classes) >= spec.min_reference

    def _degradations(
        self,
        performance: GroupPerformance,
        reference: _ReferenceGroup,
        current_scores: Callable[[float], NDArray[np.float64]],
        subgroup: str,
    ) -> list[Hypothesis]:
        spec = self._spec
        hypotheses = []
        for metric in spec.alert_metrics:
            result = degradation(
                metric,
                performance,
                reference.performance,
                current_scores=current_scores,
                baseline_sorted_scores=reference.sorted_scores,
                method=spec.degradation_test,
            )
            statistic = Statistic(
                name=f"{metric}_change",
                value=result.change,
                test=result.test,
                p_value=result.p_value,
                subgroup=subgroup,
                n=performance[metric].n,
                note=f"vs reference {reference.performance[metric].value:.3f}",
            )
            material = math.isfinite(result.worsening) and result.worsening >= spec.min_worsening
            hypotheses.append(Hypothesis(statistic, material))
        return hypotheses

    def _gaps(
        self, performance: GroupPerformance, overall: GroupPerformance, subgroup: str, family: int
    ) -> list[Statistic]:
        spec = self._spec
        level = spec.ci_level
        # The breach bound is one-sided at 1 - alpha_breach / family (Bonferroni over subgroups).
        breach_level = 1.0 - 2.0 * spec.alerting.alpha_breach / max(family, 1)
        gaps = []
        for metric in METRICS:
            gap = performance[metric].value - overall[metric].value
            limit = spec.max_gap.get(metric)
            low = high = bound = math.nan
            if metric in _PROPORTIONS:
                x, n = _fraction(metric, performance.counts)
                x_all, n_all = _fraction(metric, overall.counts)
                if n_all > n > 0:
                    # subgroup - overall = (1 - w)(subgroup - rest) with w = n / n_all, and subgroup and rest
                    # are independent, so the Newcombe interval of the latter scales to the former.
                    scale = 1.0 - n / n_all
                    lo, hi = newcombe_interval(x, n, x_all - x, n_all - n, level)
                    low, high = scale * float(lo), scale * float(hi)
                    lo_b, hi_b = newcombe_interval(x, n, x_all - x, n_all - n, breach_level)
                    bound = scale * float(lo_b if metric in HIGHER_IS_WORSE else hi_b)
            worse = metric in HIGHER_IS_WORSE
            severity = Severity.INFO
            if limit is not None:
                # Limits are on the gap in the worse direction: -gap for metrics where lower is worse.
                signed = 1.0 if worse else -1.0
                severity = limit_severity(signed * gap, signed * bound, limit, higher_is_worse=True)
            gaps.append(
                Statistic(
                    name=f"{metric}_gap",
                    value=gap,
                    test="newcombe" if metric in _PROPORTIONS else "",
                    ci_low=low if math.isfinite(low) else None,
                    ci_high=high if math.isfinite(high) else None,
                    ci_level=level if math.isfinite(low) else None,
                    subgroup=subgroup,
                    limit=limit,
                    severity=severity,
                    n=performance[metric].n,
                    note="vs overall",
                )
            )
        return gaps


def drop_evidence(x: float, n: int, expected: float, n_reference: float, margin_sd: float) -> float:
    """A block's one-sided z for "the proportion dropped" beyond what the reference's own error explains.

    ``z = (n e - x - c sigma_ref) / sqrt(n e (1 - e))`` with ``sigma_ref = n sqrt(e (1 - e) / n_ref)``: the
    block's binomial shortfall against the reference's proportion ``e``, less ``c`` standard errors of the
    count that ``e``'s own sampling error (``n_ref`` effective reads) would shift. That error is the same in
    every block, a persistent offset of ``sqrt(n / n_ref)`` standard deviations per block that a chart adds
    up; the margin covers it whenever the reference's ``e`` is within ``c`` standard errors of the truth.
    Large z is evidence of a drop (its p-value is ``normal_sf(z)``); 0 when the block has no variance.

    Args:
        x: Successes in the block (detected read-positives for sensitivity).
        n: Trials in the block (read-positives).
        expected: The reference's proportion ``e`` at the block's prevalence.
        n_reference: Effective number of the reference's trials behind ``e``.
        margin_sd: ``c``, the margin in standard errors of the reference's proportion.

    Example:
        >>> round(drop_evidence(14.0, 20, 0.8, 2000.0, 2.0), 3)
        0.918
    """
    spread = expected * (1.0 - expected)
    if not spread > 0.0 or n <= 0:
        return 0.0
    margin = margin_sd * n * math.sqrt(spread / n_reference)
    return (n * expected - x - margin) / math.sqrt(n * spread)


def _versus_stable(
    performance: GroupPerformance, stable: GroupPerformance, subgroup: str, level: float, note: str
) -> list[Statistic]:
    statistics = []
    for metric in METRICS:
        difference = performance[metric].value - stable[metric].value
        if metric in _PROPORTIONS:
            x, n = _fraction(metric, performance.counts)
            x0, n0 = _fraction(metric, stable.counts)
            lo, hi = newcombe_interval(x, n, x0, n0, level)
            low, high, test = float(lo), float(hi), "newcombe"
        else:
            se = math.sqrt(performance.auroc.variance + stable.auroc.variance)
            z = normal_quantile(0.5 + level / 2.0)
            low, high, test = difference - z * se, difference + z * se, "delong"
        finite = math.isfinite(low) and math.isfinite(high)
        statistics.append(
            Statistic(
                name=f"{metric}_vs_stable",
                value=difference,
                test=test,
                ci_low=low if finite else None,
                ci_high=high if finite else None,
                ci_level=level if finite else None,
                subgroup=subgroup,
                n=performance[metric].n,
                note=note,
            )
        )
    return statistics


def _insufficient(subgroup: str, performance: GroupPerformance, where: str) -> Statistic:
    return Statistic(
        name="subgroup_size" if where == "window" else "reference_subgroup_size",
        value=float(performance.positives + performance.negatives),
        subgroup=subgroup,
        n=performance.positives + performance.negatives,
        note=(
            f"insufficient evidence in the {where}: {performance.positives} read-positives, "
            f"{performance.negatives} read-negatives"
        ),
    )


def _summary(statistics: tuple[Statistic, ...], subgroups: int) -> str:
    severity = Severity.highest(s.severity for s in statistics)
    insufficient = sum(1 for s in statistics if s.note.startswith("insufficient evidence in the window"))
    changes = [s for s in statistics if s.name.endswith("_change") and s.p_value_adjusted is not None]
    gaps = [s for s in statistics if s.name in ("sensitivity_gap", "specificity_gap") and math.isfinite(s.value)]
    parts = [f"bias {severity}: {subgroups} subgroups ({insufficient} with insufficient evidence)"]
    if changes:
        worst = min(changes, key=lambda s: (-s.severity.rank, s.p_value_adjusted or 1.0))
        parts.append(
            f"strongest change: {worst.name.removesuffix('_change')} {worst.value:+.3f} in {worst.subgroup} "
            f"(p_adj={worst.p_value_adjusted:.2g}, {worst.test})"
        )
    if gaps:
        largest = min(gaps, key=lambda s: s.value)
        parts.append(f"largest gap: {largest.name.removesuffix('_gap')} {largest.value:+.3f} in {largest.subgroup}")
    versus = [s for s in statistics if s.name == "sensitivity_vs_stable" and s.subgroup and math.isfinite(s.value)]
    if versus:
        largest = min(versus, key=lambda s: s.value)
        parts.append(f"largest sensitivity gap vs stable: {largest.value:+.3f} in {largest.subgroup}")
    return "; ".join(parts)
