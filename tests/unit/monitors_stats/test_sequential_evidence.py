"""The per-block evidence the runner's charts judge: the bias monitor's prevalence-adjusted subgroup sensitivity
and the calibration monitor's calibration-map check, on chest_nodule v2's shipped (reads-labelled) reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import norm

from services.monitors.bias import BiasMonitor, BiasSpec
from services.monitors.calibration.calculator import CalibrationMonitor
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.reference import load_reference_profile
from services.monitors.core.window import Window
from stack.settings import REPO_ROOT

MISS, FALSE_FLAG = 0.11, 0.05


@dataclass(frozen=True)
class Halves:
    reference: Window
    pool: Window
    truth: np.ndarray


@pytest.fixture(scope="module")
def halves() -> Halves:
    profile = load_reference_profile(
        REPO_ROOT / "model_repo" / "chest_nodule" / "2" / "reference_profile.npz",
        model_name="chest_nodule",
        model_version="2",
    )
    truth = np.load(REPO_ROOT / "model_repo" / "chest_nodule" / "2" / "reference_profile.npz")["ground_truth"]
    rng = np.random.default_rng(3)
    order = rng.permutation(len(profile))
    half = len(profile) // 2
    # Both sides read by the same independent simulated readers, so the truth-based oracle below holds exactly
    # (the simulator's own readers miss faint nodules more often, as the model does).
    reference = profile.select(order[:half])
    reference = Window.from_columns(
        model_name="chest_nodule",
        model_version="2",
        arm="reference",
        score=reference.score,
        probability=reference.probability,
        label=_reads(truth[order[:half]].astype(float), rng),
        decision=reference.decision,
        attributes=reference.attributes,
    )
    return Halves(reference, profile.select(order[half:]), truth[order[half:]].astype(float))


def _reads(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(truth.shape[0])
    return np.where(truth == 1, (u >= MISS).astype(float), (u < FALSE_FLAG).astype(float))


def _block(halves: Halves, rng: np.random.Generator, n: int = 500, positive_weight: float = 1.0) -> Window:
    """A block drawn from the pool's studies, read again by simulated readers (reads, never truth)."""
    weights = np.where(halves.truth == 1, positive_weight, 1.0)
    index = rng.choice(len(halves.pool), size=n, p=weights / weights.sum())
    reads = _reads(halves.truth[index], rng)
    block = halves.pool.select(index)
    return Window.from_columns(
        model_name="chest_nodule",
        model_version="2",
        arm="stable",
        score=block.score,
        probability=block.probability,
        label=reads,
        decision=block.decision,
        attributes=block.attributes,
    )


def test_served_probabilities_off_the_calibration_map_are_found_without_reads(halves: Halves) -> None:
    monitor = CalibrationMonitor(halves.reference, CalibrationSpec(name="t", bootstrap_resamples=50))
    block = _block(halves, np.random.default_rng(1))
    healthy = monitor.evaluate(block).get("served_temperature_ratio")
    assert healthy.value == pytest.approx(1.0, abs=1e-3) and healthy.p_value == 1.0
    doubled = Window.from_columns(
        model_name="chest_nodule",
        model_version="2",
        arm="stable",
        score=block.score,
        probability=1.0 / (1.0 + np.exp(-block.score / (2.0 * 1.016705970796663))),
        label=np.full(len(block), np.nan),  # no read has arrived yet
    )
    wrong = monitor.evaluate(doubled).get("served_temperature_ratio")
    assert wrong.value == pytest.approx(2.0, rel=1e-3)
    assert wrong.p_value is not None and wrong.p_value < 1e-12 and wrong.severity.value == "breach"


def _expected_read_sensitivity(halves: Halves, prevalence_ratio: float) -> float:
    """Oracle from ground truth: P(model positive | read positive) when prevalence is scaled by the ratio.

    By Bayes over the truth, with the model's true sensitivity and false-positive rate and the readers' error
    rates; it never looks at scores (the monitor estimates the same from scores and reads alone).
    """
    truth, decision = halves.truth, halves.pool.decision
    sensitivity, false_positive = decision[truth == 1].mean(), decision[truth == 0].mean()
    prevalence = truth.mean() * prevalence_ratio
    positive_reads = prevalence * (1 - MISS)
    false_reads = (1 - prevalence) * FALSE_FLAG
    return float((positive_reads * sensitivity + false_reads * false_positive) / (positive_reads + false_reads))


@pytest.mark.parametrize("positive_weight", [1.0, 0.5])
def test_the_sensitivity_evidence_expects_what_the_blocks_prevalence_implies(
    halves: Halves, positive_weight: float
) -> None:
    monitor = BiasMonitor(halves.reference, BiasSpec(name="t"))
    rng = np.random.default_rng(5)
    expected, z = [], []
    for _ in range(30):
        finding = monitor.evaluate(_block(halves, rng, positive_weight=positive_weight))
        overall = next(s for s in finding.statistics if s.name == "sensitivity_evidence" and s.subgroup == "")
        assert overall.sequential and overall.n is not None and overall.p_value is not None
        detected = float(overall.note.split("/")[0])
        expected.append(detected / overall.n - overall.value)
        z.append(float(norm.ppf(overall.p_value)))  # the one-sided z back from its p-value
    truth_prevalence = halves.truth.mean()
    drawn = truth_prevalence * positive_weight / (truth_prevalence * positive_weight + 1 - truth_prevalence)
    oracle = _expected_read_sensitivity(halves, drawn / truth_prevalence)
    # The reference's rows are weighted by P(nodule | score, read) and the EM weighs the block's reads too, so
    # the expectation follows the oracle when prevalence halves (weighting by the score alone was 0.017 low).
    assert np.mean(expected) == pytest.approx(oracle, abs=0.006)
    # With nothing wrong with the model, the evidence is centred: no drift for the chart to add up.
    assert abs(float(np.mean(z))) < 0.45


def test_a_subgroups_missed_nodules_are_evidence_in_that_subgroup(halves: Halves) -> None:
    monitor = BiasMonitor(halves.reference, BiasSpec(name="t"))
    rng = np.random.default_rng(9)
    in_group, elsewhere = [], []
    for _ in range(20):
        block = _block(halves, rng)
        group = (block.attributes["sex"] == "male") & (block.attributes["age_band"] == "50-69")
        decision = block.decision.copy()
        hit = group & (decision == 1) & (rng.random(len(block)) < 0.3)  # the model now misses 30% of its finds
        decision[hit] = 0.0
        edited = Window.from_columns(
            model_name="chest_nodule",
            model_version="2",
            arm="stable",
            score=block.score,
            probability=block.probability,
            label=block.label,
            decision=decision,
            attributes=block.attributes,
        )
        finding = monitor.evaluate(edited)
        for s in finding.statistics:
            if s.name == "sensitivity_evidence" and s.p_value is not None:
                (in_group if s.subgroup == "sex=male,age_band=50-69" else elsewhere).append(s.p_value)
    assert np.median(in_group) < 0.01
    assert np.median(elsewhere) > 0.05


def test_the_ece_null_follows_a_halved_prevalence(halves: Halves) -> None:
    """The ECE change test's null is the reference reweighted to the block's prevalence: with the model unchanged
    and half the nodules, its p-values are centred (one log-odds offset of the reference's read rates gave a
    mean probit score of about 1.2 a block on the bench, which a chart adds up to an alarm)."""
    monitor = CalibrationMonitor(
        halves.reference, CalibrationSpec(name="t", bootstrap_resamples=20, inner_resamples=20, null_resamples=500)
    )
    rng = np.random.default_rng(13)
    z = []
    for _ in range(30):
        finding = monitor.evaluate(_block(halves, rng, positive_weight=0.5))
        p_value = finding.get("ece_increase").p_value
        assert p_value is not None
        z.append(float(norm.isf(p_value)))
    assert abs(float(np.mean(z))) < 0.45
