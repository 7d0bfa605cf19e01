"""The Open Inference Protocol (``inference.GRPCInferenceService``) on the gateway's port.

tritonclient and KServe clients work unchanged against the gateway. Radiology context rides in
request parameters (``study_instance_uid``, ``patient_id``, ``sex``, ``age_years``, ``site_id``, ...);
the gateway strips them (the raw patient id never reaches Triton), routes the call, forwards the
caller's own ModelInferRequest to Triton (no re-serialisation of the tensor in Python), records the
prediction and returns Triton's response with the calibrated answer added as response parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from services.gateway import validation
from services.gateway.adapters.triton import (
    INPUT_IMAGE,
    OUTPUT_EMBEDDING,
    OUTPUT_LOGIT,
    OUTPUT_STATS,
    map_rpc_error,
    outputs_from_response,
)
from services.gateway.domain import Acquisition, ModelOutputs, PredictCommand, Sex, Study
from services.gateway.handlers import PredictHandler
from services.gateway.ports import InferenceBackend, ModelCatalog
from services.gateway.pseudonym import Pseudonymiser
from services.runtime.errors import InvalidArgument
from services.runtime.server import RadguardServer

#: Request parameters that carry radiology context (all removed before the request goes to Triton).
CONTEXT_PARAMETERS = (
    "request_id",
    "study_instance_uid",
    "series_instance_uid",
    "accession_number",
    "patient_id",
    "issuer",
    "sex",
    "age_years",
    "site_id",
    "modality",
    "body_part",
    "manufacturer",
    "manufacturer_model",
    "protocol_name",
    "pixel_spacing_row_mm",
    "pixel_spacing_col_mm",
)
_SEX = {
    "": Sex.UNSPECIFIED,
    "F": Sex.FEMALE,
    "FEMALE": Sex.FEMALE,
    "M": Sex.MALE,
    "MALE": Sex.MALE,
    "O": Sex.OTHER,
    "OTHER": Sex.OTHER,
}
_EVENT_OUTPUTS = (OUTPUT_LOGIT, OUTPUT_EMBEDDING, OUTPUT_STATS)


def _param(params: Any, name: str) -> str | int | float | bool | None:
    if name not in params:
        return None
    p = params[name]
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def _text(params: Any, name: str) -> str:
    """A radiology context string parameter, checked by the same rule as the radguard API's fields."""
    value = _param(params, name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidArgument(f"parameters.{name}", "must be a string parameter")
    return validation.context_text(name, value, f"parameters.{name}")


#: Longest text accepted where a number is expected (``"61"``, ``"0.7"``).
_MAX_NUMBER_TEXT = 32


def _number(params: Any, name: str) -> float | None:
    """A numeric parameter (int, double or a short decimal string); finiteness is checked by the caller."""
    value = _param(params, name)
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, int | float):
        return float(value)
    if len(value) > _MAX_NUMBER_TEXT:
        raise InvalidArgument(f"parameters.{name}", f"must be a number (a string of at most {_MAX_NUMBER_TEXT})")
    try:
        return float(value)
    except ValueError:
        raise InvalidArgument(f"parameters.{name}", f"must be a number, got {validation.brief(value)}") from None


class OpenInferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """OIP over the gateway: health and metadata pass through; ModelInfer is routed and recorded."""

    def __init__(
        self,
        stub: service_pb2_grpc.GRPCInferenceServiceStub,
        backend: InferenceBackend,
        catalog: ModelCatalog,
        handler: PredictHandler,
        pseudonymiser: Pseudonymiser,
        max_image_bytes: int,
        timeout_s: float,
    ) -> None:
        self.stub = stub
        self.backend = backend
        self.catalog = catalog
        self.handler = handler
        self.pseudonymiser = pseudonymiser
        self.max_image_bytes = max_image_bytes
        self.timeout_s = timeout_s

    async def _forward(self, method: str, request: Any, model_name: str = "", version: str = "") -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, model_name, version) from None

    async def ServerLive(self, request: Any, context: Any) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=await self.backend.ready())

    async def ServerMetadata(self, request: Any, context: Any) -> service_pb2.ServerMetadataResponse:
        upstream = await self._forward("ServerMetadata", request)
        return service_pb2.ServerMetadataResponse(
            name="radguard-gateway", version=upstream.version, extensions=list(upstream.extensions)
        )

    async def ModelReady(self, request: Any, context: Any) -> service_pb2.ModelReadyResponse:
        return await self._forward("ModelReady", request, request.name, request.version)

    async def ModelMetadata(self, request: Any, context: Any) -> service_pb2.ModelMetadataResponse:
        return await self._forward("ModelMetadata", request, request.name, request.version)

    async def ModelConfig(self, request: Any, context: Any) -> service_pb2.ModelConfigResponse:
        return await self._forward("ModelConfig", request, request.name, request.version)

    def _command(self, request: service_pb2.ModelInferRequest) -> PredictCommand:
        model_name = validation.context_text("model_name", request.model_name, "model_name")
        validation.context_text("model_version", request.model_version, "model_version")
        expected = self.catalog.input_shape(model_name)
        if len(request.inputs) != 1 or request.inputs[0].name != INPUT_IMAGE:
            raise InvalidArgument("inputs", f"exactly one input named {INPUT_IMAGE} is expected")
        tensor = request.inputs[0]
        if tensor.datatype != "FP32":
            raise InvalidArgument(
                "inputs[0].datatype", f"{validation.brief(tensor.datatype)} is not supported; send FP32"
            )
        if len(request.raw_input_contents) != 1:
            raise InvalidArgument("raw_input_contents", "send the tensor as raw bytes (binary data)")
        shape = tuple(int(d) for d in tensor.shape)
        if shape[:1] != (1,):
            raise InvalidArgument(
                "inputs[0].shape",
                f"{validation.brief(list(shape))}: the gateway scores one study per request (batch size 1)",
            )
        image = validation.tensor_image(
            request.raw_input_contents[0], shape, "FLOAT32", expected, self.max_image_bytes, "inputs[0]"
        )
        params = request.parameters
        request_id = validation.context_text(
            "request_id",
            _text(params, "request_id") if "request_id" in params else request.id,
            "parameters.request_id" if "request_id" in params else "id",
        )
        study_uid = _text(params, "study_instance_uid")
        sex_text = _text(params, "sex").upper()
        if sex_text not in _SEX:
            raise InvalidArgument("parameters.sex", f"must be F, M or O, got {validation.brief(sex_text)}")
        age_value = _number(params, "age_years")
        age = validation.age(age_value if age_value is not None else 0.0, age_value is not None, "parameters.age_years")
        row = _number(params, "pixel_spacing_row_mm") or 0.0
        col = _number(params, "pixel_spacing_col_mm") or 0.0
        row, col = validation.pixel_spacing(row, col, "parameters.pixel_spacing")
        strings = {
            k: _text(params, k)
            for k in ("site_id", "modality", "body_part", "manufacturer", "manufacturer_model", "protocol_name")
        }
        return PredictCommand(
            model_name=model_name,
            request_id=request_id,
            study=Study(study_uid, _text(params, "series_instance_uid"), _text(params, "accession_number")),
            patient_pseudonym=self.pseudonymiser.pseudonym(_text(params, "patient_id"), _text(params, "issuer")),
            sex=_SEX[sex_text],
            age_years=age,
            acquisition=Acquisition(**strings, pixel_spacing_row_mm=row, pixel_spacing_col_mm=col),
            image=image,
        )

    async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        """Not served yet: refused deliberately once the caller has finished sending (use ModelInfer).

        The requests are drained first (for at most a second): a stream refused while the client is still
        writing can reach the client as INTERNAL ("Internal error from Core") instead of the status sent.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for _ in request_iterator:
                    pass
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "ModelStreamInfer is not served by the radguard gateway: use ModelInfer"
        )
        yield  # pragma: no cover - abort raises; the yield makes this a response stream

    async def ModelInfer(self, request: service_pb2.ModelInferRequest, context: Any) -> service_pb2.ModelInferResponse:
        received = time.perf_counter()
        command = self._command(request)
        for name in CONTEXT_PARAMETERS:
            if name in request.parameters:
                del request.parameters[name]
        caller_id, request.id = request.id, ""  # the caller's request id goes no further than this call
        requested = [o.name for o in request.outputs]
        if requested:
            for name in _EVENT_OUTPUTS:
                if name not in requested:
                    request.outputs.add().name = name
        holder: dict[str, service_pb2.ModelInferResponse] = {}

        async def run(version: str) -> ModelOutputs:
            request.model_version = version
            upstream = await self._forward("ModelInfer", request, request.model_name, version)
            holder["response"] = upstream
            return outputs_from_response(upstream)[0]

        prediction = await self.handler.predict(command, received, runner=run, pinned_version=request.model_version)
        if "response" not in holder:
            # A retry of an answered request: the recorded prediction stands; the tensors are recomputed
            # on the same version (the model is deterministic) so the reply has the same shape.
            await run(prediction.version)
        upstream = holder["response"]
        if requested:
            keep = [i for i, o in enumerate(upstream.outputs) if o.name in requested]
            if len(keep) != len(upstream.outputs):
                outputs = [upstream.outputs[i] for i in keep]
                raws = [upstream.raw_output_contents[i] for i in keep] if upstream.raw_output_contents else []
                del upstream.outputs[:]
                del upstream.raw_output_contents[:]
                upstream.outputs.extend(outputs)
                upstream.raw_output_contents.extend(raws)
        params = upstream.parameters
        params["prediction_id"].string_param = prediction.prediction_id
        params["probability"].double_param = prediction.probability
        params["threshold"].double_param = prediction.threshold
        params["decision"].string_param = "positive" if prediction.positive else "negative"
        params["arm"].string_param = prediction.arm.value
        params["route_revision"].int64_param = prediction.route_revision
        upstream.id = caller_id
        return upstream


def register(server: RadguardServer, servicer: OpenInferenceServicer) -> None:
    """Add ``inference.GRPCInferenceService`` to ``server`` (health and reflection included)."""
    server.add_service(
        service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
        lambda s: service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, s),
    )
