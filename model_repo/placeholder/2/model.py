"""Triton python-backend entry point for the placeholder model (thin: logic in placeholder_logic)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils  # provided by Triton's python backend at run time

sys.path.insert(0, str(Path(__file__).resolve().parent))

from placeholder_logic import score_batch


class TritonPythonModel:
    """Scores a batch of images with the placeholder rule."""

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            logits = score_batch(images)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("LOGIT", logits)]))
        return responses
