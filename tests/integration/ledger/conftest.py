"""Fixtures for the ledger's integration tests: a fresh database and fresh topics per test, writers.

Every test gets its own database (migrated with the foundation, ledger and feedback migrations) and its
own topic pair and consumer group, so tests neither see other engineers' traffic on the shared stack nor
each other's rows, and can assert exact counts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from kafka.admin import KafkaAdminClient

from services.monitors.ledger.app import LedgerProcess, build_ledger_writer
from services.monitors.ledger.settings import LedgerSettings
from services.runtime.config import load_settings
from services.runtime.kafka import AsyncKafkaProducer, OutgoingRecord, TopicPartition, ensure_topics
from services.runtime.migrate import FOUNDATION_MIGRATIONS
from stack.settings import REPO_ROOT
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints, scratch_database, service_dsn

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "services" / "monitors" / "migrations",
    REPO_ROOT / "services" / "feedback" / "migrations",
]
PARTITIONS = 3


@dataclass(frozen=True)
class Topics:
    """A test's own topic pair and consumer group."""

    predictions: str
    reads: str
    group: str


@pytest_asyncio.fixture(loop_scope="session")
async def ledger_dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    """A new database with the ledger and feedback schema, dropped after the test."""
    async with scratch_database(stack.postgres_dsn, "ledger_test", MIGRATION_DIRS) as dsn:
        yield dsn


def _delete_topics(bootstrap: str, names: list[str]) -> None:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ledger-tests", bootstrap_timeout_ms=5000)
    except Exception:
        return  # best effort: the topics are uniquely named and small
    try:
        admin.delete_topics(names, timeout_ms=10_000)
    except Exception:
        pass
    finally:
        admin.close()


@pytest.fixture
def topics(stack: StackEndpoints) -> Iterator[Topics]:
    """A fresh predictions/reads topic pair (3 partitions each) and group id; topics deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    made = Topics(f"ledgertest.{tag}.predictions", f"ledgertest.{tag}.reads", f"ledgertest-{tag}")
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(made.predictions, PARTITIONS), TopicSpec(made.reads, PARTITIONS)])
    yield made
    _delete_topics(stack.kafka_bootstrap, [made.predictions, made.reads])


def writer_env(stack: StackEndpoints, dsn: str, topics: Topics, **extra: str) -> dict[str, str]:
    """RADGUARD_* variables for a ledger writer on the test's database (as the ledger's role), topics and group."""
    env = {
        "RADGUARD_POSTGRES_DSN": service_dsn(dsn, "ledger"),
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_PREDICTIONS_TOPIC": topics.predictions,
        "RADGUARD_READS_TOPIC": topics.reads,
        "RADGUARD_LEDGER_GROUP": topics.group,
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
        # The broker's minimum: a replacement writer takes over a killed one's partitions within seconds.
        "RADGUARD_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "RADGUARD_LEDGER_RETRY_MAX_S": "1",
    }
    env.update({f"RADGUARD_{name.upper()}": value for name, value in extra.items()})
    return env


async def start_writer(env: dict[str, str]) -> LedgerProcess:
    """An in-process ledger writer (its consumer and pool), started."""
    process = await build_ledger_writer(load_settings(LedgerSettings, env))
    process.start()
    return process


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], chunk: int = 2000) -> None:
    """Publish (key, value) records in order and check every one was acknowledged."""
    async with AsyncKafkaProducer(bootstrap, linger_ms=5) as producer:
        for start in range(0, len(records), chunk):
            batch = [OutgoingRecord(topic, value, key) for key, value in records[start : start + chunk]]
            outcomes = await producer.send_many(batch)
            failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
            assert not failed, f"{len(failed)} records not acknowledged: {failed[0]}"


async def counts(dsn: str) -> tuple[int, int]:
    """(prediction rows, read rows) of the ledger at ``dsn``."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "select (select count(*) from ledger_predictions) as p, (select count(*) from ledger_reads) as r"
        )
        assert row is not None
        return row["p"], row["r"]
    finally:
        await connection.close()


async def wait_for_rows(dsn: str, predictions: int, reads: int, timeout_s: float = 90.0) -> tuple[int, int]:
    """Poll the ledger until it holds at least the given rows (or the timeout passes); returns the counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = await counts(dsn)
        except (OSError, asyncpg.PostgresError):
            got = (-1, -1)  # PostgreSQL restarting
        if (got[0] >= predictions and got[1] >= reads) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.25)


async def stored_offsets(dsn: str, group: str) -> dict[TopicPartition, tuple[int, int, int]]:
    """Per partition: (next offset, records, duplicates) stored for ``group``."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "select topic, partition, next_offset, records, duplicates from ledger_consumer_offsets "
            "where consumer_group = $1",
            group,
        )
    finally:
        await connection.close()
    return {TopicPartition(r["topic"], r["partition"]): (r["next_offset"], r["records"], r["duplicates"]) for r in rows}


def end_offsets(bootstrap: str, topic_names: list[str]) -> dict[TopicPartition, int]:
    """Current end offset of every partition of the topics (blocking)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [
            TopicPartition(topic, number)
            for topic in topic_names
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


class WriterSubprocess:
    """``python -m services.monitors.ledger`` as a child process, for killing it for real."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self._log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.monitors.ledger"],
            env=self._env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        """SIGTERM (graceful drain) and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
