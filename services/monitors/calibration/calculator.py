"""The calibration calculator: ECE with CI, reliability bins, Brier score, calibration line, change test.

Reads are the labels. Two tests form the alert family (Holm over both): the ECE change test of
:func:`kernel.calibration.ece_change_test` against the reference's read-labelled calibration (the null's
reference's rows reweighted to the prevalence the window's raw scores and reads imply, so a
prevalence change alone is not miscalibration, while served probabilities that moved are), and a two-sided Wald test of
the calibration slope (logistic fit of the read on the logit of the served probability) against the
reference's reads fitted the same way: reads are noisy, so both slopes sit well below 1, and only their
difference is judged. A wrong temperature scales every logit and so the slope; a prevalence change moves
calibration-in-the-large, reported on its own and at most as a warning. The ECE's interval and the
policy limit ``max_ece`` are reported beside them.

Before any read arrives, the served probabilities are checked against the calibration map the reference was
built with: the reference holds each study's raw logit and the probability served for it, so it fixes the
temperature ``T`` of ``p = sigmoid(logit / T)``. A block whose served probabilities imply another temperature
(a wrong ``calibration.json`` at a gateway, a stale calibrator) is miscalibrated for every patient it serves,
whatever the reads say; reads are a poor witness of it anyway, as read error flattens a probability scale
much as a doubled temperature does. The check counts predictions whose implied temperature is off by more
than ``map_tolerance`` (relative) and tests that count against a one-in-a-thousand allowance for rounding
(exact binomial tail), so one odd row is no alarm and a whole block is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import binom

from kernel.calibration import (
    BinTotals,
    EceChangeTest,
    EceInterval,
    ReliabilityBin,
    bin_index,
    brier_score,
    ece_change_test,
    ece_interval,
    reliability_bins,
)
from kernel.calibration_line import CalibrationLine, fit_calibration_line
from kernel.distributions import normal_quantile, normal_sf
from services.monitors.alerting.policy import Hypothesis, judge, limit_severity
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.label_shift import prevalence_shift
from services.monitors.core.window import FloatArray, Window


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
    totals: BinTotals | None = None


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
        self._reference_line: CalibrationLine | None = None
        self._reference_window: Window | None = None
        if spec.null_model == "reference":
            if reference is None or not reference.labelled.any():
                raise ValueError("null_model 'reference' needs a reference window with reads")
            rows = reference.labelled
            self._reference = BinTotals.of(reference.probability[rows], reference.label[rows], spec.bins)
            self._reference_line = fit_calibration_line(reference.probability[rows], reference.label[rows])
            self._reference_window = reference
        self._temperature = _implied_temperature(reference, spec.map_tolerance) if reference is not None else None

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
            change=ece_change_test(totals, self._null_reference(window), spec.null_resamples, rng),
            brier=brier,
            brier_se=brier_se,
            line=fit_calibration_line(p, y),
            bins=reliability_bins(totals, spec.ci_level),
            totals=totals,
        )

    def evaluate(self, window: Window) -> Finding:
        """Judge the window's calibration.

        Returns:
            A calibration finding; below ``min_reads`` an info finding saying the evidence is insufficient.
        """
        spec = self._spec
        reads = int(window.labelled.sum())
        served = self._served_map(window)
        if reads < spec.min_reads:
            statistic = Statistic(name="reads", value=float(reads), n=reads, note="insufficient evidence")
            text = f"calibration: insufficient evidence ({reads} reads < {spec.min_reads}; {window.maturity})"
            if served is not None and served.severity is not Severity.INFO:
                text = f"calibration: {served.note} ({reads} reads, too few for the read-based tests)"
            checks = [statistic] if served is None else [served, statistic]
            return Finding.for_window(MonitorKind.CALIBRATION, window, checks, text, spec.ref)
        summary = self.summarise(window)
        hypotheses = [self._change_hypothesis(summary)]
        slope = self._slope_hypothesis(summary)
        if slope is not None:
            hypotheses.append(slope)
        statistics = judge(hypotheses, spec.alerting)
        if served is not None:
            statistics.insert(0, served)
        in_the_large = self._in_the_large(summary)
        if in_the_large is not None:
            statistics.append(in_the_large)
        statistics.extend(self._descriptive(summary))
        return Finding.for_window(MonitorKind.CALIBRATION, window, statistics, _text(summary, statistics), spec.ref)

    def _served_map(self, window: Window) -> Statistic | None:
        """Whether the served probabilities follow the reference's calibration map (None: nothing to check)."""
        reference_temperature = self._temperature
        if reference_temperature is None:
            return None
        implied = implied_temperatures(window)
        n = int(implied.size)
        if n < self._spec.map_min_predictions:
            return None
        off = int(np.count_nonzero(np.abs(implied / reference_temperature - 1.0) > self._spec.map_tolerance))
        p_value = float(binom.sf(off - 1, n, _MAP_ALLOWANCE)) if off > 0 else 1.0
        median = float(np.median(implied))
        limit = self._spec.alerting.alpha_breach
        severity = Severity.BREACH if p_value <= limit else Severity.INFO
        return Statistic(
            name="served_temperature_ratio",
            value=median / reference_temperature,
            test="calibration map: exact binomial count of predictions off the reference's temperature",
            p_value=p_value,
            n=n,
            severity=severity,
            note=(
                f"{off} of {n} served probabilities off the reference's calibration map; implied temperature "
                f"{median:.3f} vs {reference_temperature:.3f}"
            ),
        )

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

    def _null_reference(self, window: Window) -> BinTotals | None:
        """The reference's bins as the ECE test's null sees them: reweighted to the window's prevalence.

        Under label shift each reference row counts with its weight (``prevalence_shift``: the posterior of a
        nodule given its score and read, at the window's EM-estimated prevalence), so every bin's positive-read
        rate is what an unchanged model would show at that prevalence, read error included (it is not one
        log-odds offset of the reference's rates: the readers' false alarms keep a floor under low bins). Each
        bin's totals are scaled to its Kish effective size, so the null's Beta draws keep the reweighted
        reference's own uncertainty.
        """
        reference = self._reference_window
        if not self._spec.match_prevalence or reference is None or self._reference is None:
            return self._reference
        rows = reference.labelled
        weights = prevalence_shift(reference, window).weights[rows]
        p, y = reference.probability[rows], reference.label[rows]
        bins = self._spec.bins
        index = bin_index(p, bins)
        weight_sum = np.bincount(index, weights=weights, minlength=bins)
        square_sum = np.bincount(index, weights=weights * weights, minlength=bins)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(square_sum > 0.0, weight_sum / square_sum, 0.0)  # effective size / weight sum
        return BinTotals(
            count=weight_sum * scale,
            probability_sum=np.bincount(index, weights=weights * p, minlength=bins) * scale,
            label_sum=np.bincount(index, weights=weights * y, minlength=bins) * scale,
        )

    def _slope_hypothesis(self, summary: CalibrationSummary) -> Hypothesis | None:
        """Two-sided Wald test of the calibration slope against the reference's (independent samples)."""
        reference, line = self._reference_line, summary.line
        if reference is None or not (math.isfinite(reference.slope) and math.isfinite(line.slope)):
            return None
        se = math.hypot(line.slope_se, reference.slope_se)
        if not se > 0.0:
            return None
        p_value = float(2.0 * normal_sf(abs(line.slope - reference.slope) / se))
        ratio = line.slope / reference.slope if reference.slope else math.nan
        statistic = Statistic(
            name="calibration_slope_change",
            value=line.slope - reference.slope,
            test="wald-two-sided-vs-reference",
            p_value=p_value,
            n=line.n,
            note=f"slope {line.slope:.3f} vs reference {reference.slope:.3f} (ratio {ratio:.2f})",
        )
        return Hypothesis(statistic, math.isfinite(ratio) and abs(ratio - 1.0) >= self._spec.min_slope_change)

    def _in_the_large(self, summary: CalibrationSummary) -> Statistic | None:
        """Positive reads observed vs expected under the reference's calibration: what a prevalence change
        moves. At most a warning, and said to be consistent with a prevalence change when the shape holds."""
        reference = self._reference
        if reference is None or summary.totals is None:
            return None
        window = summary.totals
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(reference.count > 0, reference.label_sum / reference.count, np.nan)
            fallback = np.where(window.count > 0, window.probability_sum / window.count, 0.0)
        rate = np.where(np.isfinite(rate), rate, fallback)
        expected = float((window.count * rate).sum())
        variance = float((window.count * rate * (1.0 - rate)).sum())
        observed = float(window.label_sum.sum())
        if not variance > 0.0:
            return None
        z = (observed - expected) / math.sqrt(variance)
        p_value = float(2.0 * normal_sf(abs(z)))
        severity = self._spec.alerting.severity(p_value, True)
        if severity is Severity.BREACH:
            severity = Severity.WARNING
        return Statistic(
            name="calibration_in_the_large",
            value=(observed - expected) / summary.reads,
            test="binomial-z-two-sided-vs-reference",
            p_value=p_value,
            n=summary.reads,
            severity=severity,
            secondary=True,
            note=(
                f"{observed:.0f} positive reads vs {expected:.1f} expected from the reference's calibration; "
                "a shift of calibration-in-the-large alone is what a prevalence change does (not a model "
                "failure), at most a warning"
            ),
        )

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


#: Share of predictions allowed off the calibration map with nothing wrong (rounding of stored probabilities).
_MAP_ALLOWANCE = 1e-3
#: Only logits this far from 0 and probabilities this far from 0 and 1 pin the temperature down precisely.
_MAP_MIN_LOGIT = 0.5
_MAP_MIN_PROBABILITY = 1e-4


def implied_temperatures(window: Window) -> FloatArray:
    """The temperature each prediction was served at, ``logit / log(p / (1 - p))``, over the predictions where
    both pin it down (logit away from 0, probability away from 0 and 1)."""
    score, probability = window.score, window.probability
    usable = (
        np.isfinite(score)
        & np.isfinite(probability)
        & (np.abs(score) >= _MAP_MIN_LOGIT)
        & (probability > _MAP_MIN_PROBABILITY)
        & (probability < 1.0 - _MAP_MIN_PROBABILITY)
    )
    p = probability[usable]
    served_logit = np.log(p / (1.0 - p))
    keep = np.abs(served_logit) > 1e-6
    return np.asarray(score[usable][keep] / served_logit[keep], dtype=np.float64)


def _implied_temperature(reference: Window, tolerance: float) -> float | None:
    """The reference's temperature (median over its predictions), or None when it cannot be told or when the
    reference's own probabilities do not follow one temperature (a calibration other than temperature scaling,
    which this check does not cover)."""
    implied = implied_temperatures(reference)
    implied = implied[np.isfinite(implied) & (implied > 0.0)]
    if implied.size < 10:
        return None
    temperature = float(np.median(implied))
    off = np.count_nonzero(np.abs(implied / temperature - 1.0) > tolerance)
    return temperature if off <= _MAP_ALLOWANCE * implied.size else None
