"""radguard's inference gateway as a stack process, wired to the stack's Triton and Kafka.

It runs this environment's Python (``-m services.gateway``); an ``-X`` option carries the state folder
so the process can be recognised as ours by its command line. A development pseudonymisation key is
generated once into the state folder (mode 0600); production sets ``RADGUARD_PSEUDONYM_KEY`` from a
secret instead.
"""

from __future__ import annotations

import os
import secrets
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack.components.base import Component
from stack.processes import ProcessRecord, port_open, spawn


class Gateway(Component):
    """``python -m services.gateway`` on the stack's endpoints."""

    name = "gateway"

    def ports(self) -> dict[str, int]:
        return {
            "RADGUARD_STACK_GATEWAY_PORT": self.settings.gateway_port,
            "RADGUARD_STACK_GATEWAY_METRICS_PORT": self.settings.gateway_metrics_port,
        }

    def check_prerequisites(self) -> None:
        return None  # the gateway is part of this environment

    @property
    def key_file(self) -> Path:
        return self.home / "pseudonym.key"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.key_file.exists():
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))

    def start(self) -> ProcessRecord:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "RADGUARD_SERVICE_NAME": "gateway",
                "RADGUARD_INSTANCE_ID": "gw-stack",
                "RADGUARD_GRPC_HOST": s.host,
                "RADGUARD_GRPC_PORT": str(s.gateway_port),
                "RADGUARD_METRICS_HOST": s.host,
                "RADGUARD_METRICS_PORT": str(s.gateway_metrics_port),
                "RADGUARD_TRITON_GRPC_URL": s.triton_grpc_url,
                "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
                "RADGUARD_MODEL_REPO": str(s.model_repo),
                "RADGUARD_SPOOL_DIR": str(self.home / "spool"),
                "RADGUARD_PSEUDONYM_KEY": self.key_file.read_text().strip(),
            }
        )
        marker = f"radguard_stack={self.home}"
        argv = [sys.executable, "-X", marker, "-m", "services.gateway"]
        return spawn(
            self.name,
            argv,
            log_path=self.layout.log(self.name),
            marker=marker,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.gateway_port):
            return False
        with grpc.insecure_channel(self.settings.gateway_url) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def version(self) -> str:
        try:
            return f"radguard {package_version('radguard')}"
        except PackageNotFoundError:
            return "radguard (not installed)"
