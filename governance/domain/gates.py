"""A rollout step's acceptance gates: canary versus stable on the same window, as pure statistics.

Gates (names as in :class:`~governance.domain.model.GateResult`):

* ``open_breaches``: open breach findings on the canary. Kinds listed in the policy's
  ``rollback.on_breach_finding_kinds`` abort at once (even before a step has its reads); a drift breach
  blocks (holds) when ``block_on_drift_breach`` is set.
* ``auroc_non_inferiority``: the lower bound of the two-sided CI of AUROC(canary) - AUROC(stable) must
  be above ``-margin``. The variance of each AUROC is DeLong's (midrank form, Sun & Xu 2014); the arms
  are independent samples (different studies), so the variance of the difference is the sum. If the
  whole CI lies below ``-margin`` the gate fails; if it straddles ``-margin`` the evidence is insufficient.
* ``max_ece``: expected calibration error of the canary (10 equal-width bins) at most ``max_ece``.
* ``max_subgroup_sensitivity_gap``: in every subgroup value with enough positives in both arms, canary
  sensitivity may fall at most ``max_subgroup_sensitivity_gap`` below stable's.
* ``max_override_rate_increase``: radiologist override rate, canary minus stable, at most the limit.

Each statistical gate needs ``step.min_reads`` reads in each arm; with fewer it is insufficient evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from governance.domain.model import GateDecision, GateOutcome, GateResult, RolloutStep
from governance.domain.policy import FindingKind, Policy

ECE_BINS = 10


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
    """AUROC and its DeLong variance (midrank algorithm).

    Args:
        scores: Scores, higher meaning more likely positive.
        labels: 1 for positive, 0 for negative; both classes must be present.

    Returns:
        ``(auc, variance)``.
    """
    positives = scores[labels == 1]
    negatives = scores[labels == 0]
    m, n = positives.size, negatives.size
    if m == 0 or n == 0:
        raise ValueError("AUROC needs both positives and negatives")
    combined = stats.rankdata(np.concatenate([positives, negatives]))
    tx = stats.rankdata(positives)
    ty = stats.rankdata(negatives)
    tz_pos = combined[:m]
    tz_neg = combined[m:]
    auc = float((tz_pos.sum() - m * (m + 1) / 2) / (m * n))
    v10 = (tz_pos - tx) / n
    v01 = 1.0 - (tz_neg - ty) / m
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return auc, s10 / m + s01 / n


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
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    half = z * math.sqrt(var_c + var_s)
    return diff, diff - half, diff + half


def expected_calibration_error(scores: NDArray[np.float64], labels: NDArray[np.int64], bins: int = ECE_BINS) -> float:
    """ECE over equal-width probability bins (the last bin closed at 1)."""
    if scores.size == 0:
        return 0.0
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        if count:
            total += count * abs(float(scores[mask].mean()) - float(labels[mask].mean()))
    return total / scores.size


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


def _statistical_gates(  # noqa: PLR0912 - four gates, each with its own outcomes
    policy: Policy, canary: ArmEvidence, stable: ArmEvidence
) -> list[GateResult]:
    g = policy.gates
    results: list[GateResult] = []
    c_scores, c_labels, _, _ = canary.labelled()
    s_scores, s_labels, _, _ = stable.labelled()

    # AUROC non-inferiority.
    if len(set(c_labels.tolist())) < 2 or len(set(s_labels.tolist())) < 2:
        results.append(_insufficient("auroc_non_inferiority", -g.auroc_non_inferiority_margin, "an arm lacks a class"))
    else:
        diff, low, high = auroc_difference_ci(c_scores, c_labels, s_scores, s_labels, g.confidence)
        limit = -g.auroc_non_inferiority_margin
        text = f"AUROC difference {diff:+.3f}, {g.confidence:.0%} CI [{low:+.3f}, {high:+.3f}] (DeLong)"
        if low > limit:
            outcome = GateOutcome.PASS
        elif high < limit:
            outcome = GateOutcome.FAIL
        else:
            outcome = GateOutcome.INSUFFICIENT_EVIDENCE
        results.append(GateResult("auroc_non_inferiority", outcome, low, limit, text))

    # Calibration of the canary.
    ece = expected_calibration_error(c_scores, c_labels)
    outcome = GateOutcome.PASS if ece <= g.max_ece else GateOutcome.FAIL
    results.append(GateResult("max_ece", outcome, ece, g.max_ece, f"canary ECE {ece:.3f} ({ECE_BINS} bins)"))

    # Subgroup sensitivity drop, canary below stable.
    worst: tuple[float, str] | None = None
    for attribute in sorted(set(canary.subgroups) & set(stable.subgroups)):
        c_sens = _subgroup_sensitivity(canary, attribute)
        s_sens = _subgroup_sensitivity(stable, attribute)
        for value in sorted(set(c_sens) & set(s_sens)):
            (c_hit, c_pos), (s_hit, s_pos) = c_sens[value], s_sens[value]
            if min(c_pos, s_pos) < g.min_subgroup_positives:
                continue
            drop = s_hit / s_pos - c_hit / c_pos
            if worst is None or drop > worst[0]:
                worst = (drop, f"{attribute}={value}")
    gap_limit = g.max_subgroup_sensitivity_gap
    if worst is None:
        if canary.subgroups and stable.subgroups:
            text = f"no subgroup has {g.min_subgroup_positives} positives in both arms"
            results.append(_insufficient("max_subgroup_sensitivity_gap", gap_limit, text))
        else:
            results.append(
                GateResult("max_subgroup_sensitivity_gap", GateOutcome.PASS, 0.0, gap_limit, "no subgroups recorded")
            )
    else:
        drop, where = worst
        outcome = GateOutcome.PASS if drop <= gap_limit else GateOutcome.FAIL
        text = f"largest canary sensitivity drop vs stable: {drop:+.3f} in {where}"
        results.append(GateResult("max_subgroup_sensitivity_gap", outcome, drop, gap_limit, text))

    # Override rate.
    c_rate, s_rate = _override_rate(canary), _override_rate(stable)
    limit = g.max_override_rate_increase
    if c_rate is None or s_rate is None:
        results.append(_insufficient("max_override_rate_increase", limit, "no overrides recorded for an arm"))
    else:
        increase = c_rate - s_rate
        outcome = GateOutcome.PASS if increase <= limit else GateOutcome.FAIL
        text = f"override rate canary {c_rate:.3f} vs stable {s_rate:.3f}"
        results.append(GateResult("max_override_rate_increase", outcome, increase, limit, text))
    return results


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
