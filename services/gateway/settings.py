"""The gateway's settings (``RADGUARD_*`` environment variables), on top of the shared ones."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from kernel import vocabulary
from kernel.topics import PREDICTIONS_TOPIC
from services.runtime.auth import CallerAuthSettings
from services.runtime.config import LogLevel

_REPO = Path(__file__).resolve().parents[2]


class GatewaySettings(CallerAuthSettings):
    """Everything the gateway process is configured with (caller authentication included)."""

    service_name: str = "gateway"
    # Every prediction is already an event; a log line per successful call would only cost latency.
    access_log_level: LogLevel = "debug"
    instance_id: str = Field(default="gw-0", description="names this gateway in events (producer)")
    grpc_port: int = Field(default=19061, ge=0, le=65535)
    http_port: int | None = Field(
        default=None, ge=0, le=65535, description="REST/HTTP inference protocol port (off when unset)"
    )
    processes: int = Field(
        default=1, ge=1, le=64, description="processes sharing the ports (SO_REUSEPORT), each with its own spool"
    )
    worker_metrics_port_base: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="metrics port of worker 1 (worker i: base + i - 1); metrics_port + i when unset",
    )
    sibling_spool_dirs: tuple[Path, ...] = Field(
        default=(), description="spool folders of the other processes of a multi-process gateway (set by it)"
    )
    reuse_port: bool = Field(
        default=False, description="bind with SO_REUSEPORT (set for the processes a multi-process gateway starts)"
    )
    triton_grpc_url: str = Field(default="127.0.0.1:8001", min_length=3, description="host:port of Triton gRPC")
    model_repo: Path = Field(default=_REPO / "model_repo", description="model configs and calibrations")
    pseudonym_key: SecretStr = Field(
        description="HMAC key for pseudonyms (patients, studies, request ids), at least 16 characters"
    )
    spool_dir: Path = Field(default=_REPO / ".radguard" / "gateway-spool", description="durable event spool")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    spool_fsync: bool = Field(default=True, description="fsync spooled events (off only for benchmarks)")
    spool_sync_interval_s: float = Field(
        default=0.02, ge=0, le=1.0, description="group commit: how long a spooled event may wait for its fsync"
    )
    events_publish_interval_s: float = Field(
        default=0.05, ge=0, le=1.0, description="how long the publisher waits to gather a batch for Kafka"
    )
    infer_timeout_s: float = Field(default=5.0, gt=0)
    shadow_timeout_s: float = Field(default=10.0, gt=0)
    max_image_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    stream_concurrency: int = Field(default=8, ge=1)
    age_band_edges: tuple[int, ...] = Field(
        default=vocabulary.AGE_BAND_EDGES,
        description="ascending age band edges; keep kernel.vocabulary's so monitors and gates agree",
    )
    predictions_topic: str = Field(
        default=PREDICTIONS_TOPIC, min_length=1, description="topic the prediction events go to"
    )
    routes_poll_s: float = Field(default=0.2, gt=0, description="how often the routes topic is polled")
    events_max_bytes: int = Field(
        default=512 * 1024,
        ge=4096,
        description="largest prediction event (key, value, headers) the gateway records; below Kafka's limits",
    )
    idempotency_window_s: float = Field(
        default=24 * 3600.0, gt=0, description="how long a request_id gets its first answer again (restarts too)"
    )
    idempotency_max_entries: int = Field(
        default=100_000, ge=1, description="most answers kept for request_id retries (oldest dropped first)"
    )
    kafka_probe_interval_s: float = Field(
        default=3.0, gt=0, le=30, description="how often Kafka is asked whether it answers (gateway_kafka_ok)"
    )
    triton_reconnect_backoff_max_ms: int = Field(
        default=1000, ge=100, description="longest wait between reconnection attempts to Triton"
    )

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _events_fit_kafka(self) -> Self:
        # The producer refuses a record above its request size; keep room for the batch's own framing.
        if self.events_max_bytes > self.kafka_max_request_bytes - 1024:
            raise ValueError(
                f"events_max_bytes ({self.events_max_bytes}) must stay at least 1024 bytes below "
                f"kafka_max_request_bytes ({self.kafka_max_request_bytes})"
            )
        return self

    @field_validator("age_band_edges")
    @classmethod
    def _ascending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if list(value) != sorted(set(value)) or any(v <= 0 for v in value):
            raise ValueError("must be strictly ascending positive ages, e.g. [50,70]")
        return value
