"""The stack's own gateway (secure mode) on its REST port: callers authenticate and roles apply as on gRPC."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from stack.components.services import client_tokens
from stack.manager import Stack
from tests.integration.gateway.test_predict import image

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


def _calls(url: str, tokens: dict[str, str]) -> dict[str, str]:
    client = httpclient.InferenceServerClient(url)
    img = image(4)[np.newaxis]
    tensor = httpclient.InferInput("IMAGE", list(img.shape), "FP32")
    tensor.set_data_from_numpy(img)
    outcome: dict[str, str] = {"live": str(client.is_server_live())}  # open, like gRPC's ServerLive

    def attempt(name: str, token: str | None, call: str) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            if call == "infer":
                client.infer("placeholder", [tensor], headers=headers)
            else:
                client.get_model_metadata("placeholder", headers=headers)
            outcome[name] = "ok"
        except InferenceServerException as exc:
            outcome[name] = str(exc.status())

    attempt("infer without a token", None, "infer")
    attempt("infer with an unknown token", "not-a-token", "infer")
    attempt("infer as the hospital system", tokens["RADGUARD_GATEWAY_TOKEN"], "infer")
    attempt("infer as an operator", tokens["RADGUARD_OPERATOR_TOKEN"], "infer")
    attempt("metadata as an operator", tokens["RADGUARD_OPERATOR_TOKEN"], "metadata")
    client.close()
    return outcome


async def test_rest_callers_authenticate_and_roles_apply(real_stack: Stack) -> None:
    s = real_stack.settings
    tokens = client_tokens(s.state_dir)
    outcome = await asyncio.to_thread(_calls, f"{s.host}:{s.gateway_http_port}", tokens)
    assert outcome == {
        "live": "True",
        "infer without a token": "401",
        "infer with an unknown token": "401",
        "infer as the hospital system": "ok",
        "infer as an operator": "403",
        "metadata as an operator": "ok",
    }
