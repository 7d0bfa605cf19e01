"""Registry names in, Triton targets out: the catalog and backend as the prediction use case sees them.

Callers (servicers, the handler) speak governance's names: a model's registry name and a version label,
which is also what predictions are recorded under. What answers is the Triton model version the route
table's ``served`` entry names for that label (``chest_nodule-demo-7`` version ``2`` may be Triton's
``chest_nodule`` version 2). These two facades resolve the one into the other through the RouteBook, so no
caller looks the target up itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.gateway.calibration import Calibration
from services.gateway.domain import ModelOutputs
from services.gateway.ports import InferenceBackend, ModelCatalog
from services.gateway.routing import RouteBook


class RoutedCatalog:
    """A ModelCatalog keyed by registry name over one keyed by Triton model (the model repository)."""

    def __init__(self, repository: ModelCatalog, routes: RouteBook) -> None:
        """Resolve through ``routes`` into ``repository``."""
        self.repository = repository
        self.routes = routes

    def input_shape(self, model_name: str) -> tuple[int, ...]:
        """Image shape of the Triton model serving the route's stable version."""
        return self.repository.input_shape(self.routes.triton_model(model_name))

    def outputs(self, model_name: str) -> tuple[str, ...]:
        """Output names of the Triton model serving the route's stable version."""
        return self.repository.outputs(self.routes.triton_model(model_name))

    def calibration(self, model_name: str, version: str) -> Calibration:
        """Temperature and threshold of the Triton model version serving ``version``."""
        target = self.routes.target(model_name, version)
        return self.repository.calibration(target.model, target.version)


class RoutedBackend:
    """An InferenceBackend keyed by registry name over Triton (keyed by Triton model and version)."""

    def __init__(self, triton: InferenceBackend, routes: RouteBook) -> None:
        """Resolve through ``routes`` before calling ``triton``."""
        self.triton = triton
        self.routes = routes

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        """Score a batch on the Triton model version serving ``version`` of ``model_name``."""
        target = self.routes.target(model_name, version)
        return await self.triton.infer(target.model, target.version, images, timeout_s)

    async def ready(self) -> bool:
        """True when Triton answers."""
        return await self.triton.ready()
