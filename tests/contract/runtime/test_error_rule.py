"""The error rule at the server's edge, for what no use case maps itself.

Requests whose bytes do not parse: INVALID_ARGUMENT naming the request, counted, logged, never UNKNOWN;
a database connection lost under a query: UNAVAILABLE; a method left unimplemented: UNIMPLEMENTED.
A small service with protobuf (de)serializers (the health messages) runs on a real RadguardServer; the
client sends raw bytes, so it can send what no protobuf client would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import grpc.aio
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2

from services.runtime.server import RadguardServer
from tests.contract.runtime.conftest import settings, start_server

pytestmark = pytest.mark.asyncio

SERVICE = "radguard.test.v1.Parsed"
GOOD = health_pb2.HealthCheckRequest(service="x").SerializeToString()
# Field 1 claims 100 bytes of length but the message ends: never a valid message of any type.
BAD = b"\x0a\x64abc"
EXPECTED = "request: cannot be decoded as a valid grpc.health.v1.HealthCheckRequest message"


async def _unary(request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _bidi(
    requests: AsyncIterator[health_pb2.HealthCheckRequest], context: Any
) -> AsyncIterator[health_pb2.HealthCheckResponse]:
    async for _ in requests:
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _client_stream(
    requests: AsyncIterator[health_pb2.HealthCheckRequest], context: Any
) -> health_pb2.HealthCheckResponse:
    async for _ in requests:
        pass
    return health_pb2.HealthCheckResponse()


async def _lost(request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
    raise asyncpg.exceptions.InternalClientError("unexpected end of the protocol stream")


async def _missing(request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
    raise NotImplementedError("Method not implemented!")


def _register(server: RadguardServer) -> None:
    def kwargs() -> dict[str, Any]:
        return {
            "request_deserializer": health_pb2.HealthCheckRequest.FromString,
            "response_serializer": health_pb2.HealthCheckResponse.SerializeToString,
        }

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary, **kwargs()),
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi, **kwargs()),
            "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream, **kwargs()),
            "Lost": grpc.unary_unary_rpc_method_handler(_lost, **kwargs()),
            "Missing": grpc.unary_unary_rpc_method_handler(_missing, **kwargs()),
        },
    )
    server.add_generic_handler(handler, SERVICE)


@pytest_asyncio.fixture
async def channel() -> AsyncIterator[tuple[grpc.aio.Channel, RadguardServer]]:
    server, _spans, _metrics = await start_server(settings(), customise=_register)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield channel, server
    finally:
        await channel.close(None)
        await server.stop(0)


async def test_an_undecodable_unary_request_is_invalid_argument_and_counted(
    channel: tuple[grpc.aio.Channel, RadguardServer],
) -> None:
    chan, server = channel
    call = chan.unary_unary(f"/{SERVICE}/Unary", None, None)
    assert await call(GOOD, timeout=5) == health_pb2.HealthCheckResponse(status=1).SerializeToString()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(BAD, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == EXPECTED
    text = server.metrics.render().decode()
    assert (
        'radguard_grpc_server_handled_total{grpc_code="INVALID_ARGUMENT",grpc_method="Unary",'
        f'grpc_service="{SERVICE}"}} 1.0'
    ) in text


async def test_a_stream_answers_what_came_before_the_bad_message_then_ends_invalid_argument(
    channel: tuple[grpc.aio.Channel, RadguardServer],
) -> None:
    chan, _ = channel
    call = chan.stream_stream(f"/{SERVICE}/Bidi", None, None)

    async def requests() -> AsyncIterator[bytes]:
        for item in (GOOD, GOOD, BAD, GOOD):
            yield item

    stream = call(requests(), timeout=5)
    answers = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for answer in stream:
            answers.append(answer)
    assert len(answers) == 2
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == EXPECTED


async def test_a_client_stream_with_a_bad_message_is_invalid_argument(
    channel: tuple[grpc.aio.Channel, RadguardServer],
) -> None:
    chan, _ = channel
    call = chan.stream_unary(f"/{SERVICE}/ClientStream", None, None)

    async def requests() -> AsyncIterator[bytes]:
        for item in (GOOD, BAD):
            yield item

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(requests(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("method", "code", "details"),
    [
        ("Lost", grpc.StatusCode.UNAVAILABLE, "postgres is unavailable"),
        ("Missing", grpc.StatusCode.UNIMPLEMENTED, "method not implemented"),
    ],
)
async def test_unmapped_dependency_loss_and_missing_methods_get_their_own_status(
    channel: tuple[grpc.aio.Channel, RadguardServer], method: str, code: grpc.StatusCode, details: str
) -> None:
    chan, _ = channel
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chan.unary_unary(f"/{SERVICE}/{method}", None, None)(GOOD, timeout=5)
    assert caught.value.code() == code
    assert caught.value.details() == details
