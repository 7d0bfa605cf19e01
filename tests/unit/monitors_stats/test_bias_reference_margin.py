"""The bias monitor's sequential evidence allows for the reference's own sampling error.

Every block is compared with the same reference, so the reference's error in a subgroup's sensitivity is one
fixed offset shared by all blocks, which a CUSUM adds up like a real drop. ``drop_evidence`` counts a block's
shortfall only beyond ``c`` standard errors of the reference's proportion. Oracles: the same z written as a
one-sample test against a lowered null proportion (scipy's normal law), and a simulation of many reference
draws in which the per-block evidence's mean over blocks is the quantity the chart accumulates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from services.monitors.bias import BiasSpec
from services.monitors.bias.calculator import drop_evidence


@pytest.mark.parametrize(
    ("x", "n", "e", "m", "c"),
    [
        (14.0, 20, 0.8, 2000.0, 2.0),
        (30.0, 40, 0.7, 900.0, 1.5),
        (9.0, 12, 0.85, 2600.0, 0.0),
        (50.0, 50, 0.9, 400.0, 3.0),
    ],
)
def test_the_evidence_is_a_one_sided_test_against_a_null_lowered_by_the_margin(
    x: float, n: int, e: float, m: float, c: float
) -> None:
    # Oracle: H0 "the block's proportion is at least e - c se_ref", with the binomial variance at e, lower tail.
    lowered = e - c * math.sqrt(e * (1.0 - e) / m)
    p_oracle = norm.cdf((x / n - lowered) / math.sqrt(e * (1.0 - e) / n))
    z = drop_evidence(x, n, e, m, c)
    assert float(norm.sf(z)) == pytest.approx(p_oracle, rel=1e-12)
    # A drop gives large z (small p); more detected positives give less evidence.
    assert drop_evidence(x - 3, n, e, m, c) > z


def test_a_reference_without_spread_gives_no_evidence() -> None:
    assert drop_evidence(5.0, 10, 1.0, 500.0, 2.0) == 0.0
    assert drop_evidence(0.0, 10, 0.0, 500.0, 2.0) == 0.0


def _offsets(c: float, *, truth: float, n: int, m: int, draws: int, blocks: int, seed: int) -> np.ndarray:
    """Per reference draw, the mean over ``blocks`` healthy blocks of the evidence a chart adds up."""
    rng = np.random.default_rng(seed)
    expected = rng.binomial(m, truth, size=draws) / m  # each draw: the reference's estimate of the subgroup
    detected = rng.binomial(n, truth, size=(draws, blocks))  # healthy blocks: the true sensitivity
    z = [[drop_evidence(float(x), n, e, float(m), c) for x in row] for e, row in zip(expected, detected, strict=True)]
    return np.asarray(z).mean(axis=1)


def test_the_margin_removes_the_reference_offset_at_its_quantile() -> None:
    # A subgroup like women under 50 on the bench's half reference: ~40 read-positives a block, ~2,000 reads.
    truth, n, m, draws, blocks = 0.8, 40, 2000, 600, 200
    exact = _offsets(0.0, truth=truth, n=n, m=m, draws=draws, blocks=blocks, seed=11)
    margin = _offsets(2.0, truth=truth, n=n, m=m, draws=draws, blocks=blocks, seed=11)
    # Without a margin the offset is a persistent drift of sqrt(n / m) SD per block, positive in half the draws.
    assert float(np.std(exact)) == pytest.approx(math.sqrt(n / m), rel=0.15)
    assert 0.4 < float(np.mean(exact > 0.0)) < 0.6
    # With c = 2 the drift is at most 0 unless the reference is more than 2 SE off: ~2.3% of the draws.
    assert float(np.mean(margin > 0.0)) < 0.05
    # The drift itself (the expected evidence given the reference's draw, x at its mean n * truth) is positive
    # exactly when the reference overstates the sensitivity by more than 2 of its standard errors.
    rng = np.random.default_rng(13)
    references = rng.binomial(m, truth, size=20_000) / m
    drift = np.array([drop_evidence(n * truth, n, e, float(m), 2.0) for e in references])
    assert float(np.mean(drift > 0.0)) == pytest.approx(float(norm.sf(2.0)), abs=0.006)
    # The margin costs each block c sqrt(n / m) SD of evidence, no more.
    assert float(np.mean(exact - margin)) == pytest.approx(2.0 * math.sqrt(n / m), rel=0.1)


def test_the_old_variance_inflation_left_the_offset_in_place() -> None:
    # z = (n e - x) / sqrt(n e (1 - e) (1 + n / m)) shrinks each block's z but keeps the sign of the offset.
    rng = np.random.default_rng(12)
    truth, n, m, draws, blocks = 0.8, 40, 2000, 400, 200
    expected = rng.binomial(m, truth, size=draws) / m
    detected = rng.binomial(n, truth, size=(draws, blocks))
    inflated = (n * expected[:, None] - detected) / np.sqrt(n * expected * (1 - expected) * (1 + n / m))[:, None]
    assert 0.4 < float(np.mean(inflated.mean(axis=1) > 0.0)) < 0.6


def test_the_margin_is_a_validated_spec_field() -> None:
    assert BiasSpec(name="b").reference_margin_sd == 1.5
    with pytest.raises(ValidationError, match="reference_margin_sd"):
        BiasSpec(name="b", reference_margin_sd=-1.0)
