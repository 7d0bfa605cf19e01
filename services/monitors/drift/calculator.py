"""The streaming drift calculator: every column of a window against the version's reference, in milliseconds.

Numeric inputs (image descriptors, embedding components, pixel spacing) and the output score are tested with
two-sample Kolmogorov–Smirnov, over the whole window and within each stratum (e.g. per site, so one site's
new scanner is not averaged away); categorical acquisition metadata with chi-square on category counts.
The tests form three families, each adjusted on its own by the alerting policy (Holm by default), so the
strongest single detector is not diluted by the many weaker ones:

- ``output``: the model's output score, overall and per stratum (the black-box shift detector: a change the
  model reacts to shows here first, whatever input caused it);
- ``inputs``: image descriptors, embedding components, pixel spacing and acquisition metadata;
- ``case_mix``: patient attributes (sex, age band): who is being imaged, watched by default.

A no-change window breaches in at most ``3 x alpha_breach`` of windows (union of three family-wise bounds).

Beside the per-column tests, every scope (the whole window and each stratum) gets one multivariate test of
the numeric inputs' mean (``mean_shift``: Hotelling's T² against the reference's Ledoit–Wolf covariance,
:mod:`services.monitors.drift.mean_shift`), in the ``inputs`` family. The runner's charts judge a block by a
few strong tests per scope rather than by every column (a Bonferroni bound over 15 KS tests of one site
divides a small shift's evidence by 15): the mean-shift test and the output score's KS test of each scope,
and the whole window's category tests. These are marked ``sequential``; the other KS tests are reported for
people (which column moved) and judged per block, but do not feed the charts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from kernel import vocabulary
from kernel.distributions import kolmogorov_smirnov_sf
from services.monitors.alerting.policy import Hypothesis, judge
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.window import FloatArray, Window
from services.monitors.drift.mean_shift import MeanShiftReference
from services.monitors.drift.spec import DriftSpec
from services.monitors.drift.two_sample import CategoryCounts, SortedSample, chi_square_test, ks_statistic

#: Feature name of the output score.
SCORE_FEATURE = "output.score"
_ACQUISITION = vocabulary.ACQUISITION_DIMENSIONS
#: Feature name of the multivariate mean-shift test over the numeric inputs.
INPUTS_FEATURE = "inputs"
#: Test families, each adjusted on its own.
FAMILIES = ("output", "inputs", "case_mix")


def _family(statistic: Statistic) -> str:
    if statistic.feature == SCORE_FEATURE:
        return "output"
    if statistic.feature.startswith("patient."):
        return "case_mix"
    return "inputs"


def attribute_feature(attribute: str) -> str:
    """Feature name reported for a categorical attribute (``acquisition.site``, ``patient.sex``)."""
    return f"acquisition.{attribute}" if attribute in _ACQUISITION else f"patient.{attribute}"


def _numeric_columns(window: Window, names: tuple[str, ...], include_score: bool) -> dict[str, FloatArray]:
    columns = {name: window.features[name] for name in names if name in window.features}
    if include_score:
        columns[SCORE_FEATURE] = window.score
    return columns


@dataclass(frozen=True)
class _Stratum:
    attribute: str
    value: str
    samples: dict[str, SortedSample]
    rows: NDArray[np.bool_]

    @property
    def label(self) -> str:
        return f"{self.attribute}={self.value}"


class DriftMonitor:
    """Drift of windows against one reference, with the reference prepared once.

    Example:
        >>> monitor = DriftMonitor(reference_window, DriftSpec(name="chest-drift"))
        >>> finding = monitor.evaluate(window)
        >>> finding.severity, finding.summary
    """

    def __init__(self, reference: Window, spec: DriftSpec) -> None:
        """Prepare the reference: sorted numeric columns (overall and per stratum) and category counts.

        Args:
            reference: The version's reference window.
            spec: The drift spec.
        """
        self._spec = spec
        names = spec.numeric_features if spec.numeric_features is not None else tuple(sorted(reference.features))
        self._numeric_names = tuple(name for name in names if name in reference.features)
        columns = _numeric_columns(reference, self._numeric_names, spec.include_score)
        self._overall = {name: SortedSample.of(values) for name, values in columns.items()}
        self._reference = reference
        # Mean-shift references by the tuple of input columns a window carries (prepared on first use: the
        # live windows carry the columns every row of the block has, which may be fewer than the reference's).
        self._mean_shift: dict[tuple[str, ...], dict[str, MeanShiftReference | None]] = {}
        self._categories = {
            name: CategoryCounts.of(reference.attributes[name])
            for name in spec.categorical_attributes
            if name in reference.attributes
        }
        self._strata: list[_Stratum] = []
        for attribute in spec.stratify_by:
            if attribute not in reference.attributes:
                continue
            values = reference.attributes[attribute]
            for value in np.unique(values):
                rows = values == value
                if np.count_nonzero(rows) >= spec.min_stratum:
                    samples = {name: SortedSample.of(column[rows]) for name, column in columns.items()}
                    self._strata.append(_Stratum(attribute, str(value), samples, rows))

    @property
    def spec(self) -> DriftSpec:
        """The spec in force."""
        return self._spec

    def evaluate(self, window: Window) -> Finding:
        """Test every configured column of ``window`` against the reference.

        Args:
            window: Current traffic of the version.

        Returns:
            A drift finding: one statistic per test (KS statistic or Cramér's V, raw and adjusted p-values,
            the test named), severity from the alerting policy. A window below ``min_window`` gives an info
            finding saying the evidence is insufficient.
        """
        spec = self._spec
        if len(window) < spec.min_window:
            note = Statistic(name="window_size", value=float(len(window)), n=len(window), note="insufficient evidence")
            summary = f"drift: insufficient evidence ({len(window)} predictions < {spec.min_window})"
            return Finding.for_window(MonitorKind.DRIFT, window, [note], summary, spec.ref)
        hypotheses = self._numeric_hypotheses(window) + self._categorical_hypotheses(window)
        statistics: list[Statistic] = []
        for family in FAMILIES:
            members = [h for h in hypotheses if _family(h.statistic) == family]
            if members:
                judged = judge(members, spec.alerting)
                statistics.extend(replace(s, adjustment=f"{s.adjustment} within {family}".strip()) for s in judged)
        return Finding.for_window(MonitorKind.DRIFT, window, statistics, _summary(statistics), spec.ref)

    def _input_names(self, window: Window) -> tuple[str, ...]:
        """The numeric inputs (not the score) the mean-shift test uses on ``window``: the reference's that it has."""
        if not self._spec.mean_shift:
            return ()
        return tuple(name for name in self._numeric_names if name in window.features)

    def _mean_shift_references(self, names: tuple[str, ...]) -> dict[str, MeanShiftReference | None]:
        """The whole reference's and each stratum's mean-shift reference over the columns ``names``."""
        if names not in self._mean_shift:
            matrix = _matrix(self._reference, names)
            minimum = self._spec.min_stratum
            prepared = {"": MeanShiftReference.of(matrix, minimum)}
            for stratum in self._strata:
                prepared[stratum.label] = MeanShiftReference.of(matrix[stratum.rows], minimum)
            self._mean_shift[names] = prepared
        return self._mean_shift[names]

    def _mean_shift_hypothesis(
        self, reference: MeanShiftReference | None, inputs: FloatArray | None, subgroup: str
    ) -> list[Hypothesis]:
        if reference is None or inputs is None:
            return []
        result = reference.test(inputs)
        if result.n_current == 0:
            return []
        statistic = Statistic(
            name="mean_shift",
            value=result.distance,
            test="hotelling t2, ledoit-wolf covariance (sequential)",
            p_value=result.p_value,
            subgroup=subgroup,
            feature=INPUTS_FEATURE,
            n=result.n_current,
            note=f"T2={result.statistic:.1f} over {result.dof} columns; Mahalanobis distance of the mean",
            sequential=True,
        )
        return [Hypothesis(statistic, result.distance >= self._spec.min_mean_shift)]

    def _numeric_hypotheses(self, window: Window) -> list[Hypothesis]:
        spec = self._spec
        columns = _numeric_columns(window, self._numeric_names, spec.include_score)
        names = self._input_names(window)
        references = self._mean_shift_references(names) if names else {}
        inputs = _matrix(window, names) if names else None
        shifts = self._mean_shift_hypothesis(references.get(""), inputs, "")
        # (feature, subgroup, D, n, m) of every test; p-values are computed in one vectorised call.
        rows: list[tuple[str, str, float, int, int]] = [
            (name, "", *ks_statistic(self._overall[name], values)) for name, values in columns.items()
        ]
        for stratum in self._strata:
            if stratum.attribute not in window.attributes:
                continue
            mask = window.attributes[stratum.attribute] == stratum.value
            if np.count_nonzero(mask) < spec.min_stratum:
                continue
            rows.extend(
                (name, stratum.label, *ks_statistic(stratum.samples[name], values[mask]))
                for name, values in columns.items()
            )
            stratum_inputs = inputs[mask] if inputs is not None else None
            shifts.extend(self._mean_shift_hypothesis(references.get(stratum.label), stratum_inputs, stratum.label))
        if not rows:
            return shifts
        d = np.array([row[2] for row in rows])
        n = np.array([row[3] for row in rows])
        m = np.array([row[4] for row in rows])
        testable = (n > 0) & (m > 0)
        p_values = np.ones(d.size)
        p_values[testable] = kolmogorov_smirnov_sf(d[testable], n[testable], m[testable])
        return [
            Hypothesis(
                Statistic(
                    name="ks_statistic",
                    value=statistic,
                    test="kolmogorov-smirnov",
                    p_value=float(p),
                    subgroup=subgroup,
                    feature=feature,
                    n=size,
                    # The score's KS test is chart evidence of its scope (the model's own view of a change).
                    sequential=feature == SCORE_FEATURE and spec.mean_shift,
                ),
                statistic >= spec.min_ks_statistic,
            )
            for (feature, subgroup, statistic, size, _), p in zip(rows, p_values, strict=True)
        ] + shifts

    def _categorical_hypotheses(self, window: Window) -> list[Hypothesis]:
        hypotheses = []
        for name, counts in self._categories.items():
            if name not in window.attributes:
                continue
            result = chi_square_test(counts, window.attributes[name])
            note = f"new: {', '.join(result.new_categories)}" if result.new_categories else ""
            statistic = Statistic(
                name="cramers_v",
                value=result.cramers_v,
                test="chi-square",
                p_value=result.p_value,
                feature=attribute_feature(name),
                n=result.n_current,
                note=note,
                sequential=self._spec.mean_shift,
            )
            hypotheses.append(Hypothesis(statistic, result.cramers_v >= self._spec.min_cramers_v))
        return hypotheses


def _matrix(window: Window, names: tuple[str, ...]) -> FloatArray:
    """The columns ``names`` of ``window``'s features as an (n, p) matrix."""
    return np.column_stack([np.asarray(window.features[name], dtype=np.float64) for name in names])


def _describe(statistic: Statistic) -> str:
    where = f" [{statistic.subgroup}]" if statistic.subgroup else ""
    label = {"ks_statistic": "KS D", "mean_shift": "Mahalanobis D"}.get(statistic.name, "Cramér's V")
    return f"{statistic.feature}{where} {label}={statistic.value:.3f} p_adj={statistic.p_value_adjusted:.2g}"


def _summary(statistics: list[Statistic]) -> str:
    if not statistics:
        return "drift: no columns to test"
    severity = Severity.highest(s.severity for s in statistics)
    strongest = min(statistics, key=lambda s: (-s.severity.rank, s.p_value_adjusted or 1.0, -s.value))
    flagged = sum(1 for s in statistics if s.severity is not Severity.INFO)
    adjustment = statistics[0].adjustment or "no correction"
    if severity is Severity.INFO:
        return f"drift: none detected in {len(statistics)} tests ({adjustment}); closest: {_describe(strongest)}"
    return f"drift {severity}: {flagged} of {len(statistics)} tests ({adjustment}); strongest: {_describe(strongest)}"
