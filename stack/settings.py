"""Settings of the local stack: state folder, ports, caches. Read from ``RADGUARD_STACK_*``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "RADGUARD_STACK_"


class StackConfigError(Exception):
    """A stack setting is invalid; the message names the environment variable."""


class StackSettings(BaseSettings):
    """Where the stack keeps its state and which loopback ports it binds.

    Every field can be set with an environment variable ``RADGUARD_STACK_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    state_dir: Path = Field(default=REPO_ROOT / ".radguard", description="state, logs and pids")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "radguard", description="Kafka jars cache")
    model_repo: Path = Field(default=REPO_ROOT / "model_repo")
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    postgres_port: int = 15432
    postgres_user: str = "radguard"
    postgres_db: str = "radguard"
    triton_grpc_port: int = 18001
    triton_http_port: int = 18000
    triton_metrics_port: int = 18002
    gateway_port: int = 19061
    gateway_metrics_port: int = 19461
    #: The gateway's REST/HTTP form of the inference protocol.
    gateway_http_port: int = 19065
    #: Gateway processes sharing its ports (SO_REUSEPORT); worker i (1..N-1) serves metrics on
    #: gateway_worker_metrics_port + i - 1.
    gateway_processes: int = Field(default=1, ge=1, le=16)
    gateway_worker_metrics_port: int = Field(default=19480, ge=1, le=65535 - 16)
    feedback_port: int = 19062
    feedback_metrics_port: int = 19462
    ledger_port: int = 19071
    ledger_metrics_port: int = 19471
    monitor_port: int = 19072
    monitor_metrics_port: int = 19472
    #: Seconds between the stack's monitor runner passes (unchanged windows are skipped).
    monitor_interval_s: float = Field(default=60.0, gt=0)
    governance_port: int = 19063
    governance_metrics_port: int = 19463
    #: The board's web dashboard (HTTP).
    dashboard_port: int = 19080
    ready_timeout_s: float = Field(default=120.0, gt=0)
    #: Seconds between the supervisor's looks at radguard's processes.
    supervisor_poll_s: float = Field(default=0.25, gt=0)
    #: Wait before the first restart of a process that exited; each consecutive restart waits
    #: ``restart_backoff_factor`` times longer, at most ``restart_backoff_max_s``.
    restart_backoff_initial_s: float = Field(default=0.5, ge=0)
    restart_backoff_factor: float = Field(default=2.0, ge=1)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)
    #: A process that stays up this long starts its next backoff from the beginning.
    restart_stable_after_s: float = Field(default=30.0, gt=0)
    #: This many restarts within ``crash_loop_window_s`` are reported as a crash loop.
    crash_loop_restarts: int = Field(default=5, ge=1)
    crash_loop_window_s: float = Field(default=120.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator(
        "kafka_port",
        "kafka_controller_port",
        "postgres_port",
        "triton_grpc_port",
        "triton_http_port",
        "triton_metrics_port",
        "gateway_port",
        "gateway_metrics_port",
        "gateway_http_port",
        "feedback_port",
        "feedback_metrics_port",
        "ledger_port",
        "ledger_metrics_port",
        "monitor_port",
        "monitor_metrics_port",
        "governance_port",
        "governance_metrics_port",
        "dashboard_port",
    )
    @classmethod
    def _port_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"must be a TCP port between 1 and 65535, got {value}")
        return value

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port`` of the Kafka broker listener."""
        return f"{self.host}:{self.kafka_port}"

    @property
    def postgres_dsn(self) -> str:
        """asyncpg/libpq DSN of the radguard database."""
        return f"postgresql://{self.postgres_user}@{self.host}:{self.postgres_port}/{self.postgres_db}"

    def role_dsn(self, role: str) -> str:
        """DSN of the radguard database for one of the stack's login roles (see :mod:`stack.roles`).

        No password: the local cluster trusts loopback connections.
        """
        return f"postgresql://{role}@{self.host}:{self.postgres_port}/{self.postgres_db}"

    @property
    def triton_grpc_url(self) -> str:
        """``host:port`` of Triton's gRPC endpoint."""
        return f"{self.host}:{self.triton_grpc_port}"

    @property
    def gateway_url(self) -> str:
        """``host:port`` of the inference gateway."""
        return f"{self.host}:{self.gateway_port}"

    @property
    def dashboard_url(self) -> str:
        """The board's dashboard."""
        return f"http://{self.host}:{self.dashboard_port}/"

    @property
    def kafka_pom(self) -> Path:
        """The pom that declares the broker's jars."""
        return REPO_ROOT / "stack" / "kafka" / "pom.xml"

    @property
    def kafka_libs(self) -> Path:
        """Cache folder of the broker's jars, keyed by the pom's hash so a pom change re-resolves."""
        digest = hashlib.sha256(self.kafka_pom.read_bytes()).hexdigest()[:16]
        return self.cache_dir / "kafka" / digest / "libs"

    def ports(self) -> dict[str, int]:
        """Every port the stack binds, by the environment variable that sets it."""
        return {
            f"{ENV_PREFIX}{name.upper()}": getattr(self, name)
            for name in (
                "kafka_port",
                "kafka_controller_port",
                "postgres_port",
                "triton_grpc_port",
                "triton_http_port",
                "triton_metrics_port",
                "gateway_port",
                "gateway_metrics_port",
                "feedback_port",
                "feedback_metrics_port",
                "ledger_port",
                "ledger_metrics_port",
                "monitor_port",
                "monitor_metrics_port",
                "dashboard_port",
            )
        }


def load_stack_settings(**overrides: object) -> StackSettings:
    """Build settings from the environment (and overrides), naming the variable on error."""
    try:
        return StackSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {err['msg']} (got {err.get('input')!r})")
        raise StackConfigError("; ".join(problems)) from None
