"""The governance process's settings (``RADGUARD_*`` environment variables), on top of the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kernel.topics import AUDIT_TOPIC, FINDINGS_TOPIC, ROUTES_TOPIC
from services.runtime.config import ServiceSettings

#: Compacted topic of route tables (key = model name) every gateway follows.
#: Audit entries as committed, in seq order.
#: Monitor findings the rollout controller watches.


class GovernanceSettings(ServiceSettings):
    """Everything the governance process is configured with."""

    service_name: str = "governance"
    instance_id: str = Field(default="gov-0", min_length=1, description="names this instance in events (producer)")
    grpc_port: int = Field(default=19063, ge=0, le=65535)
    metrics_port: int = Field(default=19463, ge=0, le=65535)
    # Requests here are small records and queries: refuse anything larger before it is parsed.
    grpc_max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    governance_tokens_file: Path = Field(
        default=Path("governance-tokens.json"),
        description="bearer tokens: JSON {sha256 hex of token: {principal, role}}; re-read when it changes",
    )
    governance_keyring_file: Path = Field(
        default=Path("governance-keyring.json"),
        description="signers' Ed25519 keys (JSON {principal: {key_id, private_pem}}); created for new signers",
    )
    policies_dir: Path | None = Field(default=None, description="policy YAML folder; governance/policies when unset")
    model_repo: Path = Field(default=Path("model_repo"), description="Triton model repository (config.pbtxt files)")
    reference_roots: list[Path] = Field(
        default_factory=list,
        description="folders besides model_repo that file:// reference profiles proposed for renewal may lie in",
    )
    triton_grpc_url: str = Field(default="127.0.0.1:8001", min_length=3, description="host:port of Triton gRPC")
    triton_load_timeout_s: float = Field(default=120.0, gt=0, description="time one model load may take")
    triton_request_timeout_s: float = Field(default=10.0, gt=0, description="time other repository calls take")

    audit_checkpoint_key_file: Path | None = Field(
        default=None,
        description="the service's Ed25519 key (PKCS#8 PEM) signing audit checkpoints; unset: no checkpoints",
    )
    audit_checkpoint_file: Path = Field(
        default=Path("audit-checkpoints.jsonl"), description="append-only local copy of every signed checkpoint"
    )
    audit_checkpoint_interval_s: float = Field(
        default=10.0, gt=0, description="time between checkpoint rounds (one is signed when the head moved)"
    )
    audit_checkpoint_every: int = Field(
        default=100, ge=1, description="entries since the last checkpoint that trigger one at once"
    )

    routes_topic: str = Field(default=ROUTES_TOPIC, min_length=1)
    audit_topic: str = Field(default=AUDIT_TOPIC, min_length=1)
    findings_topic: str = Field(default=FINDINGS_TOPIC, min_length=1)

    outbox_batch: int = Field(default=200, ge=1, description="outbox rows published per relay round")
    outbox_poll_s: float = Field(
        default=0.5, gt=0, description="relay poll interval (a committed command wakes it at once in this process)"
    )
    outbox_retry_initial_s: float = Field(default=0.2, gt=0, description="first back-off after a failed round")
    outbox_retry_max_s: float = Field(default=5.0, gt=0, description="longest back-off between failed rounds")
    outbox_retention_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="published outbox rows are deleted after this long"
    )

    controller_enabled: bool = Field(default=True, description="run the rollout controller in this process")
    controller_interval_s: float = Field(
        default=10.0, gt=0, description="time between evaluations of every running rollout"
    )
    controller_principal: str = Field(
        default="rollout-controller", min_length=1, description="identity the controller acts as (role service)"
    )

    watch_poll_s: float = Field(default=0.25, gt=0, description="how often WatchRoutes looks for new revisions")
    default_page_size: int = Field(default=50, ge=1, le=1000, description="page size when a request gives 0")
