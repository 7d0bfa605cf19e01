"""10,000 predictions and 6,000 reads in; exactly 10,000 and 6,000 rows out, joined as the simulator says.

Half of the reads are published before their predictions, so the orphan → joined path is exercised too.
The query layer and ``radguard ledger stats`` are checked against the same data.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli.main import app as cli
from services.monitors.ledger.adapters.postgres_queries import PostgresLedgerQueries
from services.monitors.ledger.domain import Arm, Outcome
from services.monitors.ledger.queries import WindowSpec
from tests.integration.conftest import StackEndpoints
from tests.integration.ledger.conftest import (
    Topics,
    counts,
    end_offsets,
    produce,
    start_writer,
    stored_offsets,
    wait_for_rows,
    writer_env,
)
from tests.integration.ledger.simulated import MODEL, age_band, simulate

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]

PREDICTIONS, READS = 10_000, 6_000


async def test_ten_thousand_predictions_and_six_thousand_reads_land_once_and_join(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics
) -> None:
    traffic = simulate(PREDICTIONS, READS, seed=11)
    early, late = traffic.reads[: READS // 2], traffic.reads[READS // 2 :]
    await produce(stack.kafka_bootstrap, topics.reads, early)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        # The early reads arrive with no prediction to join: orphans, kept and reported.
        assert await wait_for_rows(ledger_dsn, 0, len(early), timeout_s=60) == (0, len(early))
        pool = await asyncpg.create_pool(ledger_dsn, min_size=1, max_size=2)
        queries = PostgresLedgerQueries(pool)
        assert (await queries.counts()).orphan_reads == len(early)
        assert len(await queries.orphan_reads(limit=5)) == 5

        await produce(stack.kafka_bootstrap, topics.predictions, traffic.predictions)
        await produce(stack.kafka_bootstrap, topics.reads, late)
        assert await wait_for_rows(ledger_dsn, PREDICTIONS, READS, timeout_s=120) == (PREDICTIONS, READS)
    finally:
        await writer.stop()
    await asyncio.sleep(1)  # nothing more may arrive after the expected counts
    assert await counts(ledger_dsn) == (PREDICTIONS, READS)
    assert (writer.writer.duplicates, writer.writer.rejected) == (0, 0)

    try:
        ledger_counts = await queries.counts()
        assert (ledger_counts.predictions, ledger_counts.reads) == (PREDICTIONS, READS)
        assert (ledger_counts.labelled_predictions, ledger_counts.orphan_reads, ledger_counts.rejects) == (READS, 0, 0)

        # Every joined row agrees with the simulator: the study's attributes, the model's decision, the read.
        rows = await pool.fetch(
            "select prediction_id, decision, site_id, manufacturer, sex, age_band, model_version, arm, "
            "read_id, label, outcome, read_time, read_count from ledger_labelled_predictions"
        )
        assert len(rows) == PREDICTIONS
        confusion: Counter[tuple[int, int]] = Counter()
        for row in rows:
            truth = traffic.truth[str(row["prediction_id"])]
            study = truth.study
            assert (row["site_id"], row["manufacturer"], row["age_band"]) == (
                study.site_id,
                study.manufacturer,
                age_band(study.age),
            )
            assert row["sex"] == ("female" if study.sex == "F" else "male")
            assert (row["model_version"], row["arm"], row["decision"]) == (truth.version, truth.arm, truth.decision)
            if truth.read is None:
                assert (row["read_id"], row["label"], row["read_count"]) == (None, None, None)
                continue
            assert str(row["read_id"]) == truth.read_id
            assert (row["label"], row["outcome"], row["read_count"]) == (truth.read.label, truth.read.outcome.value, 1)
            assert row["read_time"] == truth.read.read_at
            confusion[(study.label, row["label"])] += 1
        # The readers' labels against the simulator's ground truth, exactly as the simulator produced them.
        expected = Counter((t.study.label, t.read.label) for t in traffic.read_truths() if t.read is not None)
        assert confusion == expected
        assert confusion[(1, 1)] > 0 and confusion[(0, 0)] > 0

        # The query layer: windows by version and arm, with their label maturity.
        canary = await queries.window(WindowSpec(MODEL, "4", Arm.CANARY, include_features=True))
        canary_truth = [t for t in traffic.truth.values() if t.arm == "canary"]
        assert canary.maturity.count == len(canary_truth)
        assert canary.maturity.labelled_count == sum(1 for t in canary_truth if t.read is not None)
        assert [row.event_time for row in canary.rows] == sorted(row.event_time for row in canary.rows)
        first = canary.rows[0]
        assert first.descriptors is not None and set(first.descriptors) == {"intensity.mean", "intensity.p95"}
        assert first.embedding is not None and len(first.embedding) == 2
        overrides = sum(1 for row in canary.labelled() if row.outcome is Outcome.OVERRIDE)
        assert overrides == sum(1 for t in canary_truth if t.read is not None and t.read.outcome.value == "override")

        stable_window = WindowSpec(MODEL, "3", Arm.STABLE, last=1000, site_id="site-A")
        latest = await queries.window(stable_window)
        expected_latest = sorted(
            (t for t in traffic.truth.values() if t.arm == "stable" and t.study.site_id == "site-A"),
            key=lambda t: t.study.acquired_at,
        )[-1000:]
        assert [row.prediction_id for row in latest.rows] == [t.prediction_id for t in expected_latest]
        assert (await queries.maturity(stable_window)) == latest.maturity
        assert latest.maturity.labelled_count == sum(1 for t in expected_latest if t.read is not None)

        times = sorted(t.study.acquired_at for t in traffic.truth.values())
        day = WindowSpec(MODEL, start=times[2000], end=times[4000])
        assert (await queries.maturity(day)).count == 2000
    finally:
        await pool.close()

    # Offsets stored with the rows are the topics' end offsets; the CLI reports zero lag.
    ends = await asyncio.to_thread(end_offsets, stack.kafka_bootstrap, [topics.predictions, topics.reads])
    stored = await stored_offsets(ledger_dsn, topics.group)
    assert {partition: offset for partition, (offset, _, _) in stored.items()} == ends
    assert sum(records for _, records, _ in stored.values()) == PREDICTIONS + READS
    assert sum(duplicates for _, _, duplicates in stored.values()) == 0

    arguments = [
        "ledger",
        "stats",
        "--dsn",
        ledger_dsn,
        "--bootstrap",
        stack.kafka_bootstrap,
        "--group",
        topics.group,
        "--predictions-topic",
        topics.predictions,
        "--reads-topic",
        topics.reads,
    ]
    table = await asyncio.to_thread(CliRunner().invoke, cli, arguments)
    assert table.exit_code == 0, table.output
    assert "total lag: 0" in table.output
    assert "predictions with a read" in table.output and "6000" in table.output
    result = await asyncio.to_thread(CliRunner().invoke, cli, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # library warnings (kafka-python's) go to stderr
    assert document["counts"] == {
        "predictions": PREDICTIONS,
        "reads": READS,
        "labelled_predictions": READS,
        "orphan_reads": 0,
        "rejects": 0,
    }
    assert document["total_lag"] == 0
    assert len(document["lags"]) == 6
    assert {(lag["topic"], lag["partition"], lag["lag"]) for lag in document["lags"]} == {
        (topic, partition, 0) for topic in (topics.predictions, topics.reads) for partition in range(3)
    }
