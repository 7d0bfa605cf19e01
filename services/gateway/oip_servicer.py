"""The Open Inference Protocol (``inference.GRPCInferenceService``) on the gateway's port.

tritonclient and KServe clients work unchanged against the gateway. Radiology context rides in
request parameters (``study_instance_uid``, ``patient_id``, ``sex``, ``age_years``, ``site_id``, ...);
the gateway strips them (the raw patient id never reaches Triton), routes the call, forwards the
caller's own ModelInferRequest to Triton (no re-serialisation of the tensor in Python), records the
prediction and returns Triton's response with the calibrated answer added as response parameters.

Every parameter is optional: a plain ``infer()`` is routed (by its id, or at random without one) and
recorded without study metadata. The REST/HTTP form of the protocol (:mod:`services.gateway.rest`) runs
through the same :meth:`OpenInferenceServicer.infer`.
"""

from __future__ import annotations

import logging
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
from services.gateway.streams import answer_each
from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    bounded_message,
    internal_error_message,
    status_for,
)
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
_NO_STUDY = Study("")
_NO_ACQUISITION = Acquisition()
_log = logging.getLogger(__name__)

#: Why model control is refused (PERMISSION_DENIED), on gRPC and REST alike.
MODEL_CONTROL_REFUSAL = (
    "the gateway does not load or unload models: what is served is decided by governance "
    "(radguard governance rollout), not by inference clients"
)
#: Why shared-memory registration is refused (UNIMPLEMENTED).
SHARED_MEMORY_REFUSAL = (
    "shared memory is not served by the radguard gateway (it runs apart from its callers): send tensors in the request"
)
#: Why trace and log settings cannot be changed through the gateway (PERMISSION_DENIED); they can be read.
SETTINGS_REFUSAL = "trace and log settings can be read through the gateway, not changed"


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


def _optional_text(params: Any, name: str) -> str:
    """A context string that may be absent (the study uid of a plain call)."""
    value = _param(params, name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"parameters.{name}", "must be a string parameter")
    return validation.bounded(value, f"parameters.{name}", validation.CONTEXT_LIMITS[name])


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
    """OIP over the gateway: health and read-only admin calls pass through; inference is routed and recorded.

    Model control (load/unload) is refused with PERMISSION_DENIED: what Triton serves is governance's
    decision (rollouts), never a scoring client's. Shared-memory registration is refused with UNIMPLEMENTED:
    the gateway and Triton run apart from the caller, so a caller's shared memory cannot reach them; the status
    calls answer that no region is registered. Trace and log settings can be read (Triton's), not changed.
    """

    def __init__(
        self,
        stub: service_pb2_grpc.GRPCInferenceServiceStub,
        backend: InferenceBackend,
        catalog: ModelCatalog,
        handler: PredictHandler,
        pseudonymiser: Pseudonymiser,
        max_image_bytes: int,
        timeout_s: float,
        stream_concurrency: int = 8,
    ) -> None:
        self.stub = stub
        self.backend = backend
        self.catalog = catalog
        self.handler = handler
        self.pseudonymiser = pseudonymiser
        self.max_image_bytes = max_image_bytes
        self.timeout_s = timeout_s
        self.stream_concurrency = stream_concurrency

    async def forward(self, method: str, request: Any, model_name: str = "", version: str = "") -> Any:
        """Call ``method`` on Triton with ``request``; Triton's errors become the gateway's domain errors."""
        try:
            return await getattr(self.stub, method)(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, model_name, version) from None

    async def ServerLive(self, request: Any, context: Any) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=await self.backend.ready())

    async def ServerMetadata(self, request: Any, context: Any) -> service_pb2.ServerMetadataResponse:
        upstream = await self.forward("ServerMetadata", request)
        return service_pb2.ServerMetadataResponse(
            name="radguard-gateway", version=upstream.version, extensions=list(upstream.extensions)
        )

    def _to_triton(self, request: Any) -> Any:
        """A copy of a per-model admin request naming the Triton model version that serves the registry's name
        and label (itself for a model without a route or with no served entry)."""
        name, version = request.name, request.version
        upstream = type(request)()
        upstream.CopyFrom(request)
        routes = self.handler.routes
        if version:
            target = routes.target(name, version)
            upstream.name, upstream.version = target.model, target.version
        else:
            upstream.name = routes.triton_model(name)
        return upstream

    async def ModelReady(self, request: Any, context: Any) -> service_pb2.ModelReadyResponse:
        return await self.forward("ModelReady", self._to_triton(request), request.name, request.version)

    async def ModelMetadata(self, request: Any, context: Any) -> service_pb2.ModelMetadataResponse:
        reply = await self.forward("ModelMetadata", self._to_triton(request), request.name, request.version)
        if reply.name != request.name:
            # The caller asked under the registry's name and hears it back; the versions are Triton's.
            reply.name = request.name
        return reply

    async def ModelConfig(self, request: Any, context: Any) -> service_pb2.ModelConfigResponse:
        return await self.forward("ModelConfig", self._to_triton(request), request.name, request.version)

    async def ModelStatistics(self, request: Any, context: Any) -> service_pb2.ModelStatisticsResponse:
        return await self.forward("ModelStatistics", self._to_triton(request), request.name, request.version)

    async def RepositoryIndex(self, request: Any, context: Any) -> service_pb2.RepositoryIndexResponse:
        return await self.forward("RepositoryIndex", request)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> service_pb2.RepositoryModelLoadResponse:
        raise PermissionDenied(MODEL_CONTROL_REFUSAL)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> service_pb2.RepositoryModelUnloadResponse:
        raise PermissionDenied(MODEL_CONTROL_REFUSAL)

    async def SystemSharedMemoryStatus(
        self, request: Any, context: Any
    ) -> service_pb2.SystemSharedMemoryStatusResponse:
        return service_pb2.SystemSharedMemoryStatusResponse()

    async def SystemSharedMemoryUnregister(
        self, request: Any, context: Any
    ) -> service_pb2.SystemSharedMemoryUnregisterResponse:
        return service_pb2.SystemSharedMemoryUnregisterResponse()  # nothing is ever registered

    async def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, SHARED_MEMORY_REFUSAL)

    async def CudaSharedMemoryStatus(self, request: Any, context: Any) -> service_pb2.CudaSharedMemoryStatusResponse:
        return service_pb2.CudaSharedMemoryStatusResponse()

    async def CudaSharedMemoryUnregister(
        self, request: Any, context: Any
    ) -> service_pb2.CudaSharedMemoryUnregisterResponse:
        return service_pb2.CudaSharedMemoryUnregisterResponse()

    async def CudaSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, SHARED_MEMORY_REFUSAL)

    async def TraceSetting(self, request: Any, context: Any) -> service_pb2.TraceSettingResponse:
        if request.settings:
            raise PermissionDenied(SETTINGS_REFUSAL)
        return await self.forward("TraceSetting", request, request.model_name)

    async def LogSettings(self, request: Any, context: Any) -> service_pb2.LogSettingsResponse:
        if request.settings:
            raise PermissionDenied(SETTINGS_REFUSAL)
        return await self.forward("LogSettings", request)

    def command(self, request: service_pb2.ModelInferRequest) -> PredictCommand:
        """Validate an inference request and read its radiology context (all of which is optional)."""
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
        shape = tuple(tensor.shape)
        if shape[:1] != (1,):
            raise InvalidArgument(
                "inputs[0].shape",
                f"{validation.brief(list(shape))}: the gateway scores one study per request (batch size 1)",
            )
        image = validation.tensor_image(
            request.raw_input_contents[0], shape, "FLOAT32", expected, self.max_image_bytes, "inputs[0]"
        )
        params = request.parameters
        if "request_id" in params:
            request_id = validation.context_text("request_id", _text(params, "request_id"), "parameters.request_id")
        elif request.id:
            request_id = validation.context_text("request_id", request.id, "id")
        else:
            request_id = ""  # a plain call: no retry identity, answered once
        if not any(name in params for name in CONTEXT_PARAMETERS):
            # A plain inference call (no radiology context): nothing to read, check or pseudonymise.
            return PredictCommand(model_name, request_id, _NO_STUDY, "", Sex.UNSPECIFIED, None, _NO_ACQUISITION, image)
        study_uid = _optional_text(params, "study_instance_uid")
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

    async def infer(self, request: service_pb2.ModelInferRequest) -> service_pb2.ModelInferResponse:
        """Route, run, record and answer one inference request (gRPC, streamed or REST alike).

        The caller's own message is forwarded to Triton with the radiology parameters removed; the reply is
        Triton's, with the calibrated answer added as response parameters.
        """
        received = time.perf_counter()
        command = self.command(request)
        params = request.parameters
        if params:
            for name in CONTEXT_PARAMETERS:
                if name in params:
                    del params[name]
        caller_id, request.id = request.id, ""  # the caller's request id goes no further than this call
        requested = [o.name for o in request.outputs]
        if requested:
            # The event needs the outputs the caller may not have asked for (only those the model has).
            declared = self.catalog.outputs(request.model_name)
            for name in _EVENT_OUTPUTS:
                if name not in requested and name in declared:
                    request.outputs.add().name = name
        holder: list[service_pb2.ModelInferResponse] = []
        model_name = request.model_name
        model_infer = self.stub.ModelInfer
        timeout_s = self.timeout_s
        routes = self.handler.routes

        async def run(version: str) -> ModelOutputs:
            # Triton is asked for the model version serving this label; the caller hears the registry's names.
            target = routes.target(model_name, version)
            request.model_name, request.model_version = target.model, target.version
            try:
                upstream = await model_infer(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                raise map_rpc_error(exc, model_name, version) from None
            upstream.model_name, upstream.model_version = model_name, version
            holder.append(upstream)
            return outputs_from_response(upstream)[0]

        prediction = await self.handler.predict(command, received, runner=run, pinned_version=request.model_version)
        if not holder:
            # A retry of an answered request: the recorded prediction stands; the tensors are recomputed
            # on the same version (the model is deterministic) so the reply has the same shape.
            await run(prediction.version)
        upstream = holder[-1]
        if requested:
            keep = [i for i, o in enumerate(upstream.outputs) if o.name in requested]
            if len(keep) != len(upstream.outputs):
                outputs = [upstream.outputs[i] for i in keep]
                raws = [upstream.raw_output_contents[i] for i in keep] if upstream.raw_output_contents else []
                del upstream.outputs[:]
                del upstream.raw_output_contents[:]
                upstream.outputs.extend(outputs)
                upstream.raw_output_contents.extend(raws)
        answer = upstream.parameters
        answer["prediction_id"].string_param = prediction.prediction_id
        answer["probability"].double_param = prediction.probability
        answer["threshold"].double_param = prediction.threshold
        answer["decision"].string_param = "positive" if prediction.positive else "negative"
        answer["arm"].string_param = prediction.arm.value
        answer["route_revision"].int64_param = prediction.route_revision
        upstream.id = caller_id
        return upstream

    async def ModelInfer(self, request: service_pb2.ModelInferRequest, context: Any) -> service_pb2.ModelInferResponse:
        return await self.infer(request)

    async def _stream_item(self, request: service_pb2.ModelInferRequest) -> service_pb2.ModelStreamInferResponse:
        """One streamed request's answer: the inference, or its error in ``error_message`` (never an exception)."""
        try:
            return service_pb2.ModelStreamInferResponse(infer_response=await self.infer(request))
        except DomainError as exc:
            message = f"[{status_for(exc).name}] {bounded_message(exc.message)}"
        except Exception:
            _log.exception("inference stream item failed unexpectedly")
            message = f"[INTERNAL] {internal_error_message(None)}"
        return service_pb2.ModelStreamInferResponse(
            error_message=message,
            infer_response=service_pb2.ModelInferResponse(
                model_name=request.model_name[:128], model_version=request.model_version[:32], id=request.id[:128]
            ),
        )

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[service_pb2.ModelInferRequest], context: Any
    ) -> AsyncIterator[service_pb2.ModelStreamInferResponse]:
        """Bidirectional streaming as tritonclient's ``start_stream`` uses it.

        Each request is answered by one response in the order its inference finishes (match them by id); at
        most ``stream_concurrency`` run at once. A request that fails is answered with ``error_message`` set
        and the stream goes on, as Triton does. An undecodable message ends the stream with INVALID_ARGUMENT
        once the requests before it are answered.
        """
        async for item in answer_each(request_iterator, self._stream_item, self.stream_concurrency, _unreadable):
            yield item


def _unreadable(_: Exception, index: int) -> DomainError:
    """The status a stream ends with when message ``index`` cannot be read."""
    return InvalidArgument(f"requests[{index}]", "could not be decoded as a ModelInferRequest")


def register(server: RadguardServer, servicer: OpenInferenceServicer) -> None:
    """Add ``inference.GRPCInferenceService`` to ``server`` (health and reflection included)."""
    server.add_service(
        service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
        lambda s: service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, s),
    )
