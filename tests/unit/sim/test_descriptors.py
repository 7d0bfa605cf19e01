"""Intensity descriptors checked against numpy and scipy on the same images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import skew

from sim import DESCRIPTOR_NAMES, Hospital, intensity_descriptors


def test_descriptors_match_independent_oracles() -> None:
    images = Hospital("baseline", seed=81).studies(70).images
    descriptors = intensity_descriptors(images)
    flat = images.reshape(70, -1).astype(np.float64)
    np.testing.assert_allclose(descriptors.mean, flat.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(descriptors.std, flat.std(axis=1), rtol=1e-10)
    np.testing.assert_allclose(descriptors.skewness, skew(flat, axis=1), rtol=1e-8, atol=1e-12)
    for name, q in (("p5", 5), ("p50", 50), ("p95", 95)):
        np.testing.assert_allclose(getattr(descriptors, name), np.percentile(flat, q, axis=1), rtol=1e-12)
    matrix = descriptors.as_matrix()
    assert matrix.shape == (70, len(DESCRIPTOR_NAMES))
    np.testing.assert_array_equal(matrix[:, DESCRIPTOR_NAMES.index("p95")], descriptors.p95)
    assert list(descriptors.as_columns()) == list(DESCRIPTOR_NAMES)


def test_known_distributions() -> None:
    constant = np.full((1, 8, 8), 3.0, dtype=np.float32)
    ramp = np.arange(101, dtype=np.float32).reshape(1, 101)
    d = intensity_descriptors(np.concatenate([constant.reshape(1, -1)[:, :64], ramp[:, :64]]))
    assert d.mean.tolist() == [3.0, 31.5]
    assert d.std[0] == 0.0
    assert d.skewness.tolist() == [0.0, pytest.approx(0.0, abs=1e-12)]
    assert d.p50.tolist() == [3.0, 31.5]
    exponential = np.random.default_rng(1).exponential(size=(1, 200_000))
    assert intensity_descriptors(exponential).skewness[0] == pytest.approx(2.0, rel=0.05)


def test_shapes_and_bad_input() -> None:
    three_d = np.random.default_rng(2).random((5, 16, 16))
    four_d = three_d[:, None]
    expected = intensity_descriptors(three_d).as_matrix()
    np.testing.assert_array_equal(intensity_descriptors(four_d).as_matrix(), expected)
    with pytest.raises(ValueError, match="shape"):
        intensity_descriptors(np.zeros((0, 4, 4)))
    bad = three_d.copy()
    bad[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        intensity_descriptors(bad)
