"""bench/pipeline: events/s from the producer to committed ledger rows, and the end-to-end lag.

Every run uses fresh topics (3 partitions each) and fresh databases on the local stack, and measures:

- raw: kafka-python consume-only — a group-less KafkaConsumer reading a backlog of N events, no decoding,
  no database (the baseline: what the broker and client can hand out on this machine);
- drain: the ledger writer (``python -m services.monitors.ledger``, its own process as deployed) writing
  the same backlog into PostgreSQL — rate from its first to its last committed row;
- sustained: a warm writer while the producer publishes N events as fast as it can — events/s from the
  first send to the last committed row (the producer's own rate is printed beside it);
- lag: the producer paced at ``--paced-rate`` events/s for ``--paced-seconds``; per row, the time from
  the event's event_time (stamped just before the send) to the row's recorded_at — p50 and p99.

Events are 70% PredictionEvents (6 descriptors, a 16-float embedding) and 30% ReadEvents. The writer's
CPU time during the drain is read from /proc, to say where the time goes. Medians over ``--runs``.

Run: ``.venv/bin/python -m bench.pipeline [--events 40000] [--runs 3] [--paced-rate 1000] [--paced-seconds 10]``
(brings the local stack up if it is not running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.runtime.ids import uuid7
from services.runtime.kafka import ensure_topics
from services.runtime.migrate import FOUNDATION_MIGRATIONS, run_migrations
from stack.manager import Stack
from stack.settings import load_stack_settings
from stack.topics import TopicSpec

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = [FOUNDATION_MIGRATIONS, REPO / "services" / "monitors" / "migrations"]
PARTITIONS = 3
READ_SHARE = 0.3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- events --------------------------------------------------------------------------------------


def _now_stamp() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def prediction_event(rng: random.Random, version: str) -> tuple[bytes, bytes, str]:
    prediction_id = uuid7()
    study = f"2.25.{rng.getrandbits(96)}"
    probability = rng.random()
    event = events_pb2.PredictionEvent(
        meta=common_pb2.EventMeta(
            schema_version=1, event_id=prediction_id, event_time=_now_stamp(), producer="bench/pipeline"
        ),
        prediction_id=prediction_id,
        model=common_pb2.ModelRef(model_name="chest_nodule", model_version=version),
        arm=common_pb2.ARM_STABLE,
        study=common_pb2.StudyRef(study_instance_uid=study, series_instance_uid=study + ".1", accession_number="A1"),
        patient_pseudonym=f"{rng.getrandbits(128):032x}",
        patient_context=common_pb2.PatientContext(
            sex=rng.choice([common_pb2.SEX_FEMALE, common_pb2.SEX_MALE]), age_years=rng.randint(18, 95)
        ),
        age_band=rng.choice(["18-39", "40-59", "60-69", "70+"]),
        acquisition=common_pb2.AcquisitionContext(
            site_id=rng.choice(["site-A", "site-B", "site-C"]),
            modality="DX",
            body_part="CHEST",
            manufacturer="SimRay Medical",
            manufacturer_model="SR-400 DR",
            protocol_name="CHEST PA",
            pixel_spacing_mm=common_pb2.PixelSpacing(row_mm=0.5, col_mm=0.5),
        ),
        raw_score=probability * 4 - 2,
        probability=probability,
        decision=common_pb2.DECISION_POSITIVE if probability >= 0.5 else common_pb2.DECISION_NEGATIVE,
        threshold=0.5,
        descriptors={f"intensity.{name}": rng.random() for name in ("mean", "std", "p5", "p50", "p95", "skewness")},
        embedding=[rng.random() for _ in range(16)],
        latency_ms=rng.random() * 20,
        route_revision=1,
        request_id=f"bench-{rng.getrandbits(32)}",
    )
    return study.encode(), event.SerializeToString(), prediction_id


def read_event(rng: random.Random, prediction_id: str) -> tuple[bytes, bytes]:
    read_id = uuid7()
    now = _now_stamp()
    event = events_pb2.ReadEvent(
        meta=common_pb2.EventMeta(schema_version=1, event_id=read_id, event_time=now, producer="bench/pipeline"),
        read_id=read_id,
        prediction_id=prediction_id,
        reader_pseudonym="rdr-bench",
        outcome=common_pb2.OUTCOME_AGREE,
        ground_truth=rng.choice([common_pb2.LABEL_NEGATIVE, common_pb2.LABEL_POSITIVE]),
        read_time=now,
        idempotency_key=f"bench-{read_id}",
    )
    return prediction_id.encode(), event.SerializeToString()


@dataclass(frozen=True)
class Topics:
    predictions: str
    reads: str


def events(rng: random.Random, topics: Topics, count: int, version: str) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) for ``count`` events: a read follows 30% of the predictions."""
    made = 0
    while made < count:
        key, value, prediction_id = prediction_event(rng, version)
        yield topics.predictions, key, value
        made += 1
        if made < count and rng.random() < READ_SHARE / (1 - READ_SHARE):
            read_key, read_value = read_event(rng, prediction_id)
            yield topics.reads, read_key, read_value
            made += 1


# --- infrastructure --------------------------------------------------------------------------------


def producer(bootstrap: str) -> KafkaProducer:
    # The same delivery settings as radguard's producers: idempotent, acks=all.
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, batch_size=64 * 1024
    )


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(admin_dsn: str) -> str:
    name = f"bench_pipeline_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'create database "{name}"')
    finally:
        await connection.close()
    dsn = with_database(admin_dsn, name)
    await run_migrations(dsn, MIGRATIONS)
    return dsn


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await connection.close()


def make_topics(bootstrap: str) -> Topics:
    tag = uuid.uuid4().hex[:10]
    topics = Topics(f"bench.{tag}.predictions", f"bench.{tag}.reads")
    ensure_topics(bootstrap, [TopicSpec(topics.predictions, PARTITIONS), TopicSpec(topics.reads, PARTITIONS)])
    return topics


def delete_topics(bootstrap: str, topics: list[Topics]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-pipeline")
    try:
        admin.delete_topics([name for t in topics for name in (t.predictions, t.reads)], timeout_ms=10_000)
    finally:
        admin.close()


@contextmanager
def writer_process(bootstrap: str, dsn: str, topics: Topics, group: str) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(
        os.environ,
        RADGUARD_POSTGRES_DSN=dsn,
        RADGUARD_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        RADGUARD_PREDICTIONS_TOPIC=topics.predictions,
        RADGUARD_READS_TOPIC=topics.reads,
        RADGUARD_LEDGER_GROUP=group,
        RADGUARD_GRPC_HOST="127.0.0.1",
        RADGUARD_GRPC_PORT="0",
        RADGUARD_METRICS_ENABLED="false",
        RADGUARD_LOG_LEVEL="warning",
        # Tracing every query costs CPU the bench would then attribute to the writer; sample nothing.
        RADGUARD_TRACE_SAMPLE_RATIO="0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.monitors.ledger"], env=env, cwd=REPO, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(20)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def committed_records(pool: asyncpg.Pool, group: str) -> int:
    value = await pool.fetchval(
        "select coalesce(sum(records), 0) from ledger_consumer_offsets where consumer_group = $1", group
    )
    return int(value)


async def wait_committed(pool: asyncpg.Pool, group: str, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while await committed_records(pool, group) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the writer did not commit {count} records within {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


async def commit_span(pool: asyncpg.Pool) -> tuple[datetime, datetime, int]:
    row = await pool.fetchrow(
        "select min(t), max(t), count(*) from (select recorded_at t from ledger_predictions "
        "union all select recorded_at from ledger_reads) r"
    )
    assert row is not None
    return row[0], row[1], row[2]


# --- measurements ----------------------------------------------------------------------------------


def produce_all(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> tuple[float, float]:
    """Send everything and wait for the acknowledgements; returns (start, end) wall-clock seconds."""
    client = producer(bootstrap)
    try:
        start = time.time()
        for topic, key, value in records:
            client.send(topic, value=value, key=key)
        client.flush()
        return start, time.time()
    finally:
        client.close()


def raw_consume(bootstrap: str, topics: Topics, count: int) -> float:
    """Events/s of a bare group-less consumer over the backlog, first record to last."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in (topics.predictions, topics.reads) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen, first = 0, None
        while seen < count:
            batches = consumer.poll(timeout_ms=1000, max_records=2000)
            if batches and first is None:
                first = time.perf_counter()
            seen += sum(len(records) for records in batches.values())
        assert first is not None
        return count / (time.perf_counter() - first)
    finally:
        consumer.close()


@dataclass
class RunResult:
    produce_rate: float
    raw_rate: float
    drain_rate: float
    drain_cpu_ms_per_1k: float
    sustained_rate: float
    sustained_produce_rate: float
    lag_p50_ms: float
    lag_p99_ms: float
    paced_rate: float


async def one_run(bootstrap: str, admin_dsn: str, args: argparse.Namespace, seed: int) -> RunResult:
    rng = random.Random(seed)
    backlog_topics, live_topics = make_topics(bootstrap), make_topics(bootstrap)
    drain_dsn, live_dsn = await create_database(admin_dsn), await create_database(admin_dsn)
    try:
        # 1. A backlog; the raw consumer and the writer each read all of it.
        backlog = list(events(rng, backlog_topics, args.events, "backlog"))
        start, end = await asyncio.to_thread(produce_all, bootstrap, backlog)
        produce_rate = len(backlog) / (end - start)
        raw_rate = await asyncio.to_thread(raw_consume, bootstrap, backlog_topics, len(backlog))

        pool = await asyncpg.create_pool(drain_dsn, min_size=1, max_size=2)
        try:
            with writer_process(bootstrap, drain_dsn, backlog_topics, "bench-drain") as writer:
                # CPU is sampled from the first commit on, so the interpreter's start-up is not counted.
                await wait_committed(pool, "bench-drain", 1, timeout_s=60)
                cpu_before = cpu_seconds(writer.pid)
                counted = len(backlog) - await committed_records(pool, "bench-drain")
                await wait_committed(pool, "bench-drain", len(backlog))
                cpu_used = cpu_seconds(writer.pid) - cpu_before
            first, last, rows = await commit_span(pool)
            drain_rate = rows / max((last - first).total_seconds(), 1e-3)
        finally:
            await pool.close()

        # 2. A warm writer while the producer goes flat out; then the paced stream for the lag.
        pool = await asyncpg.create_pool(live_dsn, min_size=1, max_size=2)
        try:
            with writer_process(bootstrap, live_dsn, live_topics, "bench-live"):
                warm = list(events(rng, live_topics, 10, "warmup"))
                await asyncio.to_thread(produce_all, bootstrap, warm)
                await wait_committed(pool, "bench-live", len(warm), timeout_s=60)

                burst = list(events(rng, live_topics, args.events, "sustained"))
                start, end = await asyncio.to_thread(produce_all, bootstrap, burst)
                await wait_committed(pool, "bench-live", len(warm) + len(burst))
                last_commit = await pool.fetchval(
                    "select max(recorded_at) from ledger_predictions where model_version = 'sustained'"
                )
                last_read = await pool.fetchval("select max(recorded_at) from ledger_reads")
                finished = max(last_commit, last_read).timestamp()
                sustained_rate = len(burst) / (finished - start)
                sustained_produce_rate = len(burst) / (end - start)

                sent = await asyncio.to_thread(paced, bootstrap, live_topics, rng, args.paced_rate, args.paced_seconds)
                await wait_committed(pool, "bench-live", len(warm) + len(burst) + sent)
                lags = await pool.fetchrow(
                    "select percentile_cont(0.5) within group (order by lag) as p50, "
                    "percentile_cont(0.99) within group (order by lag) as p99 from ("
                    "  select extract(epoch from recorded_at - event_time) * 1000 as lag from ledger_predictions"
                    "  where model_version = 'paced') l"
                )
        finally:
            await pool.close()
        return RunResult(
            produce_rate=produce_rate,
            raw_rate=raw_rate,
            drain_rate=drain_rate,
            drain_cpu_ms_per_1k=cpu_used * 1000 / max(counted, 1) * 1000,
            sustained_rate=sustained_rate,
            sustained_produce_rate=sustained_produce_rate,
            lag_p50_ms=float(lags["p50"]),
            lag_p99_ms=float(lags["p99"]),
            paced_rate=sent / args.paced_seconds,
        )
    finally:
        if not args.keep:
            await drop_database(admin_dsn, drain_dsn)
            await drop_database(admin_dsn, live_dsn)
            await asyncio.to_thread(delete_topics, bootstrap, [backlog_topics, live_topics])


def paced(bootstrap: str, topics: Topics, rng: random.Random, rate: float, seconds: float) -> int:
    """Send ``rate`` events/s for ``seconds``, stamping each event just before its send; returns the count."""
    client = producer(bootstrap)
    tick = 0.01
    sent, owed = 0, 0.0
    try:
        stream = events(rng, topics, int(rate * seconds) + 100, "paced")
        started = time.perf_counter()
        next_tick = started
        while time.perf_counter() - started < seconds:
            owed += rate * tick
            while owed >= 1:
                item = next(stream, None)
                if item is None:
                    break
                topic, key, value = item
                client.send(topic, value=value, key=key)
                sent += 1
                owed -= 1
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        client.flush()
        return sent
    finally:
        client.close()


def report(args: argparse.Namespace, runs: list[RunResult]) -> None:
    def med(name: str) -> float:
        return float(statistics.median(getattr(run, name) for run in runs))

    print(f"\nbench/pipeline — {args.events} events per phase (70% predictions, 30% reads), {len(runs)} runs, medians")
    print(f"  producer (kafka-python, acks=all)         {med('produce_rate'):>9,.0f} events/s")
    print(f"  raw consume-only (kafka-python, baseline) {med('raw_rate'):>9,.0f} events/s")
    print(f"  ledger drain of the same backlog          {med('drain_rate'):>9,.0f} events/s   ", end="")
    print(f"{med('drain_rate') / med('raw_rate'):6.1%} of raw consume")
    print(f"  ledger writer CPU during the drain        {med('drain_cpu_ms_per_1k'):>9,.0f} ms per 1,000 events")
    print(f"  sustained, producer → committed rows      {med('sustained_rate'):>9,.0f} events/s   ", end="")
    print(f"(producer alone: {med('sustained_produce_rate'):,.0f} events/s)")
    print(f"  end-to-end lag at {med('paced_rate'):,.0f} events/s (event time → row committed)")
    print(f"      p50 {med('lag_p50_ms'):7.1f} ms    p99 {med('lag_p99_ms'):7.1f} ms")
    print("  targets: ≥ 5,000 events/s sustained; p99 lag ≤ 1,000 ms at 1,000 events/s")
    for index, run in enumerate(runs, 1):
        print(
            f"  run {index}: raw {run.raw_rate:,.0f}/s  drain {run.drain_rate:,.0f}/s  "
            f"sustained {run.sustained_rate:,.0f}/s  lag p50 {run.lag_p50_ms:.1f} ms p99 {run.lag_p99_ms:.1f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000, help="events in the backlog and in the burst")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="events/s of the lag phase")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench databases and topics")
    args = parser.parse_args()

    settings = load_stack_settings()
    print("bringing the stack up…", flush=True)
    await asyncio.to_thread(Stack(settings).up)
    runs = []
    for index in range(args.runs):
        print(f"run {index + 1}/{args.runs}…", flush=True)
        runs.append(await one_run(settings.kafka_bootstrap, settings.postgres_dsn, args, seed=index))
    report(args, runs)


if __name__ == "__main__":
    asyncio.run(main())
