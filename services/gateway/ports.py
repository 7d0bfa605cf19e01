"""The gateway's ports: what the prediction use case needs from the outside world."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from services.gateway.calibration import Calibration
from services.gateway.domain import ModelOutputs, PredictCommand, Prediction


class InferenceBackend(Protocol):
    """Runs a model version on images (Triton in production)."""

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        """Score a batch; raises Unavailable / DeadlineExceeded / NotFound."""
        ...

    async def ready(self) -> bool:
        """True when the backend answers."""
        ...


class ModelCatalog(Protocol):
    """What the gateway knows about each servable model version."""

    def input_shape(self, model_name: str) -> tuple[int, ...]:
        """Expected shape of one image (without the batch axis); NotFound for unknown models."""
        ...

    def calibration(self, model_name: str, version: str) -> Calibration:
        """Temperature and threshold of a version; NotFound if unknown."""
        ...

    def outputs(self, model_name: str) -> tuple[str, ...]:
        """Names of the model's outputs; NotFound for unknown models."""
        ...


class PredictionSink(Protocol):
    """Records predictions as events; never waits for the event bus."""

    def accepting(self) -> bool:
        """False when events could not be recorded durably (spool full): refuse new work then."""
        ...

    def record(self, command: PredictCommand, prediction: Prediction) -> None:
        """Record the event for ``prediction``, in order, before the answer leaves.

        Once this returns the event survives the gateway process; it survives the machine shortly after
        (group commit). Raises ResourceExhausted when the event cannot be recorded (spool full).
        """
        ...
