"""InferenceBackend over Triton's gRPC API (the Open Inference Protocol), on a grpc.aio channel.

It builds ``ModelInferRequest`` messages directly with the generated modules tritonclient ships,
sending the image bytes as one raw input — no per-call client-library objects on the hot path.
"""

from __future__ import annotations

import grpc
import numpy as np
import numpy.typing as npt
from tritonclient.grpc import service_pb2, service_pb2_grpc

from services.gateway.domain import ModelOutputs
from services.runtime.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable

#: Model outputs the gateway reads, and the descriptor names it gives the STATS vector.
OUTPUT_LOGIT = "LOGIT"
OUTPUT_EMBEDDING = "EMBEDDING"
OUTPUT_STATS = "STATS"
STATS_NAMES = ("intensity.mean", "intensity.std", "intensity.p5", "intensity.p50", "intensity.p95")
INPUT_IMAGE = "IMAGE"


#: Default longest wait between reconnection attempts to Triton (gRPC's own default grows to 120 s).
RECONNECT_BACKOFF_MAX_MS = 1000


def channel_options(
    max_message_bytes: int, reconnect_backoff_max_ms: int = RECONNECT_BACKOFF_MAX_MS
) -> list[tuple[str, int]]:
    """Channel options shared by every hop to Triton.

    The reconnect backoff is bounded so that calls succeed again within about a second of Triton's return,
    however long it was away.
    """
    initial = min(100, reconnect_backoff_max_ms)
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.initial_reconnect_backoff_ms", initial),
        ("grpc.min_reconnect_backoff_ms", initial),
        ("grpc.max_reconnect_backoff_ms", reconnect_backoff_max_ms),
    ]


def outputs_from_response(response: service_pb2.ModelInferResponse) -> list[ModelOutputs]:
    """Split a batched Triton response into one ModelOutputs per image."""
    arrays: dict[str, npt.NDArray[np.float32]] = {}
    for meta, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        arrays[meta.name] = np.frombuffer(raw, dtype="<f4").reshape(tuple(meta.shape))
    if OUTPUT_LOGIT not in arrays:
        raise Unavailable("triton", f"model response has no {OUTPUT_LOGIT} output")
    logits = arrays[OUTPUT_LOGIT].reshape(-1)
    batch = logits.shape[0]
    emb = arrays.get(OUTPUT_EMBEDDING)
    stats = arrays.get(OUTPUT_STATS)
    result = []
    for i in range(batch):
        descriptors = dict(zip(STATS_NAMES, map(float, stats[i]), strict=False)) if stats is not None else {}
        result.append(
            ModelOutputs(
                logit=float(logits[i]),
                embedding=tuple(map(float, emb[i])) if emb is not None else (),
                descriptors=descriptors,
            )
        )
    return result


def map_rpc_error(exc: grpc.aio.AioRpcError, model_name: str, version: str) -> Exception:
    """Translate Triton's status into the gateway's domain errors."""
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"model '{model_name}' version {version} did not answer in time")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
        return Unavailable("triton", f"inference server unreachable ({code.name})")
    if code == grpc.StatusCode.NOT_FOUND or "unknown model" in (exc.details() or "").lower():
        return NotFound(f"model '{model_name}' version {version} in the inference server")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument("tensor", f"rejected by the model: {(exc.details() or '')[:200]}")
    return Unavailable("triton", f"inference failed ({code.name})")


class TritonBackend:
    """Scores images on Triton; one channel, shared by all requests."""

    def __init__(
        self,
        url: str,
        max_message_bytes: int = 64 * 1024 * 1024,
        outputs: tuple[str, ...] = (OUTPUT_LOGIT, OUTPUT_EMBEDDING, OUTPUT_STATS),
        reconnect_backoff_max_ms: int = RECONNECT_BACKOFF_MAX_MS,
    ) -> None:
        self.url = url
        self._channel = grpc.aio.insecure_channel(
            url, options=channel_options(max_message_bytes, reconnect_backoff_max_ms)
        )
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._outputs = outputs
        self._model_outputs: dict[str, tuple[str, ...]] = {}

    async def _outputs_for(self, model_name: str, timeout_s: float) -> tuple[str, ...]:
        known = self._model_outputs.get(model_name)
        if known is not None:
            return known
        try:
            meta = await self.stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=model_name), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, model_name, "") from None
        names = tuple(o.name for o in meta.outputs if o.name in self._outputs)
        self._model_outputs[model_name] = names
        return names

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        """Score a batch of images (shape (B, ...)) with one model version."""
        outputs = await self._outputs_for(model_name, timeout_s)
        request = service_pb2.ModelInferRequest(model_name=model_name, model_version=version)
        tensor = request.inputs.add()
        tensor.name = INPUT_IMAGE
        tensor.datatype = "FP32"
        tensor.shape.extend(images.shape)
        for name in outputs:
            request.outputs.add().name = name
        request.raw_input_contents.append(np.ascontiguousarray(images, dtype="<f4").tobytes())
        try:
            response = await self.stub.ModelInfer(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, model_name, version) from None
        return outputs_from_response(response)

    async def ready(self) -> bool:
        """True when Triton reports ready."""
        try:
            reply = await self.stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=2.0)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.ready)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)
