"""The network's shapes and batch independence, the image statistics against numpy, the inference engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from modeling.network import (
    EMBEDDING_DIM,
    IMAGE_SIZE,
    OUTPUT_NAMES,
    InferenceEngine,
    NoduleNet,
    center_surround_kernels,
    image_statistics,
)


def _images(n: int, seed: int = 0) -> NDArray[Any]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.4, 0.25, size=(n, 1, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def network() -> NoduleNet:
    torch.manual_seed(0)
    return NoduleNet().eval()


def test_forward_shapes(network: NoduleNet) -> None:
    logit, embedding = network(torch.from_numpy(_images(3)))
    assert logit.shape == (3, 1)
    assert embedding.shape == (3, EMBEDDING_DIM)
    assert logit.dtype == torch.float32


def test_scores_do_not_depend_on_the_rest_of_the_batch(network: NoduleNet) -> None:
    images = torch.from_numpy(_images(5))
    with torch.no_grad():
        together, _ = network(images)
        alone, _ = network(images[2:3])
    assert torch.allclose(together[2], alone[0], atol=1e-5)


def test_state_dict_round_trip_rebuilds_the_same_network() -> None:
    torch.manual_seed(3)
    original = NoduleNet(channels=(4, 8, 8, 16), embedding_dim=8, first_kernel=7).eval()
    rebuilt = NoduleNet.from_state_dict(original.state_dict()).eval()
    assert rebuilt.channels == (4, 8, 8, 16)
    assert rebuilt.first_kernel == 7
    x = torch.from_numpy(_images(2))
    with torch.no_grad():
        assert torch.equal(original(x)[0], rebuilt(x)[0])


def test_from_state_dict_rejects_foreign_weights() -> None:
    with pytest.raises(ValueError, match="not a NoduleNet"):
        NoduleNet.from_state_dict({"weight": torch.zeros(2)})


def test_center_surround_kernels_are_zero_sum_unit_norm_and_peak_in_the_middle() -> None:
    kernels = center_surround_kernels(5, (0.7, 1.4))
    assert kernels.shape == (2, 1, 5, 5)
    flat = kernels.flatten(1).double()
    assert torch.allclose(flat.sum(dim=1), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(flat.norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert int(flat[0].argmax()) == 12  # centre pixel of the 5x5 kernel


def _numpy_statistics(images: NDArray[Any]) -> NDArray[Any]:
    flat = images.reshape(images.shape[0], -1).astype(np.float64)
    p5, p50, p95 = np.percentile(flat, [5, 50, 95], axis=1)
    return np.stack([flat.mean(axis=1), flat.std(axis=1), p5, p50, p95], axis=1)


def test_image_statistics_match_numpy_on_images() -> None:
    images = _images(4, seed=5)
    got = image_statistics(torch.from_numpy(images)).numpy()
    assert got.shape == (4, 5)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _numpy_statistics(images), rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 40)),
        elements=st.floats(-100, 100, width=32) | st.sampled_from([0.0, 1.0]),
    )
)
def test_image_statistics_match_numpy_percentiles(values: NDArray[Any]) -> None:
    got = image_statistics(torch.from_numpy(values)).numpy()
    np.testing.assert_allclose(got, _numpy_statistics(values), rtol=1e-5, atol=1e-4)


def test_engine_equals_the_network_run_directly(network: NoduleNet) -> None:
    images = _images(7, seed=9)
    outputs = InferenceEngine(network, chunk=3).predict(images)
    x = torch.from_numpy(images)
    with torch.no_grad():
        logit, embedding = network(x)
    assert tuple(outputs) == OUTPUT_NAMES
    # Chunks of 3 and one batch of 7 may take different float32 kernels (and thread splits): equal to
    # within float32 rounding of values of a few units, not bit for bit.
    np.testing.assert_allclose(outputs["LOGIT"], logit.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs["EMBEDDING"], embedding.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs["STATS"], image_statistics(x).numpy(), rtol=0, atol=0)
    assert all(value.dtype == np.float32 for value in outputs.values())


def test_engine_accepts_float64_and_empty_batches(network: NoduleNet) -> None:
    engine = InferenceEngine(network)
    images = _images(2)
    np.testing.assert_array_equal(engine.predict(images.astype(np.float64))["LOGIT"], engine.predict(images)["LOGIT"])
    empty = engine.predict(np.zeros((0, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32))
    assert {name: value.shape for name, value in empty.items()} == {
        "LOGIT": (0, 1),
        "EMBEDDING": (0, EMBEDDING_DIM),
        "STATS": (0, 5),
    }


@pytest.mark.parametrize(
    ("shape", "message"), [((2, 128, 128), "shape"), ((2, 1, 64, 64), "shape"), ((1, 2, 128, 128), "shape")]
)
def test_engine_rejects_wrong_shapes(network: NoduleNet, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InferenceEngine(network).predict(np.zeros(shape, dtype=np.float32))


def test_engine_rejects_non_finite_pixels(network: NoduleNet) -> None:
    images = _images(2)
    images[1, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        InferenceEngine(network).predict(images)
