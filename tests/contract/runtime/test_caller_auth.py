"""Caller authentication on a real grpc.aio server: bearer tokens, mutual-TLS identities, roles, denials counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.auth import (
    HOSPITAL_SYSTEM,
    OPERATOR,
    READING_SYSTEM,
    AccessPolicy,
    CallerAuthInterceptor,
    Credentials,
    add_token,
)
from services.runtime.config import ServiceSettings
from services.runtime.metrics import Metrics
from services.runtime.server import RadguardServer
from services.runtime.tls import channel_credentials
from tests.contract.runtime import echo_service
from tests.contract.runtime.certs import Pki, server_tls
from tests.contract.runtime.conftest import settings

pytestmark = pytest.mark.asyncio

PREFIX = f"/{echo_service.SERVICE}/"
POLICY = AccessPolicy(
    protected_prefixes=(PREFIX,),
    allowed={
        f"{PREFIX}Unary": frozenset({HOSPITAL_SYSTEM}),
        f"{PREFIX}Bidi": frozenset({OPERATOR}),
    },
)


@asynccontextmanager
async def serving(config: ServiceSettings, credentials: Credentials) -> AsyncIterator[tuple[int, Metrics]]:
    metrics = Metrics(process_metrics=False)
    server = RadguardServer(config, metrics=metrics, interceptors=[CallerAuthInterceptor(credentials, POLICY, metrics)])
    server.add_generic_handler(echo_service.handler())
    await server.start()
    try:
        yield server.port, metrics
    finally:
        await server.stop(0)


def denials(metrics: Metrics, method: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "radguard_auth_denials_total", {"service": echo_service.SERVICE, "method": method, "reason": reason}
    )
    return value or 0.0


async def status(channel: grpc.aio.Channel, method: str, token: str | None = None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    try:
        if method == "Bidi":

            async def one() -> AsyncIterator[bytes]:
                yield b"x"

            call = channel.stream_stream(echo_service.method(method), None, None)(one(), metadata=metadata, timeout=5)
            async for _ in call:
                pass
        else:
            await channel.unary_unary(echo_service.method(method), None, None)(b"x", metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_bearer_tokens_with_roles(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    hospital = add_token(tokens_file, "pacs-1", HOSPITAL_SYSTEM)
    reading = add_token(tokens_file, "ris-1", READING_SYSTEM)
    async with serving(settings(), Credentials(tokens_file, recheck_s=0.0)) as (port, metrics):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await status(channel, "Unary", hospital) == grpc.StatusCode.OK
            assert await status(channel, "Unary") == grpc.StatusCode.UNAUTHENTICATED
            assert await status(channel, "Unary", "rgd_forged") == grpc.StatusCode.UNAUTHENTICATED
            assert await status(channel, "Unary", reading) == grpc.StatusCode.PERMISSION_DENIED
            # A method of the protected service that the policy does not name admits nobody.
            assert await status(channel, "ClientStream", hospital) == grpc.StatusCode.PERMISSION_DENIED
            # Streams are refused before their first message; the right role gets through.
            assert await status(channel, "Bidi", hospital) == grpc.StatusCode.PERMISSION_DENIED
            # A token added while the server runs counts at once (the file is re-read when it changes).
            operator = add_token(tokens_file, "ops-1", OPERATOR)
            assert await status(channel, "Bidi", operator) == grpc.StatusCode.OK
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert denials(metrics, "Unary", "no_credentials") == 1
        assert denials(metrics, "Unary", "unknown_token") == 1
        assert denials(metrics, "Unary", "role_not_allowed") == 1
        assert denials(metrics, "ClientStream", "role_not_allowed") == 1
        assert denials(metrics, "Bidi", "role_not_allowed") == 1


async def test_mutual_tls_identity_maps_to_a_role(pki: Pki, tmp_path: Path) -> None:
    certs_file = tmp_path / "certs.json"
    certs_file.write_text('{"radguard-test-client": {"principal": "pacs-2", "role": "hospital_system"}}')
    config = settings(**server_tls(pki, mutual=True))
    async with serving(config, Credentials(certs_file=certs_file, recheck_s=0.0)) as (port, metrics):
        signed = channel_credentials(pki.ca_cert, pki.client.cert, pki.client.key)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", signed) as channel:
            assert await status(channel, "Unary") == grpc.StatusCode.OK
            assert await status(channel, "Bidi") == grpc.StatusCode.PERMISSION_DENIED
        # The same CA-signed certificate under a name nobody mapped is not enough.
        certs_file.write_text('{"someone-else": {"principal": "pacs-3", "role": "hospital_system"}}')
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", signed) as channel:
            assert await status(channel, "Unary") == grpc.StatusCode.UNAUTHENTICATED
        assert denials(metrics, "Unary", "unmapped_certificate") == 1
