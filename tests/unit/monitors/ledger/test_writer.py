"""The writer loop over a fake log and store: exactly once across restarts, outages, refusals, resyncs."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.monitors.ledger.consumer import LedgerDecoder
from services.monitors.ledger.writer import LedgerWriter, WriterTuning
from services.runtime.errors import Unavailable
from services.runtime.kafka import ConsumedRecord, TopicPartition
from services.runtime.metrics import Metrics
from tests.unit.monitors.ledger.events import PREDICTIONS, READS, prediction_event, read_event
from tests.unit.monitors.ledger.fakes import FakeLedgerStore, FakeLog

FAST = WriterTuning(poll_timeout_s=0.01, max_batch=7, retry_initial_s=0.001, retry_max_s=0.002, refused_attempts=2)
P0, P1, R0 = TopicPartition(PREDICTIONS, 0), TopicPartition(PREDICTIONS, 1), TopicPartition(READS, 0)


def _log(predictions: int = 20, reads: int = 8) -> tuple[dict[TopicPartition, list[bytes | None]], list[str]]:
    events = [prediction_event() for _ in range(predictions)]
    log: dict[TopicPartition, list[bytes | None]] = {P0: [], P1: [], R0: []}
    for index, event in enumerate(events):
        log[P0 if index % 2 == 0 else P1].append(event.SerializeToString())
    for event in events[:reads]:
        log[R0].append(read_event(event.prediction_id).SerializeToString())
    return log, [event.prediction_id for event in events]


def _writer(store: FakeLedgerStore, metrics: Metrics | None = None) -> LedgerWriter:
    return LedgerWriter(store, LedgerDecoder(PREDICTIONS, READS), "group-a", FAST, metrics)


@pytest.mark.asyncio
async def test_everything_is_written_once_and_a_restart_reads_nothing_again() -> None:
    log, ids = _log()
    store = FakeLedgerStore()
    metrics = Metrics(process_metrics=False)
    writer = _writer(store, metrics)
    await writer.run(FakeLog(writer, log, store))
    assert set(store.predictions) == {uuid.UUID(i) for i in ids}
    assert len(store.reads) == 8
    assert store.offsets == {("group-a", P0): 10, ("group-a", P1): 10, ("group-a", R0): 8}
    assert (writer.predictions_inserted, writer.reads_inserted, writer.duplicates) == (20, 8, 0)
    assert writer.batches == 4  # 28 records in batches of at most 7
    assert b'radguard_ledger_rows_inserted_total{kind="prediction"} 20.0' in metrics.render()

    again = _writer(store)
    source = FakeLog(again, log, store)
    await again.run(source)
    assert source.position == {P0: 10, P1: 10, R0: 8}
    assert again.batches == 0


@pytest.mark.asyncio
async def test_a_writer_stopped_mid_stream_resumes_from_the_stored_offsets() -> None:
    log, ids = _log(predictions=30, reads=0)
    store = FakeLedgerStore()
    first = _writer(store)
    source = FakeLog(first, log, store)
    # The third write "crashes": the batch never commits and the writer is gone.
    writes_before_crash = 2

    original = store.write

    async def crash_on_third(group, batch):  # type: ignore[no-untyped-def]
        if store.writes == writes_before_crash:
            first.stop()
            raise Unavailable("postgres", "killed")
        return await original(group, batch)

    store.write = crash_on_third  # type: ignore[method-assign]
    await first.run(source)
    assert store.writes == 2 and len(store.predictions) == 14

    store.write = original  # type: ignore[method-assign]
    second = _writer(store)
    await second.run(FakeLog(second, log, store))
    assert set(store.predictions) == {uuid.UUID(i) for i in ids}
    assert second.duplicates == 0  # resumed exactly after the last committed batch
    assert second.predictions_inserted == 16


@pytest.mark.asyncio
async def test_an_outage_retries_the_same_batch_until_it_commits() -> None:
    log, _ = _log(predictions=5, reads=0)
    store = FakeLedgerStore()
    store.failures = [Unavailable("postgres", "restarting"), ConnectionResetError("reset")]
    writer = _writer(store)
    await writer.run(FakeLog(writer, log, store))
    assert writer.write_failures == 2
    assert writer.batches == 1
    assert len(store.predictions) == 5
    assert writer.healthy is True


@pytest.mark.asyncio
async def test_a_replay_from_offset_zero_only_counts_duplicates() -> None:
    log, _ = _log(predictions=12, reads=4)
    store = FakeLedgerStore()
    writer = _writer(store)
    await writer.run(FakeLog(writer, log, store))
    store.offsets.clear()  # an operator resets the group's offsets
    replay = _writer(store)
    await replay.run(FakeLog(replay, log, store))
    assert (replay.predictions_inserted, replay.reads_inserted, replay.duplicates) == (0, 0, 16)
    assert len(store.predictions) == 12 and len(store.reads) == 4


@pytest.mark.asyncio
async def test_a_refused_record_is_isolated_and_kept_as_a_reject() -> None:
    log, ids = _log(predictions=6, reads=0)
    store = FakeLedgerStore()
    store.poison = {uuid.UUID(ids[2])}  # offset 1 of partition 0
    writer = _writer(store)
    await writer.run(FakeLog(writer, log, store))
    assert set(store.predictions) == {uuid.UUID(i) for i in ids} - store.poison
    assert list(store.rejects) == [(PREDICTIONS, 0, 1)]
    assert store.rejects[(PREDICTIONS, 0, 1)].startswith("refused by the database: value violates")
    assert store.offsets[("group-a", P0)] == 3 and store.offsets[("group-a", P1)] == 3
    assert writer.rejected == 1


@pytest.mark.asyncio
async def test_offsets_unreadable_at_assignment_are_resynced_before_records_are_used() -> None:
    log, ids = _log(predictions=10, reads=0)
    store = FakeLedgerStore()
    # A previous run wrote partition 0 up to offset 3; reading the offsets fails while partitions are assigned.
    store.offsets[("group-a", P0)] = 3
    store.offset_reads_fail = 2
    writer = _writer(store)
    source = FakeLog(writer, log, store)
    await writer.run(source)
    assert (P0, 3) in source.seeks and (P1, 0) in source.seeks
    # Records 0..2 of partition 0 were polled from the wrong position and dropped, never written.
    expected = {uuid.UUID(i) for index, i in enumerate(ids) if not (index % 2 == 0 and index // 2 < 3)}
    assert set(store.predictions) == expected
    assert store.offsets[("group-a", P0)] == 5


@pytest.mark.asyncio
async def test_a_failed_poll_is_retried() -> None:
    log, _ = _log(predictions=3, reads=0)
    store = FakeLedgerStore()
    writer = _writer(store)
    source = FakeLog(writer, log, store)
    source.poll_failures = [Unavailable("kafka", "no broker")]
    await writer.run(source)
    assert source.polls >= 3
    assert len(store.predictions) == 3


@pytest.mark.asyncio
async def test_stop_during_an_outage_gives_the_batch_up_uncommitted() -> None:
    log, _ = _log(predictions=3, reads=0)
    store = FakeLedgerStore()
    writer = _writer(store)
    store.failures = [Unavailable("postgres", "down")] * 1000
    source = FakeLog(writer, log, store)
    source.stop_when_drained = False

    original = writer._pause

    async def stop_soon(seconds: float) -> None:
        writer.stop()
        await original(seconds)

    writer._pause = stop_soon  # type: ignore[method-assign]
    await writer.run(source)
    assert store.predictions == {} and store.offsets == {}


@pytest.mark.asyncio
async def test_assignment_waits_for_the_batch_being_written_and_resumes_after_it() -> None:
    log, _ = _log(predictions=4, reads=0)
    store = FakeLedgerStore()
    writer = _writer(store)
    release = asyncio.Event()
    original = store.write

    async def slow_write(group, batch):  # type: ignore[no-untyped-def]
        await release.wait()
        return await original(group, batch)

    store.write = slow_write  # type: ignore[method-assign]
    batch = LedgerDecoder(PREDICTIONS, READS).decode(
        [ConsumedRecord(P0.topic, 0, offset, None, value) for offset, value in enumerate(log[P0])]
    )
    writing = asyncio.create_task(writer.commit(batch))
    await asyncio.sleep(0.01)
    assigning = asyncio.create_task(writer.on_assign(frozenset({P0, P1})))
    await asyncio.sleep(0.01)
    assert not assigning.done()  # a rebalance must not read offsets under an uncommitted batch
    release.set()
    assert await writing is True
    assert await assigning == {P0: 2, P1: 0}
