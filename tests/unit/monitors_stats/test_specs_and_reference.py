"""Specs round-trip through dicts and YAML and reject bad config; reference profiles load into windows;
windows validate their columns; the alerting policy adjusts and grades as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.monitors.alerting import AlertPolicy, Hypothesis, adjust, judge, limit_severity
from services.monitors.bias import BiasSpec
from services.monitors.calibration import CalibrationSpec
from services.monitors.core import Severity, Statistic, Window, age_bands, load_reference_profile
from services.monitors.drift import DriftSpec
from services.monitors.performance import PerformanceSpec

SPECS = [
    DriftSpec(name="chest-drift", revision=3, stratify_by=("site", "manufacturer"), min_ks_statistic=0.1),
    CalibrationSpec(name="chest-calibration", max_ece=0.08, null_model="perfect"),
    BiasSpec(name="chest-bias", max_gap={"sensitivity": 0.1}, intersections=(("sex", "age_band"), ("site", "sex"))),
    PerformanceSpec(name="chest-performance", minimum={"auroc": 0.85}, maximum={"override_rate": 0.2}),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: type(spec).__name__)
def test_specs_round_trip(spec: DriftSpec | CalibrationSpec | BiasSpec | PerformanceSpec) -> None:
    kind = type(spec)
    assert kind.from_dict(spec.to_dict()) == spec
    assert kind.from_yaml(spec.to_yaml()) == spec
    assert spec.ref == f"{spec.name}@{spec.revision}"


def test_specs_reject_bad_config() -> None:
    with pytest.raises(pydantic.ValidationError, match="min_ks_statistc"):
        DriftSpec.from_dict({"name": "d", "min_ks_statistc": 0.1})
    with pytest.raises(pydantic.ValidationError, match="must not exceed alpha_warning"):
        DriftSpec.from_dict({"name": "d", "alerting": {"alpha_warning": 0.001, "alpha_breach": 0.01}})
    with pytest.raises(pydantic.ValidationError, match="unknown metrics"):
        BiasSpec(name="b", alert_metrics=("sensitivty",))
    with pytest.raises(ValueError, match="must be a mapping"):
        CalibrationSpec.from_yaml("- just a list")
    yaml_text = "name: chest-bias\nrevision: 2\nattributes: [sex]\nalerting: {correction: benjamini-hochberg}\n"
    spec = BiasSpec.from_yaml(yaml_text)
    assert spec.attributes == ("sex",) and spec.alerting.correction == "benjamini-hochberg"


def test_reference_profile_loads_as_a_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 50
    logits = rng.normal(size=(n, 1)).astype(np.float32)
    path = tmp_path / "reference_profile.npz"
    np.savez(
        path,
        logits=logits,
        probabilities=(1 / (1 + np.exp(-logits / 1.5))).reshape(-1).astype(np.float32),
        labels=(rng.random(n) < 0.3).astype(np.int64),
        embeddings=rng.normal(size=(n, 8)).astype(np.float32),
        image_stats=rng.normal(size=(n, 5)).astype(np.float32),
        study_index=np.arange(n),
        site=np.array(["site-A", "site-B"] * 25),
        manufacturer=np.array(["SimRay Medical"] * n),
        model=np.array(["SR-400 DR"] * n),
        pixel_spacing=np.full(n, 3.0),
        sex=np.array(["F", "M"] * 25),
        age=np.arange(20, 20 + n),
    )
    window = load_reference_profile(path, model_name="chest-nodule", model_version="3", threshold=0.4)
    assert (window.arm, window.model_version, len(window)) == ("reference", "3", n)
    assert set(window.features) == {
        *(f"embedding.{i}" for i in range(8)),
        *(f"intensity.{name}" for name in ("mean", "std", "p5", "p50", "p95")),
        "acquisition.pixel_spacing",
    }
    assert set(window.attributes) == {"site", "manufacturer", "manufacturer_model", "sex", "age_band"}
    assert list(window.attributes["sex"][:2]) == ["female", "male"]
    np.testing.assert_allclose(window.score, logits.reshape(-1).astype(np.float64))
    np.testing.assert_array_equal(window.decision, (window.probability >= 0.4).astype(float))
    np.testing.assert_array_equal(window.override, (window.label != window.decision).astype(float))
    assert window.maturity.labelled == n


def test_reference_profile_needs_scores(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, labels=np.zeros(3))
    with pytest.raises(ValueError, match="logits or probabilities"):
        load_reference_profile(path, model_name="m", model_version="1")


def test_window_validates_and_derives() -> None:
    window = Window.from_columns(
        model_name="m", model_version="1", arm="canary", score=[0.0, 2.0, -2.0], label=[1, np.nan, 0], threshold=0.5
    )
    np.testing.assert_array_equal(window.decision, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(window.override, [0.0, np.nan, 0.0])
    assert str(window.maturity) == "2/3 labelled (67%)"
    assert not window.score.flags.writeable
    with pytest.raises(ValueError, match="probability must lie"):
        Window.from_columns(model_name="m", model_version="1", arm="a", score=[0.0], probability=[1.5])
    with pytest.raises(ValueError, match="label must be 0, 1 or NaN"):
        Window.from_columns(model_name="m", model_version="1", arm="a", score=[0.0], label=[2])
    with pytest.raises(ValueError, match="expected 1"):
        Window.from_columns(model_name="m", model_version="1", arm="a", score=[0.0], label=[1, 0])
    assert list(age_bands([18, 49.9, 50, 69, 70, 94])) == ["<50", "<50", "50-69", "50-69", "70+", "70+"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.sampled_from(["holm", "benjamini-hochberg"]))
def test_adjusted_p_values_are_valid(p: list[float], method: str) -> None:
    raw = np.array(p)
    adjusted = adjust(raw, method)  # type: ignore[arg-type]
    assert np.all(adjusted >= raw - 1e-15) and np.all(adjusted <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= -1e-15)  # monotone in the raw p-values


def test_judge_grades_by_adjusted_p_and_materiality() -> None:
    policy = AlertPolicy(alpha_warning=0.01, alpha_breach=0.001)
    hypotheses = [
        Hypothesis(Statistic(name="a", value=0.3, p_value=1e-6), material=True),
        Hypothesis(Statistic(name="b", value=0.01, p_value=1e-6), material=False),
        Hypothesis(Statistic(name="c", value=0.2, p_value=0.002), material=True),
        Hypothesis(Statistic(name="d", value=0.2, p_value=0.2), material=True),
    ]
    judged = judge(hypotheses, policy)
    assert [s.severity for s in judged] == [Severity.BREACH, Severity.INFO, Severity.WARNING, Severity.INFO]
    assert judged[2].p_value_adjusted == pytest.approx(0.004)  # Holm: 2 x 0.002 at the third step
    assert "below the minimum effect" in judged[1].note
    assert all(s.adjustment == "holm" for s in judged)


def test_limit_severity() -> None:
    assert limit_severity(0.84, 0.86, 0.85, higher_is_worse=False) is Severity.WARNING
    assert limit_severity(0.80, 0.84, 0.85, higher_is_worse=False) is Severity.BREACH
    assert limit_severity(0.90, 0.93, 0.85, higher_is_worse=False) is Severity.INFO
    assert limit_severity(float("nan"), float("nan"), 0.85, higher_is_worse=False) is Severity.INFO
    assert limit_severity(0.25, 0.21, 0.2, higher_is_worse=True) is Severity.BREACH
