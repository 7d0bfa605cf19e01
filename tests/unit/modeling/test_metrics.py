"""AUROC, sensitivity, specificity and subgroup metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, roc_auc_score

from modeling.metrics import age_band, auroc, binary_metrics, subgroup_metrics


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0, 1), st.integers(0, 1)),
        min_size=2,
        max_size=150,
    )
)
def test_auroc_matches_sklearn_including_ties(pairs: list[tuple[float, int]]) -> None:
    scores = np.array([s for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    if labels.min() == labels.max():
        assert math.isnan(auroc(scores, labels))
    else:
        assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_sensitivity_and_specificity_match_the_confusion_matrix() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=500)
    scores = labels * 0.3 + rng.random(500)
    metrics = binary_metrics(scores, labels, threshold=0.7)
    tn, fp, fn, tp = confusion_matrix(labels, scores >= 0.7).ravel()
    assert metrics.n == 500
    assert metrics.positives == int(labels.sum())
    assert metrics.sensitivity == pytest.approx(tp / (tp + fn))
    assert metrics.specificity == pytest.approx(tn / (tn + fp))


def test_subgroups_partition_the_studies() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.4, 0.7, 0.2])
    labels = np.array([1, 0, 1, 0, 0, 1])
    groups = {"site": ["A", "A", "B", "B", "B", "A"]}
    result = subgroup_metrics(scores, labels, 0.5, groups)
    assert [(r.dimension, r.group) for r in result] == [("site", "A"), ("site", "B")]
    site_a = result[0].metrics
    assert (site_a.n, site_a.positives) == (3, 2)
    assert site_a.sensitivity == pytest.approx(0.5)  # 0.9 caught, 0.2 missed
    assert site_a.specificity == pytest.approx(1.0)
    site_b = result[1].metrics
    assert site_b.specificity == pytest.approx(0.5)  # 0.4 correct, 0.7 a false positive
    assert site_b.as_dict()["auroc"] == pytest.approx(1.0)


def test_single_class_subgroup_reports_nan_as_none() -> None:
    metrics = binary_metrics([0.2, 0.9], [0, 0], 0.5)
    assert math.isnan(metrics.sensitivity)
    assert metrics.as_dict()["sensitivity"] is None
    assert metrics.as_dict()["specificity"] == pytest.approx(0.5)


def test_group_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="entries"):
        subgroup_metrics([0.1, 0.2], [0, 1], 0.5, {"sex": ["F"]})


@pytest.mark.parametrize(("age", "band"), [(18, "<50"), (49, "<50"), (50, "50-69"), (69, "50-69"), (70, "70+")])
def test_age_bands(age: int, band: str) -> None:
    assert age_band(age) == band
