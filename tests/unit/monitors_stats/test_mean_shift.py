"""The drift monitor's multivariate mean-shift test (Hotelling's T² with a Ledoit–Wolf covariance) and the tail of
its null distribution, each against an independent oracle: sklearn's covariance, numpy's linear solve, scipy's
chi-square, Monte Carlo draws of the null, and uniform p-values with nothing changed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.covariance import LedoitWolf

from kernel.distributions import weighted_chi_square_sf
from services.monitors.core import Window
from services.monitors.drift import DriftMonitor, DriftSpec
from services.monitors.drift.mean_shift import MeanShiftReference
from services.monitors.runner.handlers import chart_evidence


def _correlated(n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    """Six columns driven by two factors (nearly collinear, like image descriptors), plus two free ones."""
    factors = rng.normal(size=(n, 2))
    loadings = np.array([[1.0, 0.0], [0.98, 0.1], [0.95, -0.2], [0.0, 1.0], [0.3, 0.9], [-0.5, 0.7]])
    x = factors @ loadings.T + rng.normal(scale=0.05, size=(n, 6))
    x = np.column_stack([x, rng.normal(size=(n, 2)), np.full(n, 3.1)])  # the last column never varies
    x[:, :3] += shift  # a gain: the first three columns move together
    return x * np.array([2.0, 1.0, 0.5, 3.0, 1.0, 1.0, 1.0, 10.0, 1.0]) + 100.0


@pytest.mark.parametrize("dof", [1, 4, 13])
def test_equal_weights_are_the_chi_square_tail(dof: int) -> None:
    for x in (0.5, float(dof), 3.0 * dof + 10.0, 60.0):
        assert weighted_chi_square_sf(x, np.ones(dof)) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9)
        assert weighted_chi_square_sf(2.0 * x, np.full(dof, 2.0)) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9)


def test_unequal_weights_follow_monte_carlo_into_the_tail() -> None:
    weights = np.array([0.07, 0.11, 0.14, 0.19, 0.29, 0.33, 0.72, 0.77, 0.89, 0.98, 1.0, 1.0, 1.0])
    rng = np.random.default_rng(11)
    draws = rng.chisquare(1.0, size=(2_000_000, weights.size)) @ weights
    for tail in (1e-1, 1e-2, 1e-3, 1e-4):
        x = float(np.quantile(draws, 1.0 - tail))
        # Within 15% of the simulated tail (Monte Carlo error alone is ~7% at 1e-4 with these draws).
        assert weighted_chi_square_sf(x, weights) == pytest.approx(tail, rel=0.15)
    with pytest.raises(ValueError, match="weights"):
        weighted_chi_square_sf(1.0, [])


def test_t2_is_the_mahalanobis_form_of_sklearns_ledoit_wolf_covariance() -> None:
    rng = np.random.default_rng(3)
    reference_rows = _correlated(4000, rng)
    reference = MeanShiftReference.of(reference_rows)
    assert reference is not None
    assert reference.columns.tolist() == list(range(8))  # the constant column is left out
    z = (reference_rows[:, :8] - reference_rows[:, :8].mean(axis=0)) / reference_rows[:, :8].std(axis=0)
    fitted = LedoitWolf().fit(z)
    assert reference.shrinkage == pytest.approx(fitted.shrinkage_, rel=1e-12)
    np.testing.assert_allclose(reference.covariance, fitted.covariance_, atol=1e-10)
    window = _correlated(120, rng, shift=0.1)
    d = ((window[:, :8] - reference_rows[:, :8].mean(axis=0)) / reference_rows[:, :8].std(axis=0)).mean(axis=0)
    expected = float(d @ np.linalg.solve(fitted.covariance_, d)) / (1 / 120 + 1 / 4000)
    result = reference.test(window)
    assert result.statistic == pytest.approx(expected, rel=1e-9)
    assert result.distance == pytest.approx(np.sqrt(expected * (1 / 120 + 1 / 4000)), rel=1e-9)
    assert (result.n_current, result.n_reference, result.dof) == (120, 4000, 8)
    window[0, 2] = np.nan  # an incomplete row is left out
    assert reference.test(window).n_current == 119
    assert MeanShiftReference.of(np.full((50, 3), 1.0)) is None


def test_p_values_are_uniform_with_nothing_changed_and_small_after_a_gain() -> None:
    rng = np.random.default_rng(5)
    reference = MeanShiftReference.of(_correlated(20_000, rng))
    assert reference is not None
    null = np.array([reference.test(_correlated(100, rng)).p_value for _ in range(3000)])
    assert stats.kstest(null, "uniform").pvalue > 0.01
    assert np.mean(null <= 0.01) == pytest.approx(0.01, abs=0.006)
    # A gain of 0.25 SD of the factor on three of the columns, 100 rows per window.
    shifted = np.array([reference.test(_correlated(100, rng, shift=0.25)).p_value for _ in range(200)])
    assert np.median(shifted) < 1e-3


def _window(x: np.ndarray, sites: np.ndarray, score: np.ndarray) -> Window:
    return Window.from_columns(
        model_name="m",
        model_version="1",
        arm="stable",
        score=score,
        probability=1.0 / (1.0 + np.exp(-score)),
        label=np.full(score.size, np.nan),
        threshold=0.5,
        features={f"intensity.c{i}": x[:, i] for i in range(x.shape[1])},
        attributes={"site": sites},
    )


def test_the_drift_charts_are_fed_the_mean_shift_and_score_tests_of_each_scope() -> None:
    rng = np.random.default_rng(8)
    n = 6000
    sites = rng.choice(np.array(["site-A", "site-B"]), size=n)
    monitor = DriftMonitor(
        _window(_correlated(n, rng), sites, rng.normal(size=n)),
        DriftSpec(name="d", categorical_attributes=("site",)),
    )
    block_sites = rng.choice(np.array(["site-A", "site-B"]), size=500)
    x = _correlated(500, rng)
    x[block_sites == "site-B", 0] += 0.5 * 2.0  # half an SD on one column at one site
    finding = monitor.evaluate(_window(x, block_sites, rng.normal(size=500)))
    shifts = {s.subgroup: s for s in finding.select("mean_shift")}
    assert set(shifts) == {"", "site=site-A", "site=site-B"}
    assert all(s.sequential and s.feature == "inputs" for s in shifts.values())
    assert shifts["site=site-B"].p_value is not None and shifts["site=site-B"].p_value < 1e-6
    sequential = {(s.name, s.feature, s.subgroup) for s in finding.statistics if s.sequential}
    assert sequential == {
        *(("mean_shift", "inputs", scope) for scope in shifts),
        *(("ks_statistic", "output.score", scope) for scope in shifts),
        ("cramers_v", "acquisition.site", ""),
    }
    evidence = chart_evidence(finding)
    # Bonferroni over the scope's two chart tests (three for the whole window, with the site mix).
    site_b = [s.p_value for s in finding.statistics if s.sequential and s.subgroup == "site=site-B"]
    assert evidence["site=site-B"] == pytest.approx(min(1.0, 2 * min(site_b)))  # type: ignore[type-var]
    off = DriftMonitor(
        _window(_correlated(n, rng), sites, rng.normal(size=n)),
        DriftSpec(name="d", categorical_attributes=("site",), mean_shift=False),
    ).evaluate(_window(x, block_sites, rng.normal(size=500)))
    assert not off.select("mean_shift") and not any(s.sequential for s in off.statistics)


def test_a_duplicated_column_gets_no_weight_and_the_test_stays_valid() -> None:
    rng = np.random.default_rng(12)
    x = _correlated(5000, rng)
    reference = MeanShiftReference.of(np.column_stack([x, x[:, 0]]))  # the same descriptor twice
    assert reference is not None and np.min(reference.weights) < 1e-6
    null = []
    for _ in range(1000):
        window = _correlated(100, rng)
        null.append(reference.test(np.column_stack([window, window[:, 0]])).p_value)
    assert np.all(np.isfinite(null)) and stats.kstest(null, "uniform").pvalue > 0.01


def test_a_window_without_one_of_the_references_columns_is_tested_on_the_others() -> None:
    rng = np.random.default_rng(9)
    n = 4000
    sites = rng.choice(np.array(["site-A", "site-B"]), size=n)
    monitor = DriftMonitor(_window(_correlated(n, rng), sites, rng.normal(size=n)), DriftSpec(name="d"))
    block_sites = rng.choice(np.array(["site-A", "site-B"]), size=400)
    block = _window(_correlated(400, rng), block_sites, rng.normal(size=400))
    features = {name: values for name, values in block.features.items() if name != "intensity.c7"}
    fewer = Window.from_columns(
        model_name="m",
        model_version="1",
        arm="stable",
        score=block.score,
        probability=block.probability,
        label=block.label,
        threshold=0.5,
        features=features,
        attributes=block.attributes,
    )
    shifts = monitor.evaluate(fewer).select("mean_shift")
    assert {s.subgroup for s in shifts} == {"", "site=site-A", "site=site-B"}
    assert all("over 7 columns" in s.note for s in shifts)  # 9 columns, one constant, one missing
