"""Run the gateway: ``python -m services.gateway`` (settings from ``RADGUARD_*`` variables).

With ``RADGUARD_PROCESSES=N`` (N > 1) this process serves as the first of N gateway processes and starts the
other N - 1 itself: all of them bind the same gRPC (and REST) port with SO_REUSEPORT, so the kernel spreads
connections over them, and each keeps its own event spool (``<spool_dir>-p<i>``), metrics port
(``worker_metrics_port_base + i - 1``, or ``metrics_port + i`` when unset)
and instance id (``<instance_id>-p<i>``). The first process restarts a worker that
exits and stops them all when it stops; a worker dies with it (parent-death signal), so a killed gateway
never leaves workers behind to answer on its port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from services.gateway.app import build_gateway
from services.gateway.settings import GatewaySettings
from services.runtime.auth import CredentialsFileError
from services.runtime.config import ConfigError, load_settings
from services.runtime.server import serve
from services.runtime.telemetry import get_logger, setup_telemetry

_log = get_logger(__name__)
#: Wait before a worker that exited is started again.
RESTART_DELAY_S = 1.0
_PR_SET_PDEATHSIG = 1
#: Set in a worker's environment: the pid of the first process, which the worker must not outlive.
PARENT_PID_VARIABLE = "RADGUARD_GATEWAY_PARENT_PID"


def worker_env(settings: GatewaySettings, index: int) -> dict[str, str]:
    """The environment of worker ``index`` (1..N-1): the same settings, its own spool, metrics port and id."""
    env = dict(os.environ)
    own = Path(f"{settings.spool_dir}-p{index}")
    group = [settings.spool_dir, *(Path(f"{settings.spool_dir}-p{i}") for i in range(1, settings.processes))]
    env.update(
        {
            "RADGUARD_SIBLING_SPOOL_DIRS": json.dumps([str(p) for p in group if p != own]),
            "RADGUARD_PROCESSES": "1",
            "RADGUARD_REUSE_PORT": "true",
            "RADGUARD_GRPC_PORT": str(settings.grpc_port),
            "RADGUARD_SPOOL_DIR": f"{settings.spool_dir}-p{index}",
            "RADGUARD_INSTANCE_ID": f"{settings.instance_id}-p{index}",
            "RADGUARD_METRICS_PORT": str(worker_metrics_port(settings, index)),
            PARENT_PID_VARIABLE: str(os.getpid()),
        }
    )
    if settings.http_port is not None:
        env["RADGUARD_HTTP_PORT"] = str(settings.http_port)
    return env


def worker_metrics_port(settings: GatewaySettings, index: int) -> int:
    """Worker ``index``'s metrics port: ``worker_metrics_port_base + index - 1``, or ``metrics_port + index``."""
    if not settings.metrics_port:
        return 0
    if settings.worker_metrics_port_base is not None:
        return settings.worker_metrics_port_base + index - 1
    return settings.metrics_port + index


def follow_parent() -> None:
    """In a worker: SIGTERM when the first process dies (even by SIGKILL); exit now if it already has."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        sys.exit(0)  # the first process died before the signal was armed


class Workers:
    """The N - 1 worker processes of a multi-process gateway, kept running while the first one runs."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _spawn(self, index: int) -> None:
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            env=worker_env(self.settings, index),
        )
        _log.info("gateway.worker_started", index=index, pid=self.procs[index].pid)

    def start(self) -> None:
        for index in range(1, self.settings.processes):
            self._spawn(index)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAY_S)
            for index, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stopping:
                    _log.warning("gateway.worker_exited", index=index, returncode=proc.returncode)
                    self._spawn(index)

    async def stop(self) -> None:
        """Ask every worker to drain (SIGTERM) and wait for them."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _main() -> None:
    follow_parent()
    settings = load_settings(GatewaySettings)
    workers: Workers | None = None
    if settings.processes > 1:
        if settings.grpc_port == 0 or settings.http_port == 0:
            raise ConfigError(["RADGUARD_PROCESSES: several processes need fixed ports (not 0)"])
        # Workers start before anything else (threads, sockets) exists in this process.
        spools = [settings.spool_dir, *(Path(f"{settings.spool_dir}-p{i}") for i in range(1, settings.processes))]
        settings = settings.model_copy(
            update={"reuse_port": True, "sibling_spool_dirs": tuple(p for p in spools if p != settings.spool_dir)}
        )
        workers = Workers(settings)
        workers.start()
    setup_telemetry(settings)
    gateway = build_gateway(settings)
    if workers is not None:
        gateway.server.add_shutdown_hook(workers.stop, "gateway-workers")
    gateway.start_background()
    await gateway.follower.start()
    if gateway.rest is not None:
        await gateway.rest.start()
    await serve(gateway.server)


def main() -> None:
    """Entry point; configuration problems print one line per variable and exit 2."""
    try:
        asyncio.run(_main())
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    except CredentialsFileError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
