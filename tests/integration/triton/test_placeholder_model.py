"""Triton is real and serves model_repo/: tritonclient.grpc.aio against the stack's server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput, InferRequestedOutput

from tests.integration.conftest import StackEndpoints

REPO = Path(__file__).resolve().parents[3]


def placeholder_logic() -> ModuleType:
    path = REPO / "model_repo" / "placeholder" / "1" / "placeholder_logic.py"
    spec = importlib.util.spec_from_file_location("placeholder_logic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.asyncio
async def test_placeholder_inference_matches_in_process_logic(stack: StackEndpoints) -> None:
    client = triton_aio.InferenceServerClient(stack.triton_grpc_url)
    try:
        assert await client.is_server_ready()
        assert await client.is_model_ready("placeholder", "1")
        meta = await client.get_server_metadata()
        assert meta.version == "2.51.0"
        rng = np.random.default_rng(7)
        images = rng.normal(0.3, 0.2, size=(4, 1, 128, 128)).astype(np.float32)
        tensor = InferInput("IMAGE", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images)
        result = await client.infer("placeholder", [tensor], model_version="1", outputs=[InferRequestedOutput("LOGIT")])
        got = result.as_numpy("LOGIT")
        expected = placeholder_logic().score_batch(images)
        assert got.shape == (4, 1)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        # The model depends on its input: different images give different logits.
        assert len({round(float(v), 5) for v in got.ravel()}) == 4
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_repository_index_lists_model_repo(stack: StackEndpoints) -> None:
    client = triton_aio.InferenceServerClient(stack.triton_grpc_url)
    try:
        index = await client.get_model_repository_index()
        names = {m.name for m in index.models}
        on_disk = {p.parent.name for p in (REPO / "model_repo").glob("*/config.pbtxt")}
        assert on_disk <= names
        ready = {m.name for m in index.models if m.state == "READY"}
        assert "placeholder" in ready
    finally:
        await client.close()
