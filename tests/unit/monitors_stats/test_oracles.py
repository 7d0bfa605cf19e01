"""Every statistic the monitors compute, checked against an independent implementation on the same data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, true_negative_rate, true_positive_rate
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_score, roc_auc_score

from kernel.intervals import newcombe_interval
from services.monitors.alerting import benjamini_hochberg, holm
from services.monitors.bias import BiasMonitor, BiasSpec
from services.monitors.calibration import BinTotals, fit_calibration_line
from services.monitors.core import Window, auroc_delong, midranks, score_shift_test, wilson_interval
from services.monitors.drift import CategoryCounts, SortedSample, chi_square_test, ks_test


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    ("n", "m", "shift", "rounding"),
    [(500, 800, 0.0, None), (300, 2000, 0.3, None), (1000, 1000, 0.1, 1), (50, 70, 1.0, 0)],
)
def test_ks_matches_scipy(n: int, m: int, shift: float, rounding: int | None) -> None:
    rng = _rng(n)
    reference = rng.normal(size=m)
    current = rng.normal(loc=shift, size=n)
    if rounding is not None:  # ties, as with pixel spacing
        reference, current = np.round(reference, rounding), np.round(current, rounding)
    ours = ks_test(SortedSample.of(reference), current)
    oracle = stats.ks_2samp(current, reference, method="asymp")
    assert ours.statistic == pytest.approx(oracle.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(oracle.pvalue, rel=1e-9, abs=1e-300)


# scipy's p-value for two single observations divides by zero; only its statistic is the oracle here.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=60),
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=60),
)
def test_ks_statistic_property(reference: list[float], current: list[float]) -> None:
    ours = ks_test(SortedSample.of(reference), current)
    assert ours.statistic == pytest.approx(stats.ks_2samp(current, reference, method="asymp").statistic, abs=1e-12)


def test_ks_ignores_nan_and_handles_empty() -> None:
    result = ks_test(SortedSample.of([1.0, 2.0, np.nan]), [np.nan, 1.5])
    assert (result.n_reference, result.n_current) == (2, 1)
    assert result.statistic == pytest.approx(0.5)
    empty = ks_test(SortedSample.of([1.0]), [])
    assert (empty.statistic, empty.p_value) == (0.0, 1.0)


def test_chi_square_matches_scipy_including_new_category() -> None:
    rng = _rng(1)
    reference = rng.choice(["A", "B", "C"], size=900, p=[0.5, 0.3, 0.2])
    current = np.concatenate([rng.choice(["A", "B", "C"], size=380, p=[0.4, 0.4, 0.2]), ["D"] * 20])
    ours = chi_square_test(CategoryCounts.of(reference), current)
    table = [[np.sum(reference == c) for c in "ABCD"], [np.sum(current == c) for c in "ABCD"]]
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(p_value, rel=1e-9)
    assert ours.dof == dof == 3
    assert ours.new_categories == ("D",)
    assert ours.cramers_v == pytest.approx(np.sqrt(statistic / 1300))


def test_auroc_and_delong_match_plain_implementations() -> None:
    rng = _rng(2)
    labels = (rng.random(400) < 0.3).astype(float)
    scores = np.round(rng.normal(size=400) + labels, 1)  # rounded: ties count one half
    estimate = auroc_delong(scores, labels)
    assert estimate.value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # DeLong by its definition: psi(x, y) over every positive-negative pair.
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    variance = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    assert estimate.variance == pytest.approx(variance, rel=1e-10)


def test_midranks_match_scipy() -> None:
    values = np.round(_rng(3).normal(size=300), 1)
    np.testing.assert_allclose(midranks(values), stats.rankdata(values, method="average"))


@pytest.mark.parametrize("lower", [True, False])
def test_score_shift_matches_scipy_mannwhitneyu(lower: bool) -> None:
    rng = _rng(4)
    current = np.round(rng.normal(-0.2, size=150), 2)
    baseline = np.round(rng.normal(size=600), 2)
    ours = score_shift_test(current, np.sort(baseline), lower=lower)
    oracle = stats.mannwhitneyu(current, baseline, alternative="less" if lower else "greater", method="asymptotic")
    assert ours.p_value == pytest.approx(oracle.pvalue, rel=1e-9)
    u1 = stats.mannwhitneyu(current, baseline, method="asymptotic").statistic
    assert ours.superiority == pytest.approx(u1 / (150 * 600))


def test_wilson_and_newcombe_match_definitions() -> None:
    low, high = wilson_interval([0, 7, 50, 80], [10, 40, 50, 200], 0.95)
    for i, (x, n) in enumerate([(0, 10), (7, 40), (50, 50), (80, 200)]):
        interval = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low[i], high[i]) == pytest.approx((interval.low, interval.high), abs=1e-12)
    # Newcombe's hybrid score interval from its definition (method 10), on one case worked by hand.
    d_low, d_high = newcombe_interval(56, 70, 48, 80, 0.95)
    l1, u1 = wilson_interval(56, 70, 0.95)
    l0, u0 = wilson_interval(48, 80, 0.95)
    p1, p0 = 0.8, 0.6
    assert float(d_low) == pytest.approx(p1 - p0 - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2))
    assert float(d_high) == pytest.approx(p1 - p0 + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))
    assert float(d_low) == pytest.approx(0.0524, abs=5e-4)  # published value for 56/70 vs 48/80


def _plain_ece(probabilities: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], bins: int) -> float:
    total = 0.0
    for b in range(bins):
        lower, upper = b / bins, (b + 1) / bins
        inside = [i for i, p in enumerate(probabilities) if lower <= p < upper or (b == bins - 1 and p == 1.0)]
        if inside:
            gap = abs(np.mean(labels[inside]) - np.mean(probabilities[inside]))
            total += len(inside) / len(probabilities) * gap
    return total


@pytest.mark.parametrize("bins", [5, 10, 15])
def test_ece_matches_plain_loop(bins: int) -> None:
    rng = _rng(bins)
    probabilities = np.concatenate([rng.beta(1.5, 4, size=600), [0.0, 1.0, 0.5]])
    labels = (rng.random(probabilities.size) < probabilities**0.8).astype(float)
    assert BinTotals.of(probabilities, labels, bins).ece == pytest.approx(_plain_ece(probabilities, labels, bins))


def test_calibration_line_matches_sklearn() -> None:
    rng = _rng(5)
    logits = rng.normal(size=2000)
    labels = (rng.random(2000) < 1 / (1 + np.exp(-(0.3 + 0.7 * logits)))).astype(float)
    probabilities = 1 / (1 + np.exp(-logits))
    line = fit_calibration_line(probabilities, labels)
    oracle = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logits[:, None], labels)
    assert line.intercept == pytest.approx(oracle.intercept_[0], abs=1e-6)
    assert line.slope == pytest.approx(oracle.coef_[0, 0], abs=1e-6)
    assert line.converged


def test_holm_and_bh_match_definitions() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.2])
    m = p.size
    order = np.argsort(p)
    expected_holm = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected_holm[i] = running
    np.testing.assert_allclose(holm(p), expected_holm)
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))


def test_subgroup_metrics_match_fairlearn_metricframe() -> None:
    rng = _rng(6)
    n = 3000
    sex = rng.choice(["female", "male"], size=n)
    site = rng.choice(["site-A", "site-B", "site-C"], size=n, p=[0.5, 0.3, 0.2])
    label = (rng.random(n) < 0.25).astype(float)
    score = rng.normal(size=n) + 1.4 * label + 0.3 * (site == "site-C")
    probability = 1 / (1 + np.exp(-score))
    decision = (probability >= 0.5).astype(float)
    override = (rng.random(n) < 0.1).astype(float)
    window = Window.from_columns(
        model_name="m",
        model_version="1",
        arm="canary",
        score=score,
        probability=probability,
        decision=decision,
        label=label,
        override=override,
        attributes={"sex": sex, "site": site},
    )
    spec = BiasSpec(name="b", attributes=("sex", "site"), intersections=(), min_positives=1, min_negatives=1)
    finding = BiasMonitor(window, spec).evaluate(window)

    def override_rate(y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]) -> float:
        return float(np.mean(y_pred))

    for attribute, values in (("sex", sex), ("site", site)):
        frame = MetricFrame(
            metrics={"sensitivity": true_positive_rate, "specificity": true_negative_rate, "ppv": precision_score},
            y_true=label,
            y_pred=decision,
            sensitive_features=values,
        )
        auroc = MetricFrame(metrics=roc_auc_score, y_true=label, y_pred=score, sensitive_features=values)
        overrides = MetricFrame(metrics=override_rate, y_true=label, y_pred=override, sensitive_features=values)
        for group in np.unique(values):
            subgroup = f"{attribute}={group}"
            for metric in ("sensitivity", "specificity", "ppv"):
                ours = finding.get(metric, subgroup=subgroup).value
                assert ours == pytest.approx(frame.by_group.loc[group, metric], abs=1e-12)
            assert finding.get("auroc", subgroup=subgroup).value == pytest.approx(auroc.by_group.loc[group], abs=1e-12)
            assert finding.get("override_rate", subgroup=subgroup).value == pytest.approx(
                overrides.by_group.loc[group], abs=1e-12
            )
        overall = finding.get("sensitivity", subgroup="").value
        assert overall == pytest.approx(frame.overall["sensitivity"], abs=1e-12)
