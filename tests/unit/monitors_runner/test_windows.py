"""Ledger rows → calculator window."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from services.monitors.ledger.queries import LedgerWindow, WindowSpec
from services.monitors.runner.windows import to_window
from tests.unit.monitors_runner.fakes import T0, prediction


def test_rows_become_aligned_columns_with_features_attributes_and_labels() -> None:
    rows = (
        prediction(0, mean=0.4, label=1, probability=0.8),
        prediction(1, mean=0.6, label=None, probability=0.2),
        prediction(2, mean=0.5, label=1, probability=0.3),
    )
    window = to_window(LedgerWindow(WindowSpec("chest_nodule"), rows), model_version="3", arm="stable")
    assert (window.model_name, window.model_version, window.arm, len(window)) == ("chest_nodule", "3", "stable", 3)
    np.testing.assert_allclose(window.probability, [0.8, 0.2, 0.3])
    np.testing.assert_allclose(window.score, [math.log(4), math.log(0.25), math.log(0.3 / 0.7)])
    np.testing.assert_array_equal(window.decision, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(np.isnan(window.label), [False, True, False])
    # The third read disagrees with the decision: an override; the unread one has none.
    np.testing.assert_array_equal(window.override[[0, 2]], [0.0, 1.0])
    assert math.isnan(window.override[1])
    assert sorted(window.features) == ["embedding.0", "embedding.1", "intensity.mean", "intensity.p95"]
    np.testing.assert_allclose(window.features["intensity.mean"], [0.4, 0.6, 0.5])
    np.testing.assert_allclose(window.features["embedding.1"], [0.1, 0.1, 0.1])
    assert list(window.attributes["site"]) == ["site-A", "site-B", "site-C"]
    assert list(window.attributes["sex"]) == ["male", "female", "male"]
    assert (window.start, window.end) == (T0, T0 + timedelta(minutes=2, microseconds=1))


def test_an_explicit_window_end_is_kept_and_a_descriptor_missing_from_one_row_is_left_out() -> None:
    rows = (prediction(0, mean=0.4), replace(prediction(1, mean=0.6), descriptors={"intensity.mean": 0.6}))
    end = T0 + timedelta(days=1)
    window = to_window(LedgerWindow(WindowSpec("chest_nodule", end=end), rows), model_version="3", arm="canary")
    assert window.end == end
    assert "intensity.p95" not in window.features
    np.testing.assert_allclose(window.features["intensity.mean"], [0.4, 0.6])


def test_a_window_without_features_has_none() -> None:
    rows = (replace(prediction(0, mean=0.4), descriptors=None, embedding=None),)
    window = to_window(LedgerWindow(WindowSpec("chest_nodule"), rows), model_version="3", arm="stable")
    assert dict(window.features) == {}


@pytest.mark.parametrize("missing", ["decision", "label"])
def test_missing_decision_or_label_is_nan(missing: str) -> None:
    row = replace(prediction(0, mean=0.4, label=1), **{missing: None})
    window = to_window(LedgerWindow(WindowSpec("chest_nodule"), (row,)), model_version="3", arm="stable")
    assert math.isnan(getattr(window, missing)[0])
    assert math.isnan(window.override[0])
