"""A bare pass-through proxy for the Open Inference Protocol (no routing, no events): a benchmark baseline.

Requests and responses are forwarded as raw bytes, so this is about the least a Python gRPC hop
in front of Triton can cost. Two server models, to measure the gateway's choice between them:

- ``aio`` (default): a grpc.aio server and channel on one event loop (what the gateway runs);
- ``sync``: grpc's thread-pool server with a blocking channel (``--sync``; ``--threads`` workers).

Run: ``python -m bench.passthrough_proxy <listen_port> <triton host:port> [--sync] [--threads 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent import futures

import grpc

_METHODS = ("ModelInfer", "ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ServerMetadata")
_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
_SERVICE = "inference.GRPCInferenceService"


async def serve_aio(port: int, upstream: str) -> None:
    channel = grpc.aio.insecure_channel(upstream, options=_OPTIONS)

    def forwarder(method: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        call = channel.unary_unary(f"/{_SERVICE}/{method}", None, None)

        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return await call(request)  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(handle)

    handler = grpc.method_handlers_generic_handler(_SERVICE, {m: forwarder(m) for m in _METHODS})
    server = grpc.aio.server(options=_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_sync(port: int, upstream: str, threads: int) -> None:
    channel = grpc.insecure_channel(upstream, options=_OPTIONS)

    def forwarder(method: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        call = channel.unary_unary(f"/{_SERVICE}/{method}", None, None)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            return call(request)  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(handle)

    handler = grpc.method_handlers_generic_handler(_SERVICE, {m: forwarder(m) for m in _METHODS})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("upstream")
    parser.add_argument("--sync", action="store_true", help="the thread-pool server instead of grpc.aio")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    if args.sync:
        serve_sync(args.port, args.upstream, args.threads)
    else:
        asyncio.run(serve_aio(args.port, args.upstream))


if __name__ == "__main__":
    main()
