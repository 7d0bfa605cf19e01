"""A raw-bytes test service covering the four handler kinds, without generated protobuf code.

Requests steer the handlers: ``b"invalid"`` raises InvalidArgument on field ``study.study_instance_uid``,
``b"boom"`` raises an unexpected RuntimeError whose text must never reach the caller, ``b"missing"``
raises NotFound. Anything else is echoed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.runtime.errors import InvalidArgument, NotFound

SERVICE = "radguard.test.v1.Echo"
SECRET = "patient Jane Doe 1970-01-01"  # what a careless exception message could leak
INVALID_FIELD = "study.study_instance_uid"


def method(name: str) -> str:
    """Full method path of ``name`` on the echo service."""
    return f"/{SERVICE}/{name}"


def _check(request: bytes) -> None:
    if request == b"invalid":
        raise InvalidArgument(INVALID_FIELD, "must not be empty")
    if request == b"boom":
        raise RuntimeError(f"lookup failed for {SECRET}")
    if request == b"missing":
        raise NotFound("model 'chest-xray' version 7")


async def unary(request: bytes, context: Any) -> bytes:
    _check(request)
    return request


async def slow(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(float(request.decode() or "1"))
    return b"done"


async def server_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    # The first message goes out before the check, so errors are mapped mid-stream too.
    yield b"first"
    _check(request)
    for part in (request, request[::-1]):
        yield part


async def server_stream_writes(request: bytes, context: Any) -> None:
    # The other response-streaming style: a coroutine that writes.
    await context.write(b"first")
    _check(request)
    await context.write(request)


async def client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
    chunks = []
    async for chunk in requests:
        _check(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for chunk in requests:
        _check(chunk)
        yield chunk.upper()


async def set_trailers(request: bytes, context: Any) -> bytes:
    # A handler that sets its own trailers must not lose the request id.
    context.set_trailing_metadata((("x-handler", "yes"),))
    return request


def handler() -> grpc.GenericRpcHandler:  # type: ignore[type-arg]
    """The generic handler to register on a server."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ServerStreamWrites": grpc.unary_stream_rpc_method_handler(server_stream_writes),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "SetTrailers": grpc.unary_unary_rpc_method_handler(set_trailers),
        },
    )
