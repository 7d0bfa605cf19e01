"""In-memory stand-ins for the ledger writer's ports: a partitioned log and a transactional store."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from services.monitors.ledger.domain import BatchRefused, LedgerBatch, WriteResult
from services.monitors.ledger.writer import LedgerWriter
from services.runtime.errors import Unavailable
from services.runtime.kafka import ConsumedRecord, TopicPartition


class FakeLedgerStore:
    """LedgerStore whose write is all-or-nothing, like the PostgreSQL transaction it stands in for."""

    def __init__(self) -> None:
        self.predictions: dict[uuid.UUID, int] = {}
        self.reads: dict[uuid.UUID, int] = {}
        self.rejects: dict[tuple[str, int, int], str] = {}
        self.offsets: dict[tuple[str, TopicPartition], int] = {}
        #: Exceptions the next writes raise, in order (before touching anything).
        self.failures: list[Exception] = []
        #: Ids whose presence makes a batch be refused.
        self.poison: set[uuid.UUID] = set()
        self.offset_reads_fail = 0
        self.writes = 0

    async def stored_offsets(self, group: str, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        if self.offset_reads_fail:
            self.offset_reads_fail -= 1
            raise Unavailable("postgres", "down for the test")
        return {p: self.offsets[(group, p)] for p in partitions if (group, p) in self.offsets}

    async def write(self, group: str, batch: LedgerBatch) -> WriteResult:
        if self.failures:
            raise self.failures.pop(0)
        ids = {p.prediction_id for p in batch.predictions} | {r.read_id for r in batch.reads}
        if ids & self.poison:
            raise BatchRefused("value violates a check constraint")
        self.writes += 1
        new_predictions = {p.prediction_id for p in batch.predictions} - self.predictions.keys()
        new_reads = {r.read_id for r in batch.reads} - self.reads.keys()
        for p in batch.predictions:
            self.predictions.setdefault(p.prediction_id, p.source.offset)
        for r in batch.reads:
            self.reads.setdefault(r.read_id, r.source.offset)
        for j in batch.rejects:
            self.rejects.setdefault((j.source.topic, j.source.partition, j.source.offset), j.reason)
        for partition, offset in batch.next_offsets.items():
            self.offsets[(group, partition)] = offset
        return WriteResult(
            len(new_predictions),
            len(new_reads),
            len(batch) - len(new_predictions) - len(new_reads) - len(batch.rejects),
            len(batch.rejects),
        )


class FakeLog:
    """A partitioned log with one consumer; assigns every partition to ``writer`` on the first poll.

    Like Kafka, a partition whose assignment callback returned no offset is read from the beginning.
    With ``stop_when_drained`` the writer is stopped once every record has been handed out and ``store``
    holds offsets at the end of every partition (the writer polls ahead while it writes).
    """

    def __init__(
        self, writer: LedgerWriter, log: dict[TopicPartition, list[bytes | None]], store: FakeLedgerStore
    ) -> None:
        self.writer = writer
        self.log = log
        self.store = store
        self.position: dict[TopicPartition, int] = {}
        self.assigned = False
        self.poll_failures: list[Exception] = []
        self.stop_when_drained = True
        self.polls = 0
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def getmany(self, timeout_s: float = 1.0, max_records: int | None = None) -> list[ConsumedRecord]:
        self.polls += 1
        if self.poll_failures:
            raise self.poll_failures.pop(0)
        if not self.assigned:
            self.assigned = True
            resume = await self.writer.on_assign(frozenset(self.log))
            self.position = {p: resume.get(p, 0) for p in self.log}
        limit = max_records or 500
        out: list[ConsumedRecord] = []
        for partition in sorted(self.log, key=lambda tp: (tp.topic, tp.partition)):
            values = self.log[partition]
            while self.position[partition] < len(values) and len(out) < limit:
                offset = self.position[partition]
                out.append(ConsumedRecord(partition.topic, partition.partition, offset, None, values[offset]))
                self.position[partition] = offset + 1
        if not out and self.stop_when_drained and self._all_committed():
            self.writer.stop()
        return out

    def _all_committed(self) -> bool:
        group = self.writer.group
        return all(self.store.offsets.get((group, p), 0) >= len(values) for p, values in self.log.items())

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))
        self.position[partition] = offset
