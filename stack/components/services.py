"""radguard's own processes (gateway, feedback, ledger, monitor, governance) as stack components.

Each runs this environment's Python (``-m services.<x>``) wired to the stack's Triton, Kafka and
PostgreSQL (as the service's own database role, :mod:`stack.roles`; the gateway gets no DSN); an
``-X`` option carries the component's state folder so the process can be recognised as ours by its
command line. Readiness is the standard gRPC health service reporting SERVING. A
development pseudonymisation key is generated once into the state folder (mode 0600); production sets
``RADGUARD_PSEUDONYM_KEY`` from a secret instead.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from governance.domain.checkpoint import write_checkpoint_key
from stack.components.base import Component
from stack.processes import ProcessRecord, port_open, spawn
from stack.roles import service_role

_REPO = Path(__file__).resolve().parents[2]


class RadguardService(Component):
    """A radguard process run with ``python -m <module>``."""

    module: str
    phase = 1
    supervised = True
    #: Names of the StackSettings fields holding this service's gRPC and metrics ports.
    port_field: str
    metrics_port_field: str

    @property
    def grpc_port(self) -> int:
        return int(getattr(self.settings, self.port_field))

    def ports(self) -> dict[str, int]:
        return {
            f"RADGUARD_STACK_{self.port_field.upper()}": self.grpc_port,
            f"RADGUARD_STACK_{self.metrics_port_field.upper()}": int(getattr(self.settings, self.metrics_port_field)),
        }

    def check_prerequisites(self) -> None:
        return None  # part of this environment

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def extra_env(self) -> dict[str, str]:
        """Service-specific settings."""
        return {}

    def start(self) -> ProcessRecord:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "RADGUARD_SERVICE_NAME": self.name,
                "RADGUARD_GRPC_HOST": s.host,
                "RADGUARD_GRPC_PORT": str(self.grpc_port),
                "RADGUARD_METRICS_HOST": s.host,
                "RADGUARD_METRICS_PORT": str(getattr(s, self.metrics_port_field)),
                "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
                **self.extra_env(),
            }
        )
        # Each service logs in as its own least-privileged role; one without a role gets no DSN at all
        # (not even an inherited administrator's from the caller's environment).
        env.pop("RADGUARD_POSTGRES_DSN", None)
        if self.postgres_dsn is not None:
            env["RADGUARD_POSTGRES_DSN"] = self.postgres_dsn
        marker = f"radguard_stack={self.home}"
        argv = [sys.executable, "-X", marker, "-m", self.module]
        return spawn(self.name, argv, log_path=self.layout.log(self.name), marker=marker, env=env, cwd=_REPO)

    @property
    def postgres_dsn(self) -> str | None:
        """The DSN this service connects with: its own role's (see :mod:`stack.roles`), or None."""
        role = service_role(self.name)
        return None if role is None else self.settings.role_dsn(role.name)

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.grpc_port):
            return False
        with grpc.insecure_channel(f"{self.settings.host}:{self.grpc_port}") as channel:
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


class Gateway(RadguardService):
    """The inference gateway over the stack's Triton."""

    name = "gateway"
    module = "services.gateway"
    port_field = "gateway_port"
    metrics_port_field = "gateway_metrics_port"

    @property
    def key_file(self) -> Path:
        return self.home / "pseudonym.key"

    def prepare(self) -> None:
        super().prepare()
        if not self.key_file.exists():
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))

    def extra_env(self) -> dict[str, str]:
        return {
            "RADGUARD_INSTANCE_ID": "gw-stack",
            "RADGUARD_TRITON_GRPC_URL": self.settings.triton_grpc_url,
            "RADGUARD_MODEL_REPO": str(self.settings.model_repo),
            "RADGUARD_SPOOL_DIR": str(self.home / "spool"),
            "RADGUARD_PSEUDONYM_KEY": self.key_file.read_text().strip(),
        }


class Feedback(RadguardService):
    """Radiologists' reads (outbox in PostgreSQL, relayed to Kafka)."""

    name = "feedback"
    module = "services.feedback"
    port_field = "feedback_port"
    metrics_port_field = "feedback_metrics_port"


class LedgerWriter(RadguardService):
    """The exactly-once ledger writer (Kafka → PostgreSQL)."""

    name = "ledger"
    module = "services.monitors.ledger"
    port_field = "ledger_port"
    metrics_port_field = "ledger_metrics_port"


class MonitorRunner(RadguardService):
    """The monitor runner: every interval, drift, calibration, bias and performance findings of each served
    version's stable and canary windows, into PostgreSQL and onto the findings topic (reports in its folder)."""

    name = "monitor"
    module = "services.monitors.runner"
    port_field = "monitor_port"
    metrics_port_field = "monitor_metrics_port"

    def versions(self) -> list[str]:
        """Versions of the model repository's chest_nodule that carry a reference profile."""
        model = self.settings.model_repo / "chest_nodule"
        found = [p.parent.name for p in model.glob("*/reference_profile.npz")] if model.is_dir() else []
        return sorted(found, key=lambda name: (not name.isdigit(), int(name) if name.isdigit() else 0, name)) or ["1"]

    def extra_env(self) -> dict[str, str]:
        return {
            "RADGUARD_MONITOR_MODEL": "chest_nodule",
            "RADGUARD_MONITOR_VERSIONS": json.dumps(self.versions()),
            "RADGUARD_MONITOR_MODEL_REPO": str(self.settings.model_repo),
            "RADGUARD_MONITOR_REPORTS_DIR": str(self.home / "reports"),
            "RADGUARD_MONITOR_INTERVAL_S": str(self.settings.monitor_interval_s),
            "RADGUARD_MONITOR_STATUS_FILE": str(self.status_file),
        }

    @property
    def status_file(self) -> Path:
        return self.home / "last_pass.json"

    def detail(self) -> str:
        """The last pass: when, and how many findings, breaches and warnings it issued."""
        try:
            last = json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "no pass yet"
        if "skipped" in last:
            return f"last pass {last['finished_at']} skipped: {last['skipped']}"
        return (
            f"last pass {last['finished_at']}: {last['findings']} findings "
            f"({last['breach']} breaches, {last['warning']} warnings)"
        )


class GovernanceService(RadguardService):
    """The governance control plane (registry, approvals, rollouts, audit) over the stack's PostgreSQL and Triton.

    Bearer tokens and the signers' keyring live in its state folder; ``radguard governance tokens add``
    writes both there by default.
    """

    name = "governance"
    module = "services.governance_api"
    port_field = "governance_port"
    metrics_port_field = "governance_metrics_port"

    @property
    def tokens_file(self) -> Path:
        return self.home / "tokens.json"

    @property
    def keyring_file(self) -> Path:
        return self.home / "keyring.json"

    @property
    def checkpoint_key_file(self) -> Path:
        """The service's own key signing audit checkpoints; its public half is ``checkpoint_public_key_file``."""
        return self.home / "audit-checkpoint-key.pem"

    @property
    def checkpoint_public_key_file(self) -> Path:
        return self.home / "audit-checkpoint-key.pub.pem"

    def prepare(self) -> None:
        super().prepare()
        if not self.checkpoint_key_file.exists():
            write_checkpoint_key(self.checkpoint_key_file, self.checkpoint_public_key_file)

    def extra_env(self) -> dict[str, str]:
        return {
            "RADGUARD_AUDIT_CHECKPOINT_KEY_FILE": str(self.checkpoint_key_file),
            "RADGUARD_AUDIT_CHECKPOINT_FILE": str(self.home / "audit-checkpoints.jsonl"),
            "RADGUARD_INSTANCE_ID": "gov-stack",
            "RADGUARD_TRITON_GRPC_URL": self.settings.triton_grpc_url,
            "RADGUARD_MODEL_REPO": str(self.settings.model_repo),
            "RADGUARD_GOVERNANCE_TOKENS_FILE": str(self.tokens_file),
            "RADGUARD_GOVERNANCE_KEYRING_FILE": str(self.keyring_file),
        }
