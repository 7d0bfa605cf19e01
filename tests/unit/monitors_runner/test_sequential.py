"""The CUSUM of block evidence: exact steps, and run lengths against Siegmund and a Markov-chain oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.monitors.alerting.sequential import (
    Z_MAX,
    Z_MIN,
    CusumParameters,
    CusumState,
    FalseAlarmBudget,
    bonferroni_global,
    probit_evidence,
    scoped_parameters,
    siegmund_arl,
    step,
    step_scopes,
    threshold_for_arl0,
)


def brook_evans_arl(mean: float, k: float, h: float, cells: int = 400) -> float:
    """Average run length of the normal CUSUM by the Brook-Evans Markov chain (an independent oracle)."""
    width = h / cells
    centres = (np.arange(cells) + 0.5) * width
    # From state i the next value is max(0, c_i + z - k); it stays below h with these probabilities.
    transition = np.empty((cells, cells))
    upper = np.arange(1, cells + 1) * width
    lower = np.arange(cells) * width
    for i, c in enumerate(centres):
        shift = c - k + mean
        cdf_upper = stats.norm.cdf(upper - shift)
        cdf_lower = stats.norm.cdf(lower - shift)
        transition[i] = cdf_upper - cdf_lower
        transition[i, 0] = cdf_upper[0]  # everything at or below 0 lands in the first cell
    run_lengths = np.linalg.solve(np.eye(cells) - transition, np.ones(cells))
    return float(run_lengths[0])


def simulated_run_lengths(mean: float, parameters: CusumParameters, runs: int, seed: int) -> np.ndarray:
    """Run lengths of ``runs`` independent charts fed N(mean, 1) evidence (vectorised)."""
    rng = np.random.default_rng(seed)
    statistic = np.zeros(runs)
    length = np.zeros(runs, dtype=np.int64)
    alive = np.ones(runs, dtype=bool)
    t = 0
    while alive.any():
        t += 1
        z = np.clip(rng.normal(mean, 1.0, size=runs), Z_MIN, Z_MAX)
        statistic = np.where(alive, np.maximum(0.0, statistic + z - parameters.k), statistic)
        crossed = alive & (statistic > parameters.h)
        length[crossed] = t
        alive &= ~crossed
    return length


def test_probit_evidence_is_the_normal_upper_quantile() -> None:
    for p in (0.5, 0.1, 0.01, 1e-6, 0.9):
        assert probit_evidence(p) == pytest.approx(float(stats.norm.isf(p)), abs=1e-9)
    assert probit_evidence(0.0) == Z_MAX
    assert probit_evidence(1.0) == Z_MIN
    with pytest.raises(ValueError, match="p-value"):
        probit_evidence(float("nan"))


def test_bonferroni_global_p_value() -> None:
    assert bonferroni_global([0.2, 0.01, float("nan"), 0.5]) == pytest.approx(0.03)
    assert bonferroni_global([0.9, 0.8]) == 1.0
    assert bonferroni_global([float("nan")]) is None


def test_a_step_by_hand() -> None:
    parameters = CusumParameters(k=0.5, h=3.0)
    first = step(CusumState(), 0.01, parameters)  # z = 2.326
    assert first.state.statistic == pytest.approx(2.326348 - 0.5, abs=1e-5)
    assert not first.alarm
    second = step(first.state, 0.01, parameters)
    assert second.alarm and second.peak == pytest.approx(2 * (2.326348 - 0.5), abs=1e-5)
    assert second.state == CusumState(statistic=0.0, steps=2, alarms=1, since_alarm=0)
    quiet = step(CusumState(statistic=1.0), 0.9, parameters)
    assert quiet.state.statistic == 0.0 and not quiet.alarm


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 20.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.05, 2.0),
    st.floats(0.5, 10.0),
)
def test_steps_are_nonnegative_monotone_and_restart_after_alarm(
    start: float, p: float, q: float, k: float, h: float
) -> None:
    parameters = CusumParameters(k, h)
    state = CusumState(statistic=start)
    a, b = step(state, p, parameters), step(state, q, parameters)
    assert a.peak >= 0.0 and a.state.statistic >= 0.0
    assert a.alarm == (a.peak > h)
    if a.alarm:
        assert a.state.statistic == 0.0 and a.state.since_alarm == 0
    if p <= q:  # more evidence never lowers the chart
        assert a.peak >= b.peak


def test_siegmund_agrees_with_the_markov_chain_oracle() -> None:
    for h in (3.0, 4.35, 5.0):
        for mean in (0.0, 1.0):
            exact = brook_evans_arl(mean, 0.5, h)
            assert siegmund_arl(mean, CusumParameters(0.5, h)) == pytest.approx(exact, rel=0.05)


def test_simulated_in_control_run_length_matches_theory() -> None:
    parameters = CusumParameters(k=0.5, h=3.0)
    lengths = simulated_run_lengths(0.0, parameters, runs=4000, seed=11)
    oracle = brook_evans_arl(0.0, 0.5, 3.0)
    # Run lengths are roughly geometric: the mean of 4,000 has a standard error of ~1.6% of the mean.
    assert lengths.mean() == pytest.approx(oracle, rel=0.06)
    assert siegmund_arl(0.0, parameters) == pytest.approx(lengths.mean(), rel=0.08)


def test_simulated_detection_delay_matches_theory() -> None:
    parameters = CusumParameters(k=0.5, h=4.35)
    lengths = simulated_run_lengths(1.0, parameters, runs=4000, seed=12)
    assert lengths.mean() == pytest.approx(brook_evans_arl(1.0, 0.5, 4.35), rel=0.04)


def test_threshold_inverts_the_run_length() -> None:
    for arl0 in (50.0, 480.0, 10_000.0):
        h = threshold_for_arl0(arl0)
        assert siegmund_arl(0.0, CusumParameters(0.5, h)) == pytest.approx(arl0, rel=1e-6)
    with pytest.raises(ValueError, match="run length"):
        threshold_for_arl0(1.0)


def test_the_default_budget_gives_thirty_days_per_target() -> None:
    budget = FalseAlarmBudget(days=30.0, studies_per_day=1000.0, block_size=250, monitors=4)
    parameters = budget.parameters()
    assert budget.blocks_per_day == 4.0
    per_chart_blocks = brook_evans_arl(0.0, parameters.k, parameters.h)
    # Four charts together: the first false alarm comes after ~per-chart / 4 blocks, at 4 blocks a day.
    assert per_chart_blocks / 4 / budget.blocks_per_day >= 30.0 * 0.95
    assert math.isfinite(parameters.h) and 3.0 < parameters.h < 6.0


def test_scoped_charts_share_the_monitors_run_length() -> None:
    base = FalseAlarmBudget(block_size=500).parameters()
    assert scoped_parameters(base, 1) == base and scoped_parameters(base, 0) == base
    for scopes in (2, 4, 17):
        scoped = scoped_parameters(base, scopes)
        assert scoped.k == base.k and scoped.h > base.h
        assert siegmund_arl(0.0, scoped) == pytest.approx(scopes * siegmund_arl(0.0, base), rel=1e-6)
    # h grows with log S: 4 scopes (drift: overall and three sites) and 18 (bias: 17 subgroups and overall).
    assert scoped_parameters(base, 4).h == pytest.approx(5.023, abs=0.01)
    assert scoped_parameters(base, 18).h == pytest.approx(6.516, abs=0.01)


def test_each_scope_moves_on_its_own_evidence_and_only_an_alarmed_scope_restarts() -> None:
    base = CusumParameters(k=0.5, h=3.0)
    first = step_scopes(CusumState(), {"": 0.5, "site=site-C": 0.001}, base)  # z = 0 and 3.09
    h2 = scoped_parameters(base, 2).h
    assert first.parameters.h == pytest.approx(h2)
    assert dict(first.state.scopes) == pytest.approx({"": 0.0, "site=site-C": 3.090232 - 0.5}, abs=1e-5)
    assert first.alarmed == () and first.top == "site=site-C"
    # A block with evidence for one scope leaves the other where it was.
    second = step_scopes(first.state, {"site=site-C": 1e-6}, base)  # z = 4.75
    assert second.alarmed == ("site=site-C",) and second.alarm
    assert dict(second.state.scopes) == {"": 0.0, "site=site-C": 0.0}
    assert (second.state.steps, second.state.alarms, second.state.since_alarm) == (2, 1, 0)
    third = step_scopes(second.state, {"": 0.01}, base)  # z = 2.33
    assert dict(third.state.scopes)[""] == pytest.approx(2.326348 - 0.5, abs=1e-5)
    assert third.state.statistic == pytest.approx(2.326348 - 0.5, abs=1e-5) and third.state.since_alarm == 1


def test_the_union_bound_holds_in_simulation() -> None:
    # Oracle: S independent in-control scopes, each run at S x ARL0, alarm no sooner on average than one
    # chart at ARL0 (simulated, against the Siegmund target the budget is stated in).
    base = CusumParameters(k=0.5, h=threshold_for_arl0(40.0))
    rng = np.random.default_rng(11)
    runs = []
    for _ in range(300):
        state, t = CusumState(), 0
        while True:
            t += 1
            z = rng.standard_normal(4)
            moved = step_scopes(state, {f"s{i}": float(stats.norm.sf(v)) for i, v in enumerate(z)}, base)
            if moved.alarm:
                runs.append(t)
                break
            state = moved.state
    assert np.mean(runs) >= 0.85 * 40.0
