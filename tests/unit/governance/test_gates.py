"""Gate statistics against independent oracles, and the promote/hold/abort decision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from governance.domain.gates import (
    ArmEvidence,
    FindingRef,
    auroc_delong,
    auroc_difference_ci,
    evaluate_step,
    expected_calibration_error,
)
from governance.domain.model import GateDecision, GateOutcome, RolloutStep
from governance.domain.policy import PolicyCatalog
from tests.unit.governance.builders import evidence

POLICY = PolicyCatalog().get("fast-test")
STEP = RolloutStep(2000, 30)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 50 + 40 * seed
    labels = (rng.random(n) < 0.35).astype(np.int64)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes ties
    auc, var = auroc_delong(scores, labels)
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert var > 0


def test_delong_variance_matches_pairwise_definition():
    """DeLong's structural components computed the slow way (every positive/negative pair)."""
    rng = np.random.default_rng(7)
    labels = (rng.random(60) < 0.4).astype(np.int64)
    scores = np.round(rng.normal(labels, 1.0), 1)
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    assert auroc_delong(scores, labels)[1] == pytest.approx(expected, rel=1e-10)


def test_auroc_difference_ci_covers_at_nominal_rate():
    """Binormal arms with known AUROCs: the 95% CI of the difference covers the truth ~95% of the time."""
    rng = np.random.default_rng(2025)
    d_c, d_s = 1.2, 1.0
    truth = stats.norm.cdf(d_c / math.sqrt(2)) - stats.norm.cdf(d_s / math.sqrt(2))
    reps, covered = 400, 0
    for _ in range(reps):
        arms = []
        for d in (d_c, d_s):
            labels = (rng.random(300) < 0.3).astype(np.int64)
            arms.append((rng.normal(labels * d, 1.0), labels))
        _, low, high = auroc_difference_ci(arms[0][0], arms[0][1], arms[1][0], arms[1][1], 0.95)
        covered += low <= truth <= high
    assert 0.92 <= covered / reps <= 0.98


def _reference_ece(scores, labels, bins=10):
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(s, y) for s, y in zip(scores, labels, strict=True) if lo <= s < hi or (b == bins - 1 and s == 1.0)]
        if members:
            confidence = sum(s for s, _ in members) / len(members)
            accuracy = sum(y for _, y in members) / len(members)
            total += len(members) / len(scores) * abs(confidence - accuracy)
    return total


@pytest.mark.parametrize("seed", range(4))
def test_ece_matches_reference(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(500)
    scores[:3] = [0.0, 1.0, 0.5]
    labels = (rng.random(500) < scores**1.5).astype(np.int64)
    assert expected_calibration_error(scores, labels) == pytest.approx(_reference_ece(scores, labels), abs=1e-12)


def _gates(results):
    return {g.gate: g for g in results}


def test_healthy_canary_promotes():
    decision, results = evaluate_step(POLICY, STEP, evidence(400, seed=1), evidence(400, seed=2))
    assert decision == GateDecision.PROMOTE
    assert all(g.outcome == GateOutcome.PASS for g in results)
    assert _gates(results)["auroc_non_inferiority"].limit == -POLICY.gates.auroc_non_inferiority_margin


def test_too_few_reads_holds():
    decision, results = evaluate_step(POLICY, STEP, evidence(20, seed=1), evidence(400, seed=2))
    assert decision == GateDecision.HOLD
    gate = _gates(results)["min_reads"]
    assert gate.outcome == GateOutcome.INSUFFICIENT_EVIDENCE
    assert gate.detail == "canary has 20 of 30 reads, stable 400"


def test_degraded_scanner_aborts_on_subgroup_gap():
    decision, results = evaluate_step(POLICY, STEP, evidence(600, seed=1, scanner_bad="b"), evidence(600, seed=2))
    gap = _gates(results)["max_subgroup_sensitivity_gap"]
    assert decision == GateDecision.ABORT
    assert gap.outcome == GateOutcome.FAIL and "scanner=b" in gap.detail and gap.observed > 0.5


def test_much_worse_auroc_fails_and_borderline_holds():
    decision, results = evaluate_step(POLICY, STEP, evidence(2000, seed=1, noise=4.0), evidence(2000, seed=2))
    assert _gates(results)["auroc_non_inferiority"].outcome == GateOutcome.FAIL
    assert decision == GateDecision.ABORT


def test_breach_aborts_even_without_reads():
    breach = FindingRef("f-1", "performance")
    decision, results = evaluate_step(POLICY, STEP, ArmEvidence(), ArmEvidence(), [breach])
    assert decision == GateDecision.ABORT
    assert _gates(results)["open_breaches"].finding_ids == ("f-1",)


def test_no_overrides_is_insufficient():
    canary = evidence(400, seed=1)
    canary = ArmEvidence(canary.scores, canary.labels, canary.decisions, (), canary.subgroups)
    decision, results = evaluate_step(POLICY, STEP, canary, evidence(400, seed=2))
    assert decision == GateDecision.HOLD
    assert _gates(results)["max_override_rate_increase"].outcome == GateOutcome.INSUFFICIENT_EVIDENCE


def test_one_sided_fisher_matches_the_hypergeometric_tail():
    from governance.domain.gates import one_sided_greater

    # Table [[a, b], [c, d]]: P(X >= a) with X ~ Hypergeom(total, a + c, a + b).
    for a_hit, a_total, b_hit, b_total in [(18, 20, 10, 20), (5, 9, 5, 9), (30, 40, 12, 35), (0, 5, 3, 6)]:
        total = a_total + b_total
        expected = stats.hypergeom.sf(a_hit - 1, total, a_hit + b_hit, a_total)
        assert one_sided_greater(a_hit, a_total, b_hit, b_total) == pytest.approx(expected, rel=1e-9)


def test_holm_matches_its_step_down_definition():
    from governance.domain.gates import holm_reject

    # Sorted p: 0.001 (<= .05/4), 0.012 (<= .05/3), 0.03 (> .05/2: stop), 0.04 (kept by the stop).
    assert holm_reject([0.04, 0.001, 0.03, 0.012], 0.05) == [False, True, False, True]
    assert holm_reject([0.04, 0.001, 0.02, 0.012], 0.05) == [True, True, True, True]
    assert holm_reject([0.5, 0.6], 0.05) == [False, False]
    assert holm_reject([], 0.05) == []


def test_small_noisy_subgroup_drop_holds_instead_of_aborting():
    """12 positives per arm on scanner b with a 0.33 drop: above the 0.25 limit, not significant → hold."""

    def arm(hits_b: int) -> ArmEvidence:
        labels = [1] * 24 + [0] * 40
        scanners = ["a"] * 12 + ["b"] * 12 + ["a"] * 20 + ["b"] * 20
        decisions = [True] * 12 + [True] * hits_b + [False] * (12 - hits_b) + [False] * 40
        scores = [0.9 if d else 0.1 for d in decisions]
        return ArmEvidence(scores, labels, decisions, [d != bool(y) for d, y in zip(decisions, labels, strict=True)],
                           {"scanner": scanners})  # fmt: skip

    policy = POLICY.model_copy(update={"gates": POLICY.gates.model_copy(update={"min_subgroup_positives": 10})})
    results = _gates(evaluate_step(policy, RolloutStep(2000, 30), arm(8), arm(12))[1])
    gap = results["max_subgroup_sensitivity_gap"]
    assert gap.observed == pytest.approx(1 / 3) and gap.outcome == GateOutcome.INSUFFICIENT_EVIDENCE, gap


def test_ece_above_the_limit_on_a_small_window_is_insufficient_not_a_failure():
    rng = np.random.default_rng(4)
    scores = rng.random(40)
    labels = (rng.random(40) < scores).astype(np.int64)  # calibrated by construction
    ece = expected_calibration_error(scores, labels)
    policy = POLICY.model_copy(update={"gates": POLICY.gates.model_copy(update={"max_ece": ece * 0.8})})
    canary = ArmEvidence(scores.tolist(), labels.tolist(), (scores >= 0.5).tolist(), [], {})
    gate = _gates(evaluate_step(policy, RolloutStep(2000, 30), canary, canary)[1])["max_ece"]
    assert gate.outcome == GateOutcome.INSUFFICIENT_EVIDENCE and "miscalibration p=" in gate.detail


def test_healthy_canary_is_rarely_aborted_on_small_windows():
    """Null simulation: canary and stable from the same model, 120 reads each, 200 windows."""
    step = RolloutStep(2000, 60)
    aborts = sum(
        evaluate_step(POLICY, step, evidence(120, seed=2 * k), evidence(120, seed=2 * k + 1))[0] == GateDecision.ABORT
        for k in range(200)
    )
    print(f"healthy canary aborted in {aborts} of 200 windows of 120 reads")
    assert aborts <= 10  # each of the four gates fails at most ~1 - confidence under no difference


def test_ece_null_p_values_are_calibrated_and_miscalibration_fails():
    from governance.domain.gates import ece_calibrated_p

    rng = np.random.default_rng(11)
    p_values = []
    for _ in range(200):
        scores = rng.random(200)
        p_values.append(ece_calibrated_p(scores, (rng.random(200) < scores).astype(np.int64)))
    rejected = sum(p < 0.05 for p in p_values) / len(p_values)
    assert 0.01 <= rejected <= 0.10, rejected  # nominal 5% under perfect calibration
    scores = rng.random(400)
    labels = (rng.random(400) < scores**3).astype(np.int64)  # overconfident: true rate far below the score
    canary = ArmEvidence(scores.tolist(), labels.tolist(), (scores >= 0.5).tolist(), [], {})
    gate = _gates(evaluate_step(POLICY, RolloutStep(2000, 30), canary, canary)[1])["max_ece"]
    assert gate.outcome == GateOutcome.FAIL and gate.observed > POLICY.gates.max_ece
