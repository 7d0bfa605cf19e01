"""PredictStream on a real grpc.aio server (fakes behind the ports): every item answered, or a status, promptly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from radguard.common.v1 import common_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.calibration import Calibration
from services.gateway.domain import ModelOutputs, PredictCommand, Prediction
from services.gateway.handlers import PredictHandler
from services.gateway.pseudonym import Pseudonymiser
from services.gateway.routing import Route, RouteBook
from services.gateway.servicer import InferenceGatewayServicer, RequestLimits, RequestTranslator, register
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.errors import NotFound
from services.runtime.server import RadguardServer

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

SHAPE = (1, 4, 4)
METHOD = "/radguard.inference.v1.InferenceGateway/PredictStream"


class Backend:
    """Scores by the image mean; an image whose first pixel is 13 makes it fail like a bug would."""

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        await asyncio.sleep(0.001)
        if images[0].flat[0] == 13.0:
            raise RuntimeError("a bug in the backend adapter")
        return [ModelOutputs(float(images.mean()), (), {})]

    async def ready(self) -> bool:
        return True


class Catalog:
    def input_shape(self, model_name: str) -> tuple[int, ...]:
        if model_name != "m":
            raise NotFound(f"model '{model_name}'")
        return SHAPE

    def calibration(self, model_name: str, version: str) -> Calibration:
        return Calibration(1.0, 0.5)

    def outputs(self, model_name: str) -> tuple[str, ...]:
        return ("LOGIT",)


class Sink:
    def __init__(self) -> None:
        self.recorded: list[Prediction] = []

    def accepting(self) -> bool:
        return True

    def record(self, command: PredictCommand, prediction: Prediction) -> None:
        self.recorded.append(prediction)


@dataclass
class Running:
    port: int
    sink: Sink


@pytest_asyncio.fixture(loop_scope="session")
async def gateway() -> AsyncIterator[Running]:
    settings = load_settings(
        ServiceSettings,
        {
            "RADGUARD_GRPC_HOST": "127.0.0.1",
            "RADGUARD_GRPC_PORT": "0",
            "RADGUARD_METRICS_ENABLED": "false",
            "RADGUARD_DRAIN_GRACE_S": "0",
            "RADGUARD_LOG_LEVEL": "warning",
        },
    )
    book = RouteBook()
    book.apply(Route("m", "1", revision=1))
    book.mark_loaded()
    sink = Sink()
    handler = PredictHandler(Backend(), Catalog(), book, sink)
    translator = RequestTranslator(Catalog(), Pseudonymiser(b"contract-test-key-0123"), RequestLimits())
    server = RadguardServer(settings)
    register(server, InferenceGatewayServicer(translator, handler, book))
    await server.start()
    try:
        yield Running(server.port, sink)
    finally:
        await server.stop(0)


def request(i: int, first_pixel: float = 0.5) -> inference_pb2.PredictRequest:
    pixels = np.full(SHAPE, 0.5, dtype="<f4")
    pixels.flat[0] = first_pixel
    return inference_pb2.PredictRequest(
        model_name="m",
        request_id=f"req-{i}",
        study=common_pb2.StudyRef(study_instance_uid=f"2.25.{i}"),
        tensor=common_pb2.Tensor(data=pixels.tobytes(), shape=list(SHAPE), dtype=common_pb2.DATA_TYPE_FLOAT32),
    )


async def test_a_failing_item_is_answered_and_the_rest_go_on(gateway: Running) -> None:
    reqs = [request(0), request(1, first_pixel=13.0), request(2)]
    bad_field = request(3)
    bad_field.study.study_instance_uid = "x\x00y"
    reqs.append(bad_field)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = inference_pb2_grpc.InferenceGatewayStub(channel)
        answers = [a async for a in stub.PredictStream(iter(reqs), timeout=10)]
    by_id = {a.request_id: a for a in answers}
    assert sorted(by_id) == ["req-0", "req-1", "req-2", "req-3"]
    assert by_id["req-0"].prediction_id and not by_id["req-0"].HasField("error")
    assert by_id["req-2"].prediction_id and not by_id["req-2"].HasField("error")
    assert by_id["req-1"].error.code == grpc.StatusCode.INTERNAL.value[0]
    assert by_id["req-1"].error.message.startswith("internal error") and "bug" not in by_id["req-1"].error.message
    assert by_id["req-3"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert by_id["req-3"].error.message.startswith("study.study_instance_uid")
    assert by_id["req-3"].study.study_instance_uid == ""  # a value that may not be echoed is left out


async def test_an_undecodable_message_ends_the_stream_with_invalid_argument_promptly(gateway: Running) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        call = channel.stream_stream(
            METHOD,
            request_serializer=lambda raw: raw,
            response_deserializer=inference_pb2.PredictResponse.FromString,
        )
        good = request(10).SerializeToString()
        garbage = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, a length far beyond the message
        loop = asyncio.get_running_loop()
        started = loop.time()
        stream = call(iter([good, garbage, request(11).SerializeToString()]), timeout=30)
        answers = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for answer in stream:
                answers.append(answer)
        elapsed = loop.time() - started
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("request: cannot be decoded")  # the runtime's one rule
    assert elapsed < 10  # promptly, far from the 30 s deadline
    assert [a.request_id for a in answers] == ["req-10"]  # the item before it was answered
