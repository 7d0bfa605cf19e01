"""Triton python-backend entry point of the ``chest_nodule`` model; thin, the logic lives beside it.

``modeling.export`` copies this file unchanged into every version folder as ``model.py``, next to
``chest_nodule_logic.py`` (a copy of ``modeling/network.py``) and ``weights.pt``. It runs inside Triton's
python backend stub, which provides ``triton_python_backend_utils`` (imported in ``initialize``, so this
module imports anywhere; tests substitute a fake).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Sibling module holding the network and its InferenceEngine.
LOGIC_MODULE = "chest_nodule_logic"
#: Sibling state-dict file.
WEIGHTS_FILE = "weights.pt"
INPUT_NAME = "IMAGE"


def _load_logic(folder: Path) -> ModuleType:
    """Import the sibling logic module by path, so each version runs its own copy."""
    spec = importlib.util.spec_from_file_location(LOGIC_MODULE, folder / f"{LOGIC_MODULE}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LOGIC_MODULE}.py from {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[LOGIC_MODULE] = module
    spec.loader.exec_module(module)
    return module


def _limit_threads(args: dict[str, str]) -> None:
    """Apply the config's ``torch_threads`` parameter (Triton passes the config as JSON in ``args``)."""
    import json

    import torch

    config = json.loads(args.get("model_config", "{}"))
    value = config.get("parameters", {}).get("torch_threads", {}).get("string_value", "")
    if value.isdigit() and int(value) > 0:
        torch.set_num_threads(int(value))


class TritonPythonModel:
    """Scores chest radiographs: LOGIT (raw, uncalibrated), EMBEDDING and intensity STATS per image."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load this version's network and weights (Triton calls this once per model instance)."""
        import triton_python_backend_utils

        self._pb = triton_python_backend_utils
        _limit_threads(args)
        folder = Path(__file__).resolve().parent
        logic = _load_logic(folder)
        self._engine = logic.InferenceEngine.from_weights(folder / WEIGHTS_FILE)
        self._output_names: tuple[str, ...] = tuple(logic.OUTPUT_NAMES)
        self._check = logic.InferenceEngine.validate

    def execute(self, requests: list[Any]) -> list[Any]:
        """Run all valid requests of the batch through the network at once; reject invalid ones singly."""
        pb_utils = self._pb
        responses: list[Any] = [None] * len(requests)
        accepted: list[tuple[int, NDArray[np.float32]]] = []
        for position, request in enumerate(requests):
            images = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
            try:
                accepted.append((position, self._check(images)))
            except ValueError as exc:
                responses[position] = pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{INPUT_NAME}: {exc}")
                )
        if accepted:
            outputs = self._engine.predict(np.concatenate([images for _, images in accepted]))
            start = 0
            for position, images in accepted:
                stop = start + images.shape[0]
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(outputs[name][start:stop]))
                    for name in self._output_names
                ]
                responses[position] = pb_utils.InferenceResponse(output_tensors=tensors)
                start = stop
        return responses

    def finalize(self) -> None:
        """Release the network (Triton calls this on unload)."""
        self._engine = None
