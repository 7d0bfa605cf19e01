"""The CLI's channels: plaintext by default, TLS and mutual TLS from RADGUARD_CLI_TLS_*, clear errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import grpc.aio
import pytest

from services.cli import channels
from stack.processes import StackError
from tests.contract.runtime import echo_service
from tests.contract.runtime.certs import Pki, server_tls
from tests.contract.runtime.conftest import settings, start_server

REPO = Path(__file__).resolve().parents[3]


async def _echo_async(port: int, env: dict[str, str]) -> bytes:
    async with channels.aio_channel(f"127.0.0.1:{port}", env) as channel:
        response: bytes = await channel.unary_unary(echo_service.method("Unary"), None, None)(b"cli", timeout=5)
        return response


def _echo_blocking(port: int, env: dict[str, str]) -> bytes:
    with channels.channel(f"127.0.0.1:{port}", env) as channel:
        response: bytes = channel.unary_unary(echo_service.method("Unary"), None, None)(b"cli", timeout=5)
        return response


@pytest.mark.asyncio
async def test_the_cli_speaks_tls_when_given_the_ca(pki: Pki) -> None:
    server, _, _ = await start_server(settings(**server_tls(pki)))
    try:
        env = {channels.TLS_CA_ENV: str(pki.ca_cert)}
        assert await _echo_async(server.port, env) == b"cli"
        assert await asyncio.to_thread(_echo_blocking, server.port, env) == b"cli"
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:  # without the setting: plaintext, refused
            await _echo_async(server.port, {})
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


@pytest.mark.asyncio
async def test_the_cli_presents_its_certificate_to_a_mutual_tls_server(pki: Pki) -> None:
    config = settings(**server_tls(pki, mutual=True))
    server, _, _ = await start_server(config)
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await _echo_async(server.port, {channels.TLS_CA_ENV: str(pki.ca_cert)})
        env = {
            channels.TLS_CA_ENV: str(pki.ca_cert),
            channels.TLS_CERT_ENV: str(pki.client.cert),
            channels.TLS_KEY_ENV: str(pki.client.key),
        }
        assert await _echo_async(server.port, env) == b"cli"
    finally:
        await server.stop(0)


def test_plaintext_unless_asked() -> None:
    assert channels.client_tls({}) is None
    assert channels.client_tls({channels.TLS_ENV: "0"}) is None
    tls = channels.client_tls({channels.TLS_ENV: "1"})
    assert tls == channels.ClientTls()  # TLS trusting the system's roots


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({channels.TLS_CA_ENV: "/nonexistent/ca.pem"}, "RADGUARD_CLI_TLS_CA=/nonexistent/ca.pem: no such file"),
        ({channels.TLS_ENV: "maybe"}, "RADGUARD_CLI_TLS=maybe: expected 1 or 0"),
        ({channels.TLS_CERT_ENV: "CERT"}, "RADGUARD_CLI_TLS_CERT is set but RADGUARD_CLI_TLS_KEY is not"),
        ({channels.TLS_KEY_ENV: "KEY"}, "RADGUARD_CLI_TLS_KEY is set but RADGUARD_CLI_TLS_CERT is not"),
    ],
)
def test_bad_tls_settings_name_the_variable(pki: Pki, env: dict[str, str], message: str) -> None:
    resolved = {k: {"CERT": str(pki.client.cert), "KEY": str(pki.client.key)}.get(v, v) for k, v in env.items()}
    with pytest.raises(StackError) as raised:
        channels.client_tls(resolved)
    assert str(raised.value).startswith(message)


def test_a_cli_command_reports_a_bad_tls_setting_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "models", "list", "--target", "127.0.0.1:1", "--token", "t"],
        cwd=REPO,
        env={**os.environ, channels.TLS_CA_ENV: str(missing)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert " ".join(result.stderr.split()) == f"error: {channels.TLS_CA_ENV}={missing}: no such file"
