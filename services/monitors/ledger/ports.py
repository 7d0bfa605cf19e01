"""The ledger writer's ports: where batches go and where records come from."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from services.monitors.ledger.domain import LedgerBatch, WriteResult
from services.runtime.kafka import ConsumedRecord, TopicPartition


class LedgerStore(Protocol):
    """The ledger's write side: batches and consumer offsets, committed together."""

    async def stored_offsets(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to read for each of ``partitions`` that has one stored.

        Raises:
            Unavailable: The database cannot be reached.
        """
        ...

    async def write(self, group: str, batch: LedgerBatch) -> WriteResult:
        """Write the batch's rows and rejects and advance ``group``'s offsets, in one transaction.

        Rows whose id is already stored are skipped (counted as duplicates).

        Raises:
            Unavailable: The database cannot be reached; nothing or everything of the batch committed.
            BatchRefused: The database refused the content; nothing committed.
        """
        ...


class RecordDecoder(Protocol):
    """Turns consumed records into a batch of rows and rejects (protobuf lives behind it)."""

    def decode(self, records: Iterable[ConsumedRecord]) -> LedgerBatch:
        """Decode ``records``; every record becomes a row or a reject and counts towards the offsets."""
        ...


class RecordSource(Protocol):
    """A started Kafka consumer (group member) the writer polls and seeks."""

    async def getmany(self, timeout_s: float = 1.0, max_records: int | None = None) -> list[ConsumedRecord]:
        """Records available within ``timeout_s``, in offset order per partition."""
        ...

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` next."""
        ...


#: Offsets to resume from, as the consumer's on_assign callback returns them.
Resume = Mapping[TopicPartition, int]
