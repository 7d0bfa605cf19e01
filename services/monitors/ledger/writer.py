"""The ledger writer use case: poll a batch, write it with its offsets in one transaction, repeat.

Exactly once, and why: the rows and the offsets they were consumed up to commit in the same PostgreSQL
transaction, and on (re)assignment the consumer seeks to the offsets stored there — never to offsets
committed to Kafka. A crash before the commit leaves neither the rows nor the new offsets, so the
batch is read again; a crash after it leaves both, so it is not. Rows are also unique on the event id,
so a replay (offsets reset, a second group, a producer's retry) cannot double a row either.

A batch that fails to commit because PostgreSQL is unreachable is retried unchanged (with back-off)
until it commits or the writer stops; its records are not polled again meanwhile. A batch whose
content the database refuses is split and written record by record, and the refused record is kept as
a reject, so one bad record cannot stall its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from dataclasses import dataclass

from services.monitors.ledger.domain import (
    BatchRefused,
    LedgerBatch,
    PredictionRecord,
    ReadRecord,
    RejectedRecord,
    WriteResult,
)
from services.monitors.ledger.ports import LedgerStore, RecordDecoder, RecordSource
from services.runtime.kafka import ConsumedRecord, TopicPartition
from services.runtime.metrics import Metrics
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True)
class WriterTuning:
    """Batching and retry knobs.

    Attributes:
        poll_timeout_s: Longest wait for records in one poll.
        max_batch: Most records in one batch (one transaction).
        retry_initial_s: First back-off after a failed write or poll.
        retry_max_s: Longest back-off.
        refused_attempts: Times a batch may be refused before it is split record by record.
        assign_timeout_s: Longest a rebalance callback waits for the write in progress and the offsets;
            well under the consumer's callback timeout (30 s), after which the loop seeks instead.
    """

    poll_timeout_s: float = 0.2
    max_batch: int = 2000
    retry_initial_s: float = 0.1
    retry_max_s: float = 5.0
    refused_attempts: int = 3
    assign_timeout_s: float = 10.0


class _WriterMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.rows = metrics.counter("ledger_rows_inserted", "Rows added to the ledger", ["kind"])
        self.duplicates = metrics.counter("ledger_duplicates", "Consumed records whose id was already stored")
        self.rejects = metrics.counter("ledger_rejects", "Consumed records kept as rejects")
        self.failures = metrics.counter("ledger_write_failures", "Batch writes that failed and were retried")
        self.batch_seconds = metrics.histogram("ledger_batch_write_seconds", "Time to commit one batch")

    def committed(self, result: WriteResult, seconds: float) -> None:
        self.rows.labels("prediction").inc(result.predictions_inserted)
        self.rows.labels("read").inc(result.reads_inserted)
        self.duplicates.inc(result.duplicates)
        self.rejects.inc(result.rejected)
        self.batch_seconds.observe(seconds)


class LedgerWriter:
    """Consumes predictions and reads into the ledger, exactly once per consumer group."""

    def __init__(
        self,
        store: LedgerStore,
        decoder: RecordDecoder,
        group: str,
        tuning: WriterTuning | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Create the writer; :meth:`run` drives it.

        Args:
            store: Where batches and offsets go.
            decoder: Turns records into rows.
            group: Consumer group id; offsets are stored under it.
            tuning: Batching and retry knobs.
            metrics: Registry for the writer's counters; none recorded when None.
        """
        self._store = store
        self._decoder = decoder
        self.group = group
        self.tuning = tuning or WriterTuning()
        self._metrics = _WriterMetrics(metrics) if metrics is not None else None
        self._stopping = asyncio.Event()
        # Held while a batch is written; rebalance callbacks take it so they never see half a handover.
        self._writing = asyncio.Lock()
        # Partitions assigned while their stored offsets could not be read: seek before using their records.
        self._unsynced: set[TopicPartition] = set()
        self.assignment: frozenset[TopicPartition] = frozenset()
        #: Whether the last poll and write succeeded (readiness).
        self.healthy = True
        self.batches = 0
        self.predictions_inserted = 0
        self.reads_inserted = 0
        self.duplicates = 0
        self.rejected = 0
        self.write_failures = 0

    # --- consumer callbacks ----------------------------------------------------------------------

    async def on_assign(self, partitions: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        """Resume each newly assigned partition from the offset stored in the ledger (0 when none).

        The offsets are read only after the batch being written (if any) has committed, so they include it.
        If they cannot be read in time, the partitions are marked and the loop seeks them before it uses
        any of their records.
        """
        self.assignment = self.assignment | partitions
        self._unsynced |= partitions
        try:
            async with asyncio.timeout(self.tuning.assign_timeout_s), self._writing:
                stored = await self._store.stored_offsets(self.group, partitions)
        except Exception as error:
            _log.warning("ledger.offsets_unreadable_on_assign", error=f"{type(error).__name__}: {error}")
            return {}
        self._unsynced -= partitions
        _log.info("ledger.partitions_assigned", partitions=_names(partitions), resume=_offsets(stored))
        return {partition: stored.get(partition, 0) for partition in partitions}

    async def on_revoke(self, partitions: frozenset[TopicPartition]) -> None:
        """Let the batch being written commit before the partitions go to another member."""
        try:
            async with asyncio.timeout(self.tuning.assign_timeout_s), self._writing:
                pass
        except TimeoutError:
            # The next owner may then re-read that batch: harmless, rows are unique on the event id.
            _log.warning("ledger.revoked_during_write", partitions=_names(partitions))
        self.assignment = self.assignment - partitions
        self._unsynced -= partitions

    # --- loop ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (an uncommitted batch is read again later)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    async def run(self, source: RecordSource) -> None:
        """Poll and write until :meth:`stop`.

        Three stages overlap: the next poll runs on the consumer's thread and the next batch is decoded
        while the current one is written; writes stay one at a time and in order. Rebalance callbacks
        wait for the write in progress, so the offsets they hand to the consumer include every batch
        written before them.

        Args:
            source: A started consumer whose ``on_assign``/``on_revoke`` are this writer's.
        """
        backoff = self.tuning.retry_initial_s
        prefetch = self._poll(source)
        writing: asyncio.Task[bool] | None = None
        try:
            while not self.stopping:
                try:
                    records = await prefetch
                except Exception as error:
                    # Broker unreachable, a failed rebalance callback: the consumer recovers by polling again.
                    self.healthy = False
                    _log.warning("ledger.poll_failed", error=f"{type(error).__name__}: {error}", retry_in_s=backoff)
                    await self._pause(backoff)
                    backoff = min(backoff * 2, self.tuning.retry_max_s)
                    prefetch = self._poll(source)
                    continue
                backoff = self.tuning.retry_initial_s
                if self._unsynced:
                    # The offsets to seek to must include the batch being written; no poll runs meanwhile.
                    if writing is not None and not await writing:
                        break
                    writing = None
                    records = await self._resync(source, records)
                prefetch = self._poll(source)
                if not records:
                    if not self.healthy and self.assignment and (writing is None or writing.done()):
                        self.healthy = True
                    continue
                # Decoding this batch overlaps the previous batch's write; the writes stay in order.
                batch = self._decoder.decode(records)
                if writing is not None and not await writing:
                    break
                writing = asyncio.ensure_future(self.commit(batch))
        finally:
            # A batch not committed and records polled ahead are read again on the next start.
            if writing is not None:
                with contextlib.suppress(Exception):
                    await writing
            with contextlib.suppress(Exception):
                await prefetch

    def _poll(self, source: RecordSource) -> asyncio.Task[list[ConsumedRecord]]:
        return asyncio.ensure_future(source.getmany(self.tuning.poll_timeout_s, self.tuning.max_batch))

    async def commit(self, batch: LedgerBatch) -> bool:
        """Write one batch, retrying outages until it commits or the writer stops.

        Returns:
            True when committed, False when the writer stopped first.
        """
        backoff = self.tuning.retry_initial_s
        refusals = 0
        while True:
            started = time.perf_counter()
            try:
                async with self._writing:
                    result = await self._store.write(self.group, batch)
            except BatchRefused as error:
                refusals += 1
                self._failed(error, backoff)
                if refusals >= self.tuning.refused_attempts:
                    return await self._isolate(batch, error)
            except Exception as error:
                self._failed(error, backoff)
            else:
                self._committed(result, time.perf_counter() - started)
                return True
            if self.stopping:
                return False
            await self._pause(backoff)
            backoff = min(backoff * 2, self.tuning.retry_max_s)
            if self.stopping:
                return False

    # --- internals -------------------------------------------------------------------------------

    async def _isolate(self, batch: LedgerBatch, error: BatchRefused) -> bool:
        if len(batch) > 1:
            _log.error("ledger.batch_refused_splitting", records=len(batch), error=str(error))
            for single in batch.singles():
                if not await self.commit(single):
                    return False
            return True
        # One record the database will not take: keep it as a reject so its partition moves on.
        items: list[PredictionRecord | ReadRecord | RejectedRecord] = [*batch.predictions, *batch.reads, *batch.rejects]
        item = items[0]
        if isinstance(item, RejectedRecord) and item.payload is None:
            raise error  # even a bare reject is refused: nothing safe is left to try
        reject = LedgerBatch(rejects=[RejectedRecord(item.source, f"refused by the database: {error}", None)])
        reject.add_position(item.source)
        return await self.commit(reject)

    async def _resync(self, source: RecordSource, records: list[ConsumedRecord]) -> list[ConsumedRecord]:
        partitions = set(self._unsynced)
        stored = await self._read_offsets_until_stopped(partitions)
        if stored is None:
            return []
        for partition in partitions:
            if partition in self.assignment:
                await source.seek(partition, stored.get(partition, 0))
        self._unsynced -= partitions
        _log.info("ledger.partitions_resynced", partitions=_names(partitions), resume=_offsets(stored))
        # Records of these partitions came from a position the ledger did not choose: drop them.
        return [record for record in records if record.topic_partition not in partitions]

    async def _read_offsets_until_stopped(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int] | None:
        backoff = self.tuning.retry_initial_s
        while not self.stopping:
            try:
                return await self._store.stored_offsets(self.group, partitions)
            except Exception as error:
                self._failed(error, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, self.tuning.retry_max_s)
        return None

    def _committed(self, result: WriteResult, seconds: float) -> None:
        self.healthy = True
        self.batches += 1
        self.predictions_inserted += result.predictions_inserted
        self.reads_inserted += result.reads_inserted
        self.duplicates += result.duplicates
        self.rejected += result.rejected
        if self._metrics is not None:
            self._metrics.committed(result, seconds)

    def _failed(self, error: BaseException, backoff: float) -> None:
        self.healthy = False
        self.write_failures += 1
        if self._metrics is not None:
            self._metrics.failures.inc()
        _log.warning("ledger.write_failed", error=f"{type(error).__name__}: {error}", retry_in_s=backoff)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _names(partitions: Collection[TopicPartition]) -> list[str]:
    return sorted(f"{partition.topic}[{partition.partition}]" for partition in partitions)


def _offsets(stored: dict[TopicPartition, int]) -> dict[str, int]:
    return {f"{partition.topic}[{partition.partition}]": offset for partition, offset in stored.items()}
