"""Ledger statistics for operators: row counts, orphan reads, and consumer lag per topic partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.monitors.ledger.queries import LedgerCounts, LedgerQueries, StoredOffset
from services.runtime.kafka import TopicPartition


class OffsetReader(Protocol):
    """Where a topic's partitions begin and end (Kafka)."""

    async def offsets(self, topics: Sequence[str]) -> dict[TopicPartition, tuple[int, int]]:
        """Per partition of ``topics``: (beginning offset, end offset).

        Raises:
            Unavailable: Kafka cannot be reached.
        """
        ...


@dataclass(frozen=True)
class PartitionLag:
    """How far a consumer group's stored offset trails a partition's end.

    Attributes:
        topic: Topic name.
        partition: Partition number.
        end_offset: Offset the next produced record will get.
        next_offset: Offset stored in the ledger, None when the group has not written this partition.
        lag: Records still to write (from the beginning of the log when nothing is stored).
    """

    topic: str
    partition: int
    end_offset: int
    next_offset: int | None
    lag: int


@dataclass(frozen=True)
class LedgerStats:
    """What ``radguard ledger stats`` shows."""

    group: str
    counts: LedgerCounts
    lags: tuple[PartitionLag, ...]
    offsets: tuple[StoredOffset, ...]

    @property
    def total_lag(self) -> int:
        """Sum of the partitions' lags."""
        return sum(lag.lag for lag in self.lags)


def partition_lags(
    stored: Mapping[TopicPartition, int], bounds: Mapping[TopicPartition, tuple[int, int]]
) -> list[PartitionLag]:
    """Lag of every partition Kafka knows, given the stored next offsets.

    A stored offset below the log's beginning (records deleted by retention) counts from the beginning:
    those records can no longer be written, and counting them would report lag that never drains.

    Args:
        stored: Stored next offset per partition.
        bounds: (beginning, end) offsets per partition.

    Returns:
        One entry per partition in ``bounds``, sorted by topic and partition.
    """
    lags: list[PartitionLag] = []
    for partition in sorted(bounds, key=lambda tp: (tp.topic, tp.partition)):
        beginning, end = bounds[partition]
        next_offset = stored.get(partition)
        position = beginning if next_offset is None else max(next_offset, beginning)
        lags.append(PartitionLag(partition.topic, partition.partition, end, next_offset, max(end - position, 0)))
    return lags


async def ledger_stats(queries: LedgerQueries, offsets: OffsetReader, group: str, topics: Sequence[str]) -> LedgerStats:
    """Gather counts, stored offsets and lag for ``group`` over ``topics``.

    Args:
        queries: The ledger's read side.
        offsets: Kafka's partition bounds.
        group: The writer's consumer group.
        topics: The topics it consumes.
    """
    counts = await queries.counts()
    stored_rows = await queries.stored_offsets(group)
    bounds = await offsets.offsets(topics)
    stored = {TopicPartition(row.topic, row.partition): row.next_offset for row in stored_rows}
    return LedgerStats(group, counts, tuple(partition_lags(stored, bounds)), tuple(stored_rows))
