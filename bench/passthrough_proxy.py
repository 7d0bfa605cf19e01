"""A bare grpc.aio pass-through proxy for ModelInfer (no routing, no events): a benchmark baseline.

Requests and responses are forwarded as raw bytes, so this is about the least a Python gRPC hop
in front of Triton can cost. Run: ``python -m bench.passthrough_proxy <listen_port> <triton host:port>``.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

_METHODS = ("ModelInfer", "ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ServerMetadata")
_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


async def main(port: int, upstream: str) -> None:
    channel = grpc.aio.insecure_channel(upstream, options=_OPTIONS)

    def forwarder(method: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}", None, None)

        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return await call(request)  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(handle)

    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {m: forwarder(m) for m in _METHODS}
    )
    server = grpc.aio.server(options=_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
