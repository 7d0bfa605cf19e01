"""Partition bounds (beginning and end offsets) read from Kafka without joining any group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import kafka.errors

from services.runtime.errors import Unavailable
from services.runtime.kafka import TopicPartition, new_consumer
from services.runtime.kafka_security import KafkaSecuritySettings


class KafkaOffsetReader:
    """OffsetReader with a short-lived group-less kafka-python consumer per call (on a worker thread)."""

    def __init__(
        self, bootstrap_servers: str, *, timeout_ms: int = 10_000, security: KafkaSecuritySettings | None = None
    ) -> None:
        """Create the reader.

        Args:
            bootstrap_servers: ``host:port`` entries, comma-separated.
            timeout_ms: Time to reach the cluster and read the offsets.
            security: Kafka TLS/SASL settings; plaintext when None.
        """
        self._bootstrap = bootstrap_servers
        self._timeout_ms = timeout_ms
        self._security = security

    def _read(self, topics: Sequence[str]) -> dict[TopicPartition, tuple[int, int]]:
        consumer = new_consumer(
            self._security,
            bootstrap_servers=self._bootstrap,
            client_id="radguard-ledger-stats",
            request_timeout_ms=self._timeout_ms,
            bootstrap_timeout_ms=self._timeout_ms,
        )
        try:
            partitions = [
                TopicPartition(topic, number)
                for topic in topics
                for number in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                return {}
            beginnings = consumer.beginning_offsets(partitions)
            ends = consumer.end_offsets(partitions)
            return {partition: (beginnings[partition], ends[partition]) for partition in partitions}
        finally:
            consumer.close()

    async def offsets(self, topics: Sequence[str]) -> dict[TopicPartition, tuple[int, int]]:
        try:
            return await asyncio.to_thread(self._read, topics)
        except kafka.errors.KafkaError as error:
            raise Unavailable("kafka", f"{type(error).__name__}: {error}") from error
