"""Fault tests of the ledger writer, each asserting 0 lost and 0 duplicated by id.

SIGKILL the writer process mid-batch and start a new one; restart PostgreSQL and Kafka under a running
writer; replay the topics from offset 0. Beyond the row counts (which the primary keys alone would keep
free of doubles), the offsets table shows *how*: after a kill the new writer resumes exactly where the
last committed transaction ended (no record read twice), and a replay is absorbed as counted duplicates.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from stack.manager import Stack
from stack.processes import stop_process
from tests.integration.conftest import StackEndpoints, kill_component
from tests.integration.ledger.conftest import (
    Topics,
    WriterSubprocess,
    counts,
    end_offsets,
    produce,
    start_writer,
    stored_offsets,
    wait_for_rows,
    writer_env,
)
from tests.integration.ledger.simulated import Traffic, simulate

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]


async def assert_exactly_once(dsn: str, traffic: Traffic) -> None:
    """Every prediction and read of ``traffic`` is in the ledger once, and nothing else is."""
    connection = await asyncpg.connect(dsn)
    try:
        predictions = [str(r[0]) for r in await connection.fetch("select prediction_id from ledger_predictions")]
        reads = [str(r[0]) for r in await connection.fetch("select read_id from ledger_reads")]
    finally:
        await connection.close()
    expected_reads = {t.read_id for t in traffic.read_truths()}
    assert len(predictions) == len(set(predictions)) == len(traffic.truth)
    assert set(predictions) == set(traffic.truth), "lost or foreign predictions"
    assert len(reads) == len(set(reads)) == len(expected_reads)
    assert set(reads) == expected_reads, "lost or foreign reads"


async def assert_offsets_at_end(stack: StackEndpoints, dsn: str, topics: Topics) -> dict[str, int]:
    """Stored offsets equal the topics' end offsets; returns the summed records and duplicates."""
    ends = await asyncio.to_thread(end_offsets, stack.kafka_bootstrap, [topics.predictions, topics.reads])
    stored = await stored_offsets(dsn, topics.group)
    assert {partition: offset for partition, (offset, _, _) in stored.items()} == ends
    return {
        "records": sum(records for _, records, _ in stored.values()),
        "duplicates": sum(duplicates for _, _, duplicates in stored.values()),
    }


async def _in_transaction(dsn: str, application_name: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        busy = await connection.fetchval(
            "select count(*) from pg_stat_activity where application_name = $1 and xact_start is not null",
            application_name,
        )
    finally:
        await connection.close()
    return bool(busy)


async def _wait_backend_gone(dsn: str, application_name: str, timeout_s: float = 30.0) -> None:
    """Wait until PostgreSQL has closed the killed writer's session.

    A SIGKILL can land just after the writer sent COMMIT: PostgreSQL then still commits that batch. Only
    once the backend is gone is the ledger's content final, so the counts are taken after that.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    connection = await asyncpg.connect(dsn)
    try:
        while True:
            alive = await connection.fetchval(
                "select count(*) from pg_stat_activity where application_name = $1", application_name
            )
            if not alive:
                return
            assert asyncio.get_running_loop().time() < deadline, "the killed writer's session never closed"
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def test_a_sigkilled_writer_is_replaced_without_loss_or_rereading(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics, tmp_path: Path
) -> None:
    traffic = simulate(15_000, 3_000, seed=21)
    await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
    await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)
    name = f"ledger-kill-{uuid.uuid4().hex[:6]}"
    env = writer_env(stack, ledger_dsn, topics, service_name=name, kafka_max_poll_records="500")
    first = WriterSubprocess(env, tmp_path / "writer.log")
    first.start()
    try:
        assert (await wait_for_rows(ledger_dsn, 2_000, 0, timeout_s=60))[0] >= 2_000, first.log_tail()
        # Kill while a batch transaction is open: mid-batch.
        seen_open_transaction = False
        for _ in range(500):
            if await _in_transaction(ledger_dsn, name):
                seen_open_transaction = True
                break
            await asyncio.sleep(0.01)
        first.kill()
    finally:
        first.stop()
    assert seen_open_transaction, "the writer never had a batch transaction open"
    await _wait_backend_gone(ledger_dsn, name)
    at_kill = await counts(ledger_dsn)
    assert 0 < sum(at_kill) < 18_000, "the kill should land mid-stream"
    await asyncio.sleep(1.0)
    assert await counts(ledger_dsn) == at_kill  # the uncommitted batch left nothing behind
    stored = await stored_offsets(ledger_dsn, topics.group)
    # Rows and offsets committed together: the offsets account for exactly the rows present.
    assert sum(records for _, records, _ in stored.values()) == sum(at_kill)

    second = WriterSubprocess(env, tmp_path / "writer.log")
    second.start()
    try:
        final = await wait_for_rows(ledger_dsn, 15_000, 3_000, timeout_s=120)
        assert final == (15_000, 3_000), second.log_tail()
    finally:
        assert second.stop() == 0, second.log_tail()
    await assert_exactly_once(ledger_dsn, traffic)
    totals = await assert_offsets_at_end(stack, ledger_dsn, topics)
    assert totals == {"records": 18_000, "duplicates": 0}  # resumed at the committed offsets, nothing re-read


async def test_postgres_restarted_mid_stream_loses_and_doubles_nothing(
    stack: StackEndpoints, real_stack: Stack, ledger_dsn: str, topics: Topics
) -> None:
    traffic = simulate(12_000, 3_000, seed=22)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics, kafka_max_poll_records="500"))

    async def stream() -> None:
        # A steady stream (~3,000 events/s) that keeps flowing while PostgreSQL is down.
        for start in range(0, 12_000, 1_000):
            await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions[start : start + 1_000])
            await asyncio.sleep(0.3)
        await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)

    producing = asyncio.create_task(stream())
    try:
        assert (await wait_for_rows(ledger_dsn, 2_000, 0, timeout_s=60))[0] >= 2_000
        postgres = real_stack.component("postgres")
        record = real_stack.running(postgres)
        assert record is not None
        await asyncio.to_thread(stop_process, record, timeout_s=30, sig=postgres.stop_signal)
        await asyncio.sleep(1.0)
        restarted = await asyncio.to_thread(real_stack.up)
        assert "postgres" in restarted.started
        await producing
        assert await wait_for_rows(ledger_dsn, 12_000, 3_000, timeout_s=120) == (12_000, 3_000)
    finally:
        producing.cancel()
        await writer.stop()
    assert writer.writer.write_failures > 0  # the outage was felt and retried
    await assert_exactly_once(ledger_dsn, traffic)
    totals = await assert_offsets_at_end(stack, ledger_dsn, topics)
    assert totals["records"] == 15_000 + totals["duplicates"]
    # A commit whose acknowledgement died with the server is retried: at most one batch is seen twice.
    assert totals["duplicates"] <= 500


async def test_kafka_restarted_mid_stream_loses_and_doubles_nothing(
    stack: StackEndpoints, real_stack: Stack, ledger_dsn: str, topics: Topics
) -> None:
    traffic = simulate(15_000, 3_000, seed=23)
    await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics, kafka_max_poll_records="500"))
    try:
        assert (await wait_for_rows(ledger_dsn, 3_000, 0, timeout_s=60))[0] >= 3_000
        await asyncio.to_thread(kill_component, real_stack, "kafka")
        at_kill = await counts(ledger_dsn)
        restarted = await asyncio.to_thread(real_stack.up)
        assert "kafka" in restarted.started
        # Reads are published only after the restart: the writer must pick the stream up again.
        await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)
        assert await wait_for_rows(ledger_dsn, 15_000, 3_000, timeout_s=180) == (15_000, 3_000)
    finally:
        await writer.stop()
    assert at_kill[0] < 15_000, "the kill should land mid-stream"
    await assert_exactly_once(ledger_dsn, traffic)
    totals = await assert_offsets_at_end(stack, ledger_dsn, topics)
    assert totals == {"records": 18_000, "duplicates": 0}  # re-assignment resumed from the ledger's offsets


async def test_replaying_the_topics_from_offset_zero_adds_nothing(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics
) -> None:
    traffic = simulate(4_000, 1_500, seed=24)
    await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
    await produce(stack.kafka_bootstrap, topics.reads, traffic.reads)
    env = writer_env(stack, ledger_dsn, topics)
    first = await start_writer(env)
    try:
        assert await wait_for_rows(ledger_dsn, 4_000, 1_500) == (4_000, 1_500)
    finally:
        await first.stop()

    # An operator resets the group's offsets: the next writer replays both topics from offset 0.
    connection = await asyncpg.connect(ledger_dsn)
    try:
        await connection.execute("delete from ledger_consumer_offsets where consumer_group = $1", topics.group)
    finally:
        await connection.close()
    replay = await start_writer(env)
    try:
        for _ in range(240):
            if replay.writer.duplicates >= 5_500:
                break
            await asyncio.sleep(0.25)
    finally:
        await replay.stop()
    assert (replay.writer.predictions_inserted, replay.writer.reads_inserted) == (0, 0)
    assert replay.writer.duplicates == 5_500
    assert await counts(ledger_dsn) == (4_000, 1_500)
    await assert_exactly_once(ledger_dsn, traffic)
    assert await assert_offsets_at_end(stack, ledger_dsn, topics) == {"records": 5_500, "duplicates": 5_500}
