"""radguard's own processes (gateway, feedback, ledger, monitor, governance) as stack components.

Each runs this environment's Python (``-m services.<x>``) wired to the stack's Triton, Kafka and
PostgreSQL (as the service's own database role, :mod:`stack.roles`; the gateway gets no DSN); an
``-X`` option carries the component's state folder so the process can be recognised as
ours by its command line. Readiness is the standard gRPC health service reporting SERVING. A
development pseudonymisation key is generated once into the state folder (mode 0600), shared by the gateway
and the feedback service so their pseudonyms join; production sets ``RADGUARD_PSEUDONYM_KEY`` from a secret
instead. The gateway and the feedback service run with authentication on: bearer tokens for a hospital
system, a reading system and an operator are generated once into ``<state>/auth`` (the services get only
the tokens' hashes; ``radguard stack env`` exports the tokens themselves).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from governance.domain.checkpoint import write_checkpoint_key
from services.runtime.auth import HOSPITAL_SYSTEM, OPERATOR, READING_SYSTEM, add_token
from stack.components.base import Component
from stack.processes import ProcessRecord, port_open, spawn
from stack.roles import service_role

_REPO = Path(__file__).resolve().parents[2]


#: The stack's client tokens: environment variable → (principal, role).
CLIENT_TOKENS: dict[str, tuple[str, str]] = {
    "RADGUARD_GATEWAY_TOKEN": ("stack-hospital-system", HOSPITAL_SYSTEM),
    "RADGUARD_FEEDBACK_TOKEN": ("stack-reading-system", READING_SYSTEM),
    "RADGUARD_OPERATOR_TOKEN": ("stack-operator", OPERATOR),
}


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def pseudonym_key(state_dir: Path) -> str:
    """The stack's pseudonymisation key (made once, 0600), for the gateway and the feedback service."""
    path = state_dir / "gateway" / "pseudonym.key"
    if not path.exists():
        _write_secret(path, secrets.token_hex(32))
    return path.read_text().strip()


def data_plane_tokens(state_dir: Path) -> Path:
    """Make the stack's client tokens once; return the hashes file the gateway and feedback service read."""
    folder = state_dir / "auth"
    hashes, clients = folder / "tokens.json", folder / "client-tokens.json"
    if not clients.exists():
        hashes.unlink(missing_ok=True)
        tokens = {env: add_token(hashes, principal, role) for env, (principal, role) in CLIENT_TOKENS.items()}
        _write_secret(clients, json.dumps(tokens, indent=2) + "\n")
    return hashes


def client_tokens(state_dir: Path) -> dict[str, str]:
    """The stack's client tokens as environment variables (empty before the first ``stack up``)."""
    try:
        data = json.loads((state_dir / "auth" / "client-tokens.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if k in CLIENT_TOKENS}


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

    def extra_env(self) -> dict[str, str]:
        root = self.layout.root
        return {
            "RADGUARD_INSTANCE_ID": "gw-stack",
            "RADGUARD_TRITON_GRPC_URL": self.settings.triton_grpc_url,
            "RADGUARD_MODEL_REPO": str(self.settings.model_repo),
            "RADGUARD_SPOOL_DIR": str(self.home / "spool"),
            "RADGUARD_PSEUDONYM_KEY": pseudonym_key(root),
            "RADGUARD_AUTH_MODE": "secure",
            "RADGUARD_AUTH_TOKENS_FILE": str(data_plane_tokens(root)),
            "RADGUARD_HTTP_PORT": str(self.settings.gateway_http_port),
            "RADGUARD_PROCESSES": str(self.settings.gateway_processes),
            "RADGUARD_WORKER_METRICS_PORT_BASE": str(self.settings.gateway_worker_metrics_port),
        }

    def ports(self) -> dict[str, int]:
        s = self.settings
        extra = {
            f"RADGUARD_STACK_GATEWAY_WORKER_METRICS_PORT (+{i - 1}, gateway process {i})": (
                s.gateway_worker_metrics_port + i - 1
            )
            for i in range(1, s.gateway_processes)
        }
        return {**super().ports(), "RADGUARD_STACK_GATEWAY_HTTP_PORT": s.gateway_http_port, **extra}


class Feedback(RadguardService):
    """Radiologists' reads (outbox in PostgreSQL, relayed to Kafka)."""

    name = "feedback"
    module = "services.feedback"
    port_field = "feedback_port"
    metrics_port_field = "feedback_metrics_port"

    def extra_env(self) -> dict[str, str]:
        root = self.layout.root
        return {
            "RADGUARD_PSEUDONYM_KEY": pseudonym_key(root),
            "RADGUARD_AUTH_MODE": "secure",
            "RADGUARD_AUTH_TOKENS_FILE": str(data_plane_tokens(root)),
        }


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

    @property
    def references_dir(self) -> Path:
        """Where reference profiles proposed for renewal are kept (``<state>/references``)."""
        return self.settings.state_dir / "references"

    def prepare(self) -> None:
        super().prepare()
        self.references_dir.mkdir(parents=True, exist_ok=True)
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
            # Reference profiles built for renewal (`radguard reference build --out`) go here or in the model repo.
            "RADGUARD_REFERENCE_ROOTS": json.dumps([str(self.references_dir)]),
        }


class Dashboard(RadguardService):
    """The governance board's web dashboard (HTTP), reading the governance and monitoring APIs.

    Started after the other services (it only reads through their APIs); ready when ``/healthz`` answers.
    """

    name = "dashboard"
    module = "services.dashboard"
    port_field = "dashboard_port"

    def ports(self) -> dict[str, int]:
        return {"RADGUARD_STACK_DASHBOARD_PORT": self.settings.dashboard_port}

    def start(self) -> ProcessRecord:
        s = self.settings
        env = dict(os.environ)
        env.pop("RADGUARD_POSTGRES_DSN", None)  # reads through APIs only
        env.update(
            {
                "RADGUARD_SERVICE_NAME": self.name,
                "RADGUARD_DASHBOARD_HOST": s.host,
                "RADGUARD_DASHBOARD_PORT": str(s.dashboard_port),
                "RADGUARD_DASHBOARD_GOVERNANCE_TARGET": f"{s.host}:{s.governance_port}",
                "RADGUARD_DASHBOARD_MONITORING_TARGET": f"{s.host}:{s.monitor_port}",
            }
        )
        marker = f"radguard_stack={self.home}"
        argv = [sys.executable, "-X", marker, "-m", self.module]
        return spawn(self.name, argv, log_path=self.layout.log(self.name), marker=marker, env=env, cwd=_REPO)

    @property
    def postgres_dsn(self) -> str | None:
        return None

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.dashboard_port):
            return False
        try:
            with urllib.request.urlopen(f"{self.settings.dashboard_url}healthz", timeout=2) as reply:  # noqa: S310
                return bool(reply.status == 200)
        except OSError:
            return False

    def detail(self) -> str:
        return self.settings.dashboard_url
