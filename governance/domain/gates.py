"""A rollout step's acceptance gates: canary versus stable on the same window, as pure statistics.

Gates (names as in :class:`~governance.domain.model.GateResult`):

* ``open_breaches``: open breach findings on the canary. Kinds listed in the policy's
  ``rollback.on_breach_finding_kinds`` abort at once (even before a step has its reads); a drift breach
  blocks (holds) when ``block_on_drift_breach`` is set.
* ``auroc_non_inferiority``: the lower bound of the two-sided CI of AUROC(canary) - AUROC(stable) must
  be above ``-margin``. The variance of each AUROC is DeLong's (midrank form, Sun & Xu 2014); the arms
  are independent samples (different studies), so the variance of the difference is the sum. If the
  whole CI lies below ``-margin`` the gate fails; if it straddles ``-margin`` the evidence is insufficient.
* ``max_ece``: expected calibration error of the canary (10 equal-width bins) at most ``max_ece``. ECE is
  biased upwards on small windows, so an ECE above the limit fails the gate only when the canary is also
  significantly miscalibrated: consistency resampling (labels redrawn from the scores, 400 draws, seeded)
  gives the ECE's distribution under perfect calibration; otherwise the step holds.
* ``max_subgroup_sensitivity_gap``: in every subgroup value with ``min_subgroup_positives`` positives in
  both arms, canary sensitivity may fall at most ``max_subgroup_sensitivity_gap`` below stable's. A drop
  above the limit fails the gate only when it is also significant: a one-sided Fisher exact test (stable
  sensitivity > canary sensitivity) per subgroup, Holm-corrected across the subgroups compared at
  ``1 - confidence``. A large but not (yet) significant drop holds the step: noise in small subgroups
  must not abort a healthy candidate, and a real drop aborts once the reads show it.
* ``max_override_rate_increase``: radiologist override rate, canary minus stable, at most the limit; an
  increase above it fails only when a one-sided Fisher exact test says the canary's rate is higher at
  ``1 - confidence``, otherwise it holds.

Each statistical gate needs ``step.min_reads`` reads in each arm; with fewer it is insufficient evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from governance.domain.model import GateDecision, GateOutcome, GateResult, RolloutStep
from governance.domain.policy import FindingKind, GatePolicy, Policy
from kernel import calibration, distributions, intervals, multiple_testing, ranks

ECE_BINS = 10
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class FindingRef:
    """An open monitor finding about a version (only what the gates need)."""

    finding_id: str
    kind: str
    breach: bool = True
    summary: str = ""


@dataclass(frozen=True)
class ArmEvidence:
    """What one arm produced in a window: one entry per prediction.

    Attributes:
        scores: Calibrated probability of the finding.
        labels: Radiologist's read, 1/0, or None when not (yet) read.
        decisions: The model's decision at its operating threshold.
        overrides: Whether the read disagreed with the decision; None when not read.
        subgroups: Attribute name → value per prediction, e.g. ``{"scanner": [...], "site": [...]}``.
    """

    scores: Sequence[float] = ()
    labels: Sequence[int | None] = ()
    decisions: Sequence[bool] = ()
    overrides: Sequence[bool | None] = ()
    subgroups: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def predictions(self) -> int:
        """Number of predictions."""
        return len(self.scores)

    @property
    def reads(self) -> int:
        """Number of predictions with a read."""
        return sum(1 for label in self.labels if label is not None)

    def labelled(self) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_], NDArray[np.intp]]:
        """(scores, labels, decisions, indices) of the read predictions."""
        index = np.array([i for i, label in enumerate(self.labels) if label is not None], dtype=np.intp)
        scores = np.asarray(self.scores, dtype=np.float64)[index] if index.size else np.zeros(0)
        labels = np.array([self.labels[i] for i in index], dtype=np.int64)
        decisions = np.asarray(self.decisions, dtype=bool)[index] if index.size else np.zeros(0, dtype=bool)
        return scores, labels, decisions, index


def auroc_delong(scores: NDArray[np.float64], labels: NDArray[np.int64]) -> tuple[float, float]:
    """AUROC and its DeLong variance, from the shared statistics (:func:`kernel.ranks.auroc_delong`).

    Args:
        scores: Scores, higher meaning more likely positive.
        labels: 1 for positive, 0 for negative; both classes must be present.

    Returns:
        ``(auc, variance)`` (variance 0 when a class has a single member).
    """
    estimate = ranks.auroc_delong(scores, labels)
    if estimate.positives == 0 or estimate.negatives == 0:
        raise ValueError("AUROC needs both positives and negatives")
    variance = estimate.variance if math.isfinite(estimate.variance) else 0.0
    return estimate.value, variance


def auroc_difference_ci(
    canary_scores: NDArray[np.float64],
    canary_labels: NDArray[np.int64],
    stable_scores: NDArray[np.float64],
    stable_labels: NDArray[np.int64],
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """AUROC(canary) - AUROC(stable) with its two-sided CI (DeLong, independent samples).

    Returns:
        ``(difference, low, high)``.
    """
    auc_c, var_c = auroc_delong(canary_scores, canary_labels)
    auc_s, var_s = auroc_delong(stable_scores, stable_labels)
    diff = auc_c - auc_s
    z = distributions.normal_quantile(1 - (1 - confidence) / 2)
    half = z * math.sqrt(var_c + var_s)
    return diff, diff - half, diff + half


def expected_calibration_error(scores: NDArray[np.float64], labels: NDArray[np.int64], bins: int = ECE_BINS) -> float:
    """ECE over equal-width probability bins (the shared :class:`kernel.calibration.BinTotals`); 0 when empty."""
    if scores.size == 0:
        return 0.0
    return calibration.BinTotals.of(scores, labels, bins).ece


ECE_DRAWS = 400


def ece_calibrated_p(scores: FloatArray, labels: IntArray, draws: int = ECE_DRAWS) -> float:
    """p-value of the observed ECE if the scores were perfectly calibrated.

    The shared resampling test (:func:`kernel.calibration.ece_change_test` against perfect calibration),
    seeded by the data size so a window always gets the same answer. Comparing with ECEs of redrawn reads
    accounts for ECE's upward bias on small windows, which a bootstrap of the ECE itself does not.
    """
    totals = calibration.BinTotals.of(scores, labels, ECE_BINS)
    return calibration.ece_change_test(totals, None, draws, np.random.default_rng(scores.size)).p_value


def holm_reject(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level ``alpha``."""
    return [bool(p <= alpha) for p in multiple_testing.holm(np.asarray(p_values, dtype=np.float64))]


def one_sided_greater(hits_a: int, total_a: int, hits_b: int, total_b: int) -> float:
    """p-value of Fisher's exact test that proportion a (hits_a/total_a) is greater than proportion b."""
    return intervals.fisher_greater_pvalue(hits_a, total_a, hits_b, total_b)


def _subgroup_sensitivity(evidence: ArmEvidence, attribute: str) -> dict[str, tuple[int, int]]:
    """value → (true positives, positives) among read predictions."""
    out: dict[str, tuple[int, int]] = {}
    values = evidence.subgroups.get(attribute, ())
    for i, label in enumerate(evidence.labels):
        if label != 1 or i >= len(values):
            continue
        hit, total = out.get(values[i], (0, 0))
        out[values[i]] = (hit + int(bool(evidence.decisions[i])), total + 1)
    return out


def _override_rate(evidence: ArmEvidence) -> float | None:
    known = [bool(o) for o in evidence.overrides if o is not None]
    return sum(known) / len(known) if known else None


def _override_counts(evidence: ArmEvidence) -> tuple[int, int]:
    known = [bool(o) for o in evidence.overrides if o is not None]
    return sum(known), len(known)


def _breach_gate(policy: Policy, breaches: Sequence[FindingRef]) -> tuple[GateResult, bool]:
    """The breach gate and whether it calls for an abort."""
    abort_kinds = {str(kind) for kind in policy.rollback.on_breach_finding_kinds}
    block_kinds = {str(FindingKind.DRIFT)} if policy.gates.block_on_drift_breach else set()
    relevant = [b for b in breaches if b.breach and (b.kind in abort_kinds or b.kind in block_kinds)]
    if not relevant:
        return GateResult("open_breaches", GateOutcome.PASS, 0.0, 0.0, "no open breach findings on the canary"), False
    kinds = sorted({b.kind for b in relevant})
    abort = any(b.kind in abort_kinds for b in relevant)
    detail = f"{len(relevant)} open breach finding(s) on the canary: {', '.join(kinds)}"
    ids = tuple(b.finding_id for b in relevant)
    return GateResult("open_breaches", GateOutcome.FAIL, float(len(relevant)), 0.0, detail, ids), abort


def _insufficient(gate: str, limit: float, detail: str, observed: float = 0.0) -> GateResult:
    # observed stays finite: gate results are stored as canonical JSON, which has no NaN.
    return GateResult(gate, GateOutcome.INSUFFICIENT_EVIDENCE, observed, limit, detail)


def _auroc_gate(
    g: GatePolicy, c_scores: FloatArray, c_labels: IntArray, s_scores: FloatArray, s_labels: IntArray
) -> GateResult:
    limit = -g.auroc_non_inferiority_margin
    if len(set(c_labels.tolist())) < 2 or len(set(s_labels.tolist())) < 2:
        return _insufficient("auroc_non_inferiority", limit, "an arm lacks a class")
    diff, low, high = auroc_difference_ci(c_scores, c_labels, s_scores, s_labels, g.confidence)
    text = f"AUROC difference {diff:+.3f}, {g.confidence:.0%} CI [{low:+.3f}, {high:+.3f}] (DeLong)"
    if low > limit:
        outcome = GateOutcome.PASS
    elif high < limit:
        outcome = GateOutcome.FAIL
    else:
        outcome = GateOutcome.INSUFFICIENT_EVIDENCE
    return GateResult("auroc_non_inferiority", outcome, low, limit, text)


def _ece_gate(g: GatePolicy, c_scores: FloatArray, c_labels: IntArray) -> GateResult:
    ece = expected_calibration_error(c_scores, c_labels)
    if ece <= g.max_ece:
        return GateResult("max_ece", GateOutcome.PASS, ece, g.max_ece, f"canary ECE {ece:.3f} ({ECE_BINS} bins)")
    p_value = ece_calibrated_p(c_scores, c_labels)
    text = f"canary ECE {ece:.3f} ({ECE_BINS} bins), miscalibration p={p_value:.2g} (consistency resampling)"
    outcome = GateOutcome.FAIL if p_value < 1 - g.confidence else GateOutcome.INSUFFICIENT_EVIDENCE
    return GateResult("max_ece", outcome, ece, g.max_ece, text)


def _subgroup_gate(g: GatePolicy, canary: ArmEvidence, stable: ArmEvidence) -> GateResult:
    """Largest canary sensitivity drop vs stable; it fails only when above the limit and Holm-significant."""
    compared: list[tuple[float, str, float]] = []  # (drop, "attribute=value", one-sided p)
    for attribute in sorted(set(canary.subgroups) & set(stable.subgroups)):
        c_sens = _subgroup_sensitivity(canary, attribute)
        s_sens = _subgroup_sensitivity(stable, attribute)
        for value in sorted(set(c_sens) & set(s_sens)):
            (c_hit, c_pos), (s_hit, s_pos) = c_sens[value], s_sens[value]
            if min(c_pos, s_pos) < g.min_subgroup_positives:
                continue
            p_value = one_sided_greater(s_hit, s_pos, c_hit, c_pos)
            compared.append((s_hit / s_pos - c_hit / c_pos, f"{attribute}={value}", p_value))
    limit = g.max_subgroup_sensitivity_gap
    if not compared:
        if canary.subgroups and stable.subgroups:
            text = f"no subgroup has {g.min_subgroup_positives} positives in both arms"
            return _insufficient("max_subgroup_sensitivity_gap", limit, text)
        return GateResult("max_subgroup_sensitivity_gap", GateOutcome.PASS, 0.0, limit, "no subgroups recorded")
    rejected = holm_reject([p for _, _, p in compared], 1 - g.confidence)
    failing = [c for c, r in zip(compared, rejected, strict=True) if r and c[0] > limit]
    drop, where, p_value = max(failing or compared)
    text = (
        f"largest canary sensitivity drop vs stable: {drop:+.3f} in {where} "
        f"(one-sided Fisher p={p_value:.2g}, Holm over {len(compared)} subgroups)"
    )
    if failing:
        outcome = GateOutcome.FAIL
    elif drop > limit:
        outcome = GateOutcome.INSUFFICIENT_EVIDENCE
    else:
        outcome = GateOutcome.PASS
    return GateResult("max_subgroup_sensitivity_gap", outcome, drop, limit, text)


def _override_gate(g: GatePolicy, canary: ArmEvidence, stable: ArmEvidence) -> GateResult:
    c_rate, s_rate = _override_rate(canary), _override_rate(stable)
    limit = g.max_override_rate_increase
    if c_rate is None or s_rate is None:
        return _insufficient("max_override_rate_increase", limit, "no overrides recorded for an arm")
    increase = c_rate - s_rate
    text = f"override rate canary {c_rate:.3f} vs stable {s_rate:.3f}"
    if increase <= limit:
        return GateResult("max_override_rate_increase", GateOutcome.PASS, increase, limit, text)
    p_value = one_sided_greater(*_override_counts(canary), *_override_counts(stable))
    outcome = GateOutcome.FAIL if p_value < 1 - g.confidence else GateOutcome.INSUFFICIENT_EVIDENCE
    return GateResult(
        "max_override_rate_increase", outcome, increase, limit, f"{text} (one-sided Fisher p={p_value:.2g})"
    )


def _statistical_gates(policy: Policy, canary: ArmEvidence, stable: ArmEvidence) -> list[GateResult]:
    g = policy.gates
    c_scores, c_labels, _, _ = canary.labelled()
    s_scores, s_labels, _, _ = stable.labelled()
    return [
        _auroc_gate(g, c_scores, c_labels, s_scores, s_labels),
        _ece_gate(g, c_scores, c_labels),
        _subgroup_gate(g, canary, stable),
        _override_gate(g, canary, stable),
    ]


def evaluate_step(
    policy: Policy,
    step: RolloutStep,
    canary: ArmEvidence,
    stable: ArmEvidence,
    open_breaches: Sequence[FindingRef] = (),
) -> tuple[GateDecision, tuple[GateResult, ...]]:
    """Evaluate one step's gates and decide promote, hold or abort.

    Args:
        policy: The candidate's policy.
        step: The current step (its ``min_reads`` applies to each arm).
        canary: The canary's evidence in the window.
        stable: The stable version's evidence in the same window.
        open_breaches: Open breach findings on the canary version.

    Returns:
        The decision and every gate's result.
    """
    breach, breach_aborts = _breach_gate(policy, open_breaches)
    results = [breach]
    if canary.reads < step.min_reads or stable.reads < step.min_reads:
        text = f"canary has {canary.reads} of {step.min_reads} reads, stable {stable.reads}"
        results.append(_insufficient("min_reads", float(step.min_reads), text, float(min(canary.reads, stable.reads))))
    else:
        results.extend(_statistical_gates(policy, canary, stable))
    if breach_aborts:
        return GateDecision.ABORT, tuple(results)
    failed = [r for r in results if r.outcome == GateOutcome.FAIL]
    if failed and any(r.gate != "open_breaches" for r in failed) and policy.rollback.on_gate_fail:
        return GateDecision.ABORT, tuple(results)
    if failed or any(r.outcome == GateOutcome.INSUFFICIENT_EVIDENCE for r in results):
        return GateDecision.HOLD, tuple(results)
    return GateDecision.PROMOTE, tuple(results)
