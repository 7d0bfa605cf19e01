"""The real Triton serves both chest_nodule versions exactly as the in-process InferenceEngine computes them."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from numpy.typing import NDArray
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from modeling.cohorts import simulate_cohort
from modeling.network import InferenceEngine
from tests.integration.conftest import StackEndpoints

REPO = Path(__file__).resolve().parents[3]
MODEL = "chest_nodule"
VERSIONS = ("1", "2")
OUTPUTS = ("LOGIT", "EMBEDDING", "STATS")


def exported_logic(version: str) -> ModuleType:
    """The version folder's own copy of the network module, imported the way model.py imports it."""
    path = REPO / "model_repo" / MODEL / version / "chest_nodule_logic.py"
    spec = importlib.util.spec_from_file_location(f"chest_nodule_logic_v{version}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _infer(
    client: triton_aio.InferenceServerClient, version: str, images: NDArray[Any]
) -> dict[str, NDArray[Any]]:
    tensor = InferInput("IMAGE", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = await client.infer(
        MODEL, [tensor], model_version=version, outputs=[InferRequestedOutput(name) for name in OUTPUTS]
    )
    return {name: result.as_numpy(name) for name in OUTPUTS}


async def _ensure_loaded(client: triton_aio.InferenceServerClient) -> None:
    # The server runs in explicit model-control mode; a stack started before this model was exported has
    # not loaded it yet.
    if not all([await client.is_model_ready(MODEL, v) for v in VERSIONS]):
        await client.load_model(MODEL)


@pytest.mark.asyncio
async def test_both_versions_match_the_in_process_engine(stack: StackEndpoints) -> None:
    images = simulate_cohort("baseline", 5, 0, 12).images
    client = triton_aio.InferenceServerClient(stack.triton_grpc_url)
    try:
        await _ensure_loaded(client)
        served: dict[str, dict[str, NDArray[Any]]] = {}
        for version in VERSIONS:
            assert await client.is_model_ready(MODEL, version)
            folder = REPO / "model_repo" / MODEL / version
            expected = exported_logic(version).InferenceEngine.from_weights(folder / "weights.pt").predict(images)
            # The repository's module is the one under test in-process too: same numbers.
            same = InferenceEngine.from_weights(folder / "weights.pt").predict(images)
            got = await _infer(client, version, images)
            assert {name: got[name].shape for name in OUTPUTS} == {
                "LOGIT": (12, 1),
                "EMBEDDING": (12, 8),
                "STATS": (12, 5),
            }
            for name in OUTPUTS:
                assert got[name].dtype == np.float32
                np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-4, err_msg=f"v{version} {name}")
                np.testing.assert_allclose(same[name], expected[name], rtol=0, atol=0)
            served[version] = got
        # Two different models: the logits differ, the image statistics do not.
        assert not np.allclose(served["1"]["LOGIT"], served["2"]["LOGIT"], atol=1e-3)
        np.testing.assert_allclose(served["1"]["STATS"], served["2"]["STATS"], atol=1e-6)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_concurrent_requests_are_batched_without_mixing_results(stack: StackEndpoints) -> None:
    images = simulate_cohort("baseline", 5, 100, 8).images
    client = triton_aio.InferenceServerClient(stack.triton_grpc_url)
    try:
        await _ensure_loaded(client)
        singles = await asyncio.gather(*(_infer(client, "2", images[k : k + 1]) for k in range(len(images))))
        whole = await _infer(client, "2", images)
        for k, single in enumerate(singles):
            for name in OUTPUTS:
                np.testing.assert_allclose(single[name][0], whole[name][k], rtol=0, atol=1e-4)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_invalid_pixels_are_rejected_with_a_message(stack: StackEndpoints) -> None:
    images = simulate_cohort("baseline", 5, 0, 1).images.copy()
    images[0, 0, 3, 3] = np.nan
    client = triton_aio.InferenceServerClient(stack.triton_grpc_url)
    try:
        await _ensure_loaded(client)
        with pytest.raises(InferenceServerException, match="NaN"):
            await _infer(client, "1", images)
    finally:
        await client.close()
