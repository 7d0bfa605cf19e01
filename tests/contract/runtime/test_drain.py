"""SIGTERM drain of a real server process: the in-flight call completes and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc.aio
import pytest

from tests.contract.runtime import echo_service

REPO_ROOT = Path(__file__).resolve().parents[3]


async def _read_line(stream: asyncio.StreamReader, timeout_s: float) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout_s)).decode().strip()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_sigterm_lets_the_in_flight_call_finish_and_exits_zero() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.contract.runtime.drain_server",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        announced = await _read_line(process.stdout, 30)
        assert announced.startswith("PORT "), announced
        port = int(announced.split()[1])

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            slow_call = channel.unary_unary(echo_service.method("Slow"), None, None)(b"1.5", timeout=20)
            # Let the call reach the handler before the signal.
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            assert await slow_call == b"done"

            # Once draining, new calls are refused.
            await asyncio.sleep(0.5)
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary(echo_service.method("Unary"), None, None)(b"late", timeout=2)

        assert await asyncio.wait_for(process.wait(), 30) == 0
        remaining = (await process.stdout.read()).decode()
        assert "HOOK-RAN" in remaining.split()
        log = (await process.stderr.read()).decode()
        assert "server.signal" in log and "SIGTERM" in log
        assert "server.draining" in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
