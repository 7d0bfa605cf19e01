"""The ledger writer's settings (``RADGUARD_*`` environment variables), on top of the shared ones."""

from __future__ import annotations

from pydantic import Field

from kernel.topics import LEDGER_GROUP, PREDICTIONS_TOPIC, READS_TOPIC
from services.runtime.config import ServiceSettings

#: Default consumer group; offsets in the ledger are stored under it.


class LedgerSettings(ServiceSettings):
    """Everything the ledger writer process is configured with."""

    service_name: str = "ledger-writer"
    grpc_port: int = Field(default=19071, ge=0, le=65535, description="health endpoint")
    metrics_port: int = Field(default=19471, ge=0, le=65535)
    ledger_group: str = Field(default=LEDGER_GROUP, min_length=1, description="consumer group id")
    predictions_topic: str = Field(default=PREDICTIONS_TOPIC, min_length=1)
    reads_topic: str = Field(default=READS_TOPIC, min_length=1)
    # A batch is one transaction: large enough to amortise the commit, small enough to keep lag low.
    kafka_max_poll_records: int = Field(default=2000, ge=1, description="most records in one batch")
    ledger_poll_timeout_s: float = Field(default=0.2, gt=0, description="longest wait for records in one poll")
    ledger_retry_initial_s: float = Field(default=0.1, gt=0, description="first back-off after a failed write")
    ledger_retry_max_s: float = Field(default=5.0, gt=0, description="longest back-off between retries")
    ledger_refused_attempts: int = Field(
        default=3, ge=1, description="refusals of a batch's content before it is written record by record"
    )
    postgres_pool_max_size: int = Field(default=3, ge=1)
    # Short, so a restarted writer takes over a crashed one's partitions within seconds.
    kafka_session_timeout_ms: int = Field(default=10_000, gt=0)
    # The writer subscribes to topics that may have been created moments before (a fresh stack, a test). It
    # waits until its client's metadata lists their partitions before its first join: a join on older metadata
    # is followed at once by a second rebalance, whose assignment kafka-python 3.0 can lose (see
    # AsyncKafkaConsumer); a writer left without partitions rejoins. A short metadata age notices new ones.
    kafka_metadata_max_age_ms: int = Field(default=30_000, gt=0, description="longest age of cluster metadata")
    ledger_partitions_wait_s: float = Field(
        default=30.0, ge=0, description="wait for the topics' partitions before the first join"
    )
    ledger_rejoin_unassigned_after_s: float = Field(
        default=15.0, gt=0, description="leave and rejoin the group after this long without partitions"
    )
