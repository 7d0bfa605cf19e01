"""Two gateway processes on one port (RADGUARD_PROCESSES=2): both serve, each with its own spool, metrics
port and instance id; a worker that dies is restarted; a SIGKILLed first process takes its worker with it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import InferInput

from tests.integration.conftest import StackEndpoints
from tests.integration.gateway.conftest import PSEUDONYM_KEY
from tests.integration.gateway.test_predict import image

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env, cwd=REPO)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.2)
    return False


async def test_two_processes_share_the_port_and_go_down_together(gateway: object, stack: StackEndpoints) -> None:
    # ``gateway`` (the module's in-process gateway) has published the placeholder's route already.
    port, metrics = _free_port(), _free_port()
    while metrics + 1 == port:
        metrics = _free_port()
    spool = Path(tempfile.mkdtemp(prefix="gw-2p-")) / "spool"
    env = dict(
        os.environ,
        RADGUARD_GRPC_HOST="127.0.0.1",
        RADGUARD_GRPC_PORT=str(port),
        RADGUARD_METRICS_HOST="127.0.0.1",
        RADGUARD_METRICS_PORT=str(metrics),
        RADGUARD_TRITON_GRPC_URL=stack.triton_grpc_url,
        RADGUARD_KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        RADGUARD_SPOOL_DIR=str(spool),
        RADGUARD_PSEUDONYM_KEY=PSEUDONYM_KEY,
        RADGUARD_AUTH_MODE="insecure-dev",
        RADGUARD_LOG_LEVEL="warning",
        RADGUARD_PROCESSES="2",
    )
    first = _spawn(env)
    try:
        assert await _wait(lambda: _metrics_up(metrics) and _metrics_up(metrics + 1), 90), "both processes serve"
        [worker] = _children(first.pid)
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{port}")
        img = image(12)[np.newaxis]
        tensor = InferInput("IMAGE", list(img.shape), "FP32")
        tensor.set_data_from_numpy(img)
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.infer("placeholder", [tensor])
                break
            except Exception:
                assert time.monotonic() < deadline, "the gateways never answered"
                await asyncio.sleep(0.5)
        await client.close()
        assert (spool.parent / "spool-p1").is_dir() and spool.is_dir()
        # A worker that dies is started again.
        os.kill(worker, signal.SIGKILL)
        assert await _wait(lambda: any(p != worker for p in _children(first.pid)), 15)
        [restarted] = _children(first.pid)
        # A SIGKILLed first process leaves no worker behind on the port.
        first.kill()
        first.wait(10)
        assert await _wait(lambda: not _alive(restarted), 20), "the worker outlived the first process"
    finally:
        if first.poll() is None:
            first.kill()  # its worker follows (parent-death signal)
            first.wait(10)
