"""TritonModelControl against the stack's real Triton (explicit model control).

Uses the placeholder model (cheap to load) and always leaves it with versions 1 and 2 loaded, the way
the stack starts it, because other tests route to both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from tritonclient.grpc.aio import InferenceServerClient

from services.governance_api.adapters.triton import TritonModelControl
from services.runtime.errors import FailedPrecondition, NotFound
from stack.settings import REPO_ROOT
from tests.integration.conftest import StackEndpoints

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MODEL = "placeholder"


@pytest_asyncio.fixture(loop_scope="session")
async def control(stack: StackEndpoints) -> AsyncIterator[TritonModelControl]:
    triton = TritonModelControl(stack.triton_grpc_url, REPO_ROOT / "model_repo")
    try:
        yield triton
    finally:
        await triton.load(MODEL, {1, 2})
        await triton.close()


async def test_load_serves_exactly_the_given_versions(control: TritonModelControl, stack: StackEndpoints) -> None:
    await control.load(MODEL, {1, 2})
    assert await control.loaded_versions(MODEL) == {1, 2}

    await control.load(MODEL, {2})
    assert await control.loaded_versions(MODEL) == {2}
    client = InferenceServerClient(stack.triton_grpc_url)
    try:
        assert await client.is_model_ready(MODEL, "2")
        assert not await client.is_model_ready(MODEL, "1")
        config = await client.get_model_config(MODEL, as_json=True)
        assert config["config"]["max_batch_size"] == 8  # the rest of config.pbtxt is kept
    finally:
        await client.close()

    await control.load(MODEL, {1, 2})
    assert await control.loaded_versions(MODEL) == {1, 2}


async def test_unknown_model_or_version_is_refused(control: TritonModelControl) -> None:
    with pytest.raises(NotFound, match="no_such_model"):
        await control.load("no_such_model", {1})
    with pytest.raises(FailedPrecondition, match="has no version 7"):
        await control.load(MODEL, {1, 7})
    assert await control.loaded_versions(MODEL) == {1, 2}
    assert await control.loaded_versions("no_such_model") == set()
    assert await control.is_ready()
