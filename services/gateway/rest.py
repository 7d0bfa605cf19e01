"""The Open Inference Protocol's REST/HTTP form (KServe v2, with Triton's binary tensor extension).

It serves on its own port (``RADGUARD_HTTP_PORT``) from the gateway's process and event loop, and runs
every call through the same code as the gRPC endpoint: an ``infer`` becomes the ``ModelInferRequest`` the
gRPC client would have sent and goes through :meth:`OpenInferenceServicer.infer` (same routing,
validation, event, calibration), metadata and admin calls through the same forwarding and the same
refusals. Callers authenticate as on gRPC (``Authorization: Bearer <token>``) against the same policy,
each path checked as the gRPC method it stands for.

tritonclient's HTTP client works unchanged: JSON tensors and the binary extension
(``Inference-Header-Content-Length``) both ways.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
from aiohttp import web
from google.protobuf import json_format
from tritonclient.grpc import service_pb2

from services.gateway.oip_servicer import (
    MODEL_CONTROL_REFUSAL,
    SETTINGS_REFUSAL,
    SHARED_MEMORY_REFUSAL,
    OpenInferenceServicer,
)
from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    bounded_message,
    internal_error_message,
    status_for,
)

_log = logging.getLogger(__name__)
_OIP = "/inference.GRPCInferenceService/"
#: Header of Triton's binary extension: the length of the JSON part before the tensors' bytes.
HEADER_LENGTH = "Inference-Header-Content-Length"
#: HTTP status for each gRPC status a call can end with.
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "FAILED_PRECONDITION": 400,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
}
#: Element types of the protocol's tensors (BYTES and BOOL are refused by the model's validation anyway).
_DTYPES: dict[str, str] = {
    "FP32": "<f4",
    "FP64": "<f8",
    "FP16": "<f2",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
#: Checks a caller against the gRPC method a path stands for; raises Unauthenticated / PermissionDenied.
Authenticate = Callable[[str, Mapping[str, str]], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _RestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _parameters_in(source: object, where: str, into: Any) -> None:
    """Copy a JSON ``parameters`` object into a protobuf parameter map."""
    if source is None:
        return
    if not isinstance(source, dict):
        raise InvalidArgument(where, "must be a JSON object")
    for key, value in source.items():
        if key == "binary_data_output":
            continue  # the HTTP form's own switch, handled here
        param = into[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise InvalidArgument(f"{where}.{key}", "is out of the 64-bit range")
            param.int64_param = value
        elif isinstance(value, float):
            param.double_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:
            raise InvalidArgument(f"{where}.{key}", "must be a string, number or boolean")


def _parameters_out(params: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(param, which)
    return out


def _shape(value: object, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise InvalidArgument(where, "must be a list of integers")
    if len(value) > 16 or any(not 0 <= d < 2**40 for d in value):
        raise InvalidArgument(where, "has too many or out-of-range dimensions")
    return list(value)


def _add_input(request: service_pb2.ModelInferRequest, tensor: object, where: str, blobs: bytes, offset: int) -> int:
    """Append one JSON tensor (JSON data, or a slice of the binary part); returns the new binary offset."""
    if not isinstance(tensor, dict):
        raise InvalidArgument(where, "must be a JSON object")
    name, datatype = tensor.get("name"), tensor.get("datatype")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InvalidArgument(where, "needs a name and a datatype (strings)")
    shape = _shape(tensor.get("shape"), f"{where}.shape")
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    tensor_params = tensor.get("parameters") or {}
    if not isinstance(tensor_params, dict):
        raise InvalidArgument(f"{where}.parameters", "must be a JSON object")
    for key in tensor_params:
        if key != "binary_data_size":
            raise InvalidArgument(f"{where}.parameters.{key}"[:80], "is not supported")
    size = tensor_params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(blobs):
            raise InvalidArgument(f"{where}.parameters.binary_data_size", "does not fit the binary data sent")
        request.raw_input_contents.append(blobs[offset : offset + size])
        return offset + size
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        raise InvalidArgument(f"{where}.datatype", f"{datatype[:16]!r} cannot be sent as JSON data here")
    try:
        data = np.asarray(tensor.get("data"), dtype=dtype).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(f"{where}.data", f"must be a (nested) list of {datatype} numbers") from None
    request.raw_input_contents.append(data.tobytes())
    return offset


def _add_outputs(request: service_pb2.ModelInferRequest, outputs: object, binary_default: bool) -> dict[str, bool]:
    """Append the requested outputs; returns which of them come back as binary."""
    binary: dict[str, bool] = {}
    if outputs is None:
        return binary
    if not isinstance(outputs, list):
        raise InvalidArgument("outputs", "must be a list")
    for i, output in enumerate(outputs):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidArgument(f"outputs[{i}]", "needs a name")
        out_params = output.get("parameters") or {}
        if not isinstance(out_params, dict):
            raise InvalidArgument(f"outputs[{i}].parameters", "must be a JSON object")
        request.outputs.add(name=output["name"])
        binary[output["name"]] = bool(out_params.get("binary_data", binary_default))
    return binary


def infer_request(
    model_name: str, version: str, header: object, blobs: bytes
) -> tuple[service_pb2.ModelInferRequest, dict[str, bool], bool]:
    """The gRPC request a REST ``infer`` body stands for, which outputs come back as binary, and the default.

    Args:
        model_name: From the path.
        version: From the path ("" when absent).
        header: The parsed JSON part.
        blobs: The bytes after the JSON part (binary extension), or empty.
    """
    if not isinstance(header, dict):
        raise InvalidArgument("body", "must be a JSON object")
    request = service_pb2.ModelInferRequest(model_name=model_name, model_version=version)
    request_id = header.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument("id", "must be a string")
    request.id = request_id
    parameters = header.get("parameters")
    _parameters_in(parameters, "parameters", request.parameters)
    binary_default = bool(isinstance(parameters, dict) and parameters.get("binary_data_output") is True)
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidArgument("inputs", "is required: a list of tensors")
    offset = 0
    for i, tensor in enumerate(inputs):
        offset = _add_input(request, tensor, f"inputs[{i}]", blobs, offset)
    if offset != len(blobs):
        raise InvalidArgument("body", f"carries {len(blobs) - offset} bytes of binary data no input claims")
    return request, _add_outputs(request, header.get("outputs"), binary_default), binary_default


def infer_response(
    response: service_pb2.ModelInferResponse, binary: Mapping[str, bool], binary_default: bool
) -> web.Response:
    """The REST answer for a gRPC response: JSON data, or the binary extension where the caller asked."""
    outputs: list[dict[str, object]] = []
    blobs: list[bytes] = []
    for meta, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        entry: dict[str, object] = {"name": meta.name, "datatype": meta.datatype, "shape": list(meta.shape)}
        if binary.get(meta.name, binary_default):
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            dtype = _DTYPES.get(meta.datatype)
            if dtype is None:
                entry["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                entry["data"] = np.frombuffer(raw, dtype=dtype).tolist()
        outputs.append(entry)
    body: dict[str, object] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        body["id"] = response.id
    body["parameters"] = _parameters_out(response.parameters)
    body["outputs"] = outputs
    text = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return web.Response(body=text, content_type="application/json")
    return web.Response(
        body=b"".join((text, *blobs)),
        content_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(text))},
    )


def _message_json(message: Any) -> object:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class RestEndpoint:
    """The HTTP server: an aiohttp application over the gRPC servicer."""

    def __init__(
        self,
        servicer: OpenInferenceServicer,
        authenticate: Authenticate | None,
        *,
        host: str,
        port: int,
        max_body_bytes: int,
        reuse_port: bool = False,
    ) -> None:
        self.servicer = servicer
        self._authenticate = authenticate
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._runner: web.AppRunner | None = None
        self._bound: int | None = None
        self.app = web.Application(client_max_size=max_body_bytes)
        self._routes()

    @property
    def port(self) -> int:
        """The bound port (the real one when port 0 was configured)."""
        if self._bound is None:
            raise RuntimeError("the HTTP endpoint is not started")
        return self._bound

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_port=self._reuse_port or None)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        self._bound = int(addresses[0][1]) if addresses else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- routing ---------------------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.app.router.add_route
        model = "/v2/models/{model}"
        versioned = "/v2/models/{model}/versions/{version}"
        add("GET", "/v2/health/live", self._wrap("ServerLive", self._live))
        add("GET", "/v2/health/ready", self._wrap("ServerReady", self._server_ready))
        add("GET", "/v2", self._wrap("ServerMetadata", self._server_metadata))
        add("POST", "/v2/repository/index", self._wrap("RepositoryIndex", self._index))
        add("POST", "/v2/repository/models/{model}/load", self._wrap("RepositoryModelLoad", self._control))
        add("POST", "/v2/repository/models/{model}/unload", self._wrap("RepositoryModelUnload", self._control))
        add("GET", "/v2/models/stats", self._wrap("ModelStatistics", self._stats))
        for base in (model, versioned):
            add("GET", base, self._wrap("ModelMetadata", self._model_metadata))
            add("GET", f"{base}/ready", self._wrap("ModelReady", self._model_ready))
            add("GET", f"{base}/config", self._wrap("ModelConfig", self._model_config))
            add("GET", f"{base}/stats", self._wrap("ModelStatistics", self._stats))
            add("POST", f"{base}/infer", self._wrap("ModelInfer", self._infer))
            add("GET", f"{base}/trace/setting", self._wrap("TraceSetting", self._trace))
            add("POST", f"{base}/trace/setting", self._wrap("TraceSetting", self._trace))
        add("GET", "/v2/trace/setting", self._wrap("TraceSetting", self._trace))
        add("POST", "/v2/trace/setting", self._wrap("TraceSetting", self._trace))
        add("GET", "/v2/logging", self._wrap("LogSettings", self._logging))
        add("POST", "/v2/logging", self._wrap("LogSettings", self._logging))
        for kind, method in (("systemsharedmemory", "SystemSharedMemory"), ("cudasharedmemory", "CudaSharedMemory")):
            for suffix in ("/status", "/region/{region}/status"):
                add("GET", f"/v2/{kind}{suffix}", self._wrap(f"{method}Status", self._shm_status))
            for suffix in ("/unregister", "/region/{region}/unregister"):
                add("POST", f"/v2/{kind}{suffix}", self._wrap(f"{method}Unregister", self._shm_unregister))
            add("POST", f"/v2/{kind}/region/{{region}}/register", self._wrap(f"{method}Register", self._shm_register))

    def _wrap(self, method: str, handler: Handler) -> Handler:
        full = f"{_OIP}{method}"

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                if self._authenticate is not None:
                    self._authenticate(full, request.headers)
                return await handler(request)
            except _RestError as exc:
                return _error(exc.status, exc.message)
            except DomainError as exc:
                code = status_for(exc).name
                return _error(_HTTP_STATUS.get(code, 500), bounded_message(exc.message))
            except web.HTTPException:
                raise
            except Exception:
                _log.exception("REST call %s failed unexpectedly", method)
                return _error(500, internal_error_message(None))

        return handle

    @staticmethod
    def _name(request: web.Request) -> tuple[str, str]:
        return request.match_info.get("model", ""), request.match_info.get("version", "")

    # ---- handlers --------------------------------------------------------------------------------

    async def _live(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def _server_ready(self, request: web.Request) -> web.StreamResponse:
        # The gRPC ServerReady's answer (Triton answers), so both doors say the same.
        reply = await self.servicer.ServerReady(service_pb2.ServerReadyRequest(), None)
        return web.Response(status=200 if reply.ready else 503)

    async def _server_metadata(self, request: web.Request) -> web.StreamResponse:
        reply = await self.servicer.ServerMetadata(service_pb2.ServerMetadataRequest(), None)
        return _json({"name": reply.name, "version": reply.version, "extensions": list(reply.extensions)})

    async def _model_metadata(self, request: web.Request) -> web.StreamResponse:
        name, version = self._name(request)
        reply = await self.servicer.forward(
            "ModelMetadata", service_pb2.ModelMetadataRequest(name=name, version=version), name, version
        )
        return _json(_message_json(reply))

    async def _model_ready(self, request: web.Request) -> web.StreamResponse:
        name, version = self._name(request)
        reply = await self.servicer.forward(
            "ModelReady", service_pb2.ModelReadyRequest(name=name, version=version), name, version
        )
        return web.Response(status=200 if reply.ready else 400)

    async def _model_config(self, request: web.Request) -> web.StreamResponse:
        name, version = self._name(request)
        reply = await self.servicer.forward(
            "ModelConfig", service_pb2.ModelConfigRequest(name=name, version=version), name, version
        )
        return _json(_message_json(reply.config))

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        name, version = self._name(request)
        reply = await self.servicer.forward(
            "ModelStatistics", service_pb2.ModelStatisticsRequest(name=name, version=version), name, version
        )
        return _json(_message_json(reply))

    async def _index(self, request: web.Request) -> web.StreamResponse:
        body = await self._body_json(request, allow_empty=True)
        ready = bool(body.get("ready", False)) if isinstance(body, dict) else False
        reply = await self.servicer.forward("RepositoryIndex", service_pb2.RepositoryIndexRequest(ready=ready))
        return _json([_message_json(model) for model in reply.models])

    async def _control(self, request: web.Request) -> web.StreamResponse:
        raise PermissionDenied(MODEL_CONTROL_REFUSAL)

    async def _trace(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and await self._body_json(request, allow_empty=True):
            raise PermissionDenied(SETTINGS_REFUSAL)
        name, _ = self._name(request)
        reply = await self.servicer.forward("TraceSetting", service_pb2.TraceSettingRequest(model_name=name), name)
        return _json({key: list(value.value) for key, value in reply.settings.items()})

    async def _logging(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and await self._body_json(request, allow_empty=True):
            raise PermissionDenied(SETTINGS_REFUSAL)
        reply = await self.servicer.forward("LogSettings", service_pb2.LogSettingsRequest())
        return _json(_parameters_out(reply.settings))

    async def _shm_status(self, request: web.Request) -> web.StreamResponse:
        return _json([])  # no region is ever registered

    async def _shm_unregister(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def _shm_register(self, request: web.Request) -> web.StreamResponse:
        raise _RestError(501, SHARED_MEMORY_REFUSAL)

    async def _body_json(self, request: web.Request, allow_empty: bool = False) -> Any:
        raw = await request.read()
        if not raw and allow_empty:
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("body", "is not valid JSON") from None

    async def _infer(self, request: web.Request) -> web.StreamResponse:
        name, version = self._name(request)
        raw = await request.read()
        length_text = request.headers.get(HEADER_LENGTH)
        if length_text is None:
            head, blobs = raw, b""
        else:
            try:
                length = int(length_text)
            except ValueError:
                raise InvalidArgument(HEADER_LENGTH, "must be an integer") from None
            if not 0 <= length <= len(raw):
                raise InvalidArgument(HEADER_LENGTH, f"{length} does not fit a body of {len(raw)} bytes")
            head, blobs = raw[:length], raw[length:]
        try:
            header = json.loads(head)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("body", "the inference header is not valid JSON") from None
        grpc_request, binary, binary_default = infer_request(name, version, header, blobs)
        reply = await self.servicer.infer(grpc_request)
        return infer_response(reply, binary, binary_default)
