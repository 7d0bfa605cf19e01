"""TLS and mutual TLS with certificates generated for the test."""

from __future__ import annotations

from pathlib import Path

import grpc
import grpc.aio
import pytest

from services.runtime.config import ConfigError
from services.runtime.tls import channel_credentials
from tests.contract.runtime import echo_service
from tests.contract.runtime.certs import CertificateAuthority, Pki, server_tls
from tests.contract.runtime.conftest import settings, start_server


async def _call(port: int, credentials: grpc.ChannelCredentials, target_host: str = "127.0.0.1") -> bytes:
    async with grpc.aio.secure_channel(f"{target_host}:{port}", credentials) as channel:
        response: bytes = await channel.unary_unary(echo_service.method("Unary"), None, None)(b"over tls", timeout=5)
        return response


@pytest.mark.asyncio
async def test_tls_client_trusting_the_ca_can_call(pki: Pki) -> None:
    config = settings(**server_tls(pki))
    server, _, _ = await start_server(config)
    try:
        assert await _call(server.port, channel_credentials(pki.ca_cert)) == b"over tls"
        assert await _call(server.port, channel_credentials(pki.ca_cert), "localhost") == b"over tls"
        # A plaintext client cannot talk to a TLS port.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary(echo_service.method("Unary"), None, None)(b"x", timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


@pytest.mark.asyncio
async def test_mutual_tls_refuses_clients_without_a_ca_signed_certificate(pki: Pki, tmp_path: Path) -> None:
    config = settings(**server_tls(pki, mutual=True))
    server, _, _ = await start_server(config)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as no_cert:
            await _call(server.port, channel_credentials(pki.ca_cert))
        assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE

        stranger = CertificateAuthority("some other CA").issue(tmp_path, "stranger", "stranger", server=False)
        with pytest.raises(grpc.aio.AioRpcError) as wrong_ca:
            await _call(server.port, channel_credentials(pki.ca_cert, stranger.cert, stranger.key))
        assert wrong_ca.value.code() == grpc.StatusCode.UNAVAILABLE

        signed = channel_credentials(pki.ca_cert, pki.client.cert, pki.client.key)
        assert await _call(server.port, signed) == b"over tls"
    finally:
        await server.stop(0)


def test_mutual_tls_settings_need_the_ca(pki: Pki) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(
            tls_cert_file=str(pki.server.cert),
            tls_key_file=str(pki.server.key),
            tls_require_client_cert="true",
        )
    assert raised.value.problems == (
        "RADGUARD_TLS_REQUIRE_CLIENT_CERT: needs RADGUARD_TLS_CA_FILE, RADGUARD_TLS_CERT_FILE, RADGUARD_TLS_KEY_FILE",
    )
