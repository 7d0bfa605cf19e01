"""The feedback service's settings (``RADGUARD_*`` environment variables), on top of the shared ones."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from kernel.topics import READS_TOPIC
from services.runtime.auth import CallerAuthSettings

#: Topic the feedback service publishes ReadEvents to (keyed by prediction id).


class FeedbackSettings(CallerAuthSettings):
    """Everything the feedback process is configured with (caller authentication included)."""

    service_name: str = "feedback"
    instance_id: str = Field(default="fb-0", min_length=1, description="names this instance in events (producer)")
    grpc_port: int = Field(default=19062, ge=0, le=65535)
    metrics_port: int = Field(default=19462, ge=0, le=65535)
    # Requests here are small records and queries: refuse anything larger before it is parsed.
    grpc_max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    reads_topic: str = Field(default=READS_TOPIC, min_length=1, description="where ReadEvents are published")
    pseudonym_key: SecretStr = Field(
        description="HMAC key for read keys and readers; the gateway's key, at least 16 characters"
    )
    max_clock_skew_s: float = Field(
        default=60.0, ge=0, description="how far ahead of this service a reader's clock may run"
    )
    check_against_ledger: bool = Field(
        default=True, description="check agree/override against the model's decision when the ledger has it"
    )
    outbox_batch: int = Field(default=500, ge=1, description="outbox rows published per relay round")
    outbox_poll_s: float = Field(
        default=0.5, gt=0, description="relay poll interval (a new read wakes it at once in this process)"
    )
    outbox_retry_initial_s: float = Field(default=0.2, gt=0, description="first back-off after a failed round")
    outbox_retry_max_s: float = Field(default=5.0, gt=0, description="longest back-off between failed rounds")
    outbox_retention_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="published outbox rows are deleted after this long"
    )

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value
