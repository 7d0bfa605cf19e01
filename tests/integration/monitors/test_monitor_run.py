"""A simulated day with a planted shift, through the real ledger, to findings in PostgreSQL and on Kafka.

The reference profile is the baseline hospital's first 2,000 studies; the day's traffic comes from the
``new_scanner`` scenario after its change (site B's new, brighter scanner from study 2,000). Predictions and
reads go through Kafka into the ledger by the real writer; one ``radguard monitor run --once`` pass must then
judge the newest complete block of 1,000 predictions, store a drift breach (the CUSUM alarms on the block's
evidence), publish the same finding on the findings topic through the outbox and write its Evidently report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from typer.testing import CliRunner

from radguard.events.v1 import events_pb2
from services.cli.main import app as cli
from services.monitors.runner.app import build_monitor_runner
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import load_settings
from services.runtime.kafka import ensure_topics
from sim import Hospital, intensity_descriptors, load_scenario
from stack.topics import TopicSpec
from tests.integration.conftest import StackEndpoints
from tests.integration.ledger.conftest import Topics, produce, start_writer, wait_for_rows, writer_env
from tests.integration.ledger.simulated import MODEL, Truth, prediction_event, read_event

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]

SEED = 5
VERSION = "3"
REFERENCE_STUDIES = 2000
SHIFT_START = 2000  # new_scanner changes site B's scanner from this study on
DAY_STUDIES = 1200
READ_EVERY = 3


def _hospital(scenario: str) -> Hospital:
    return Hospital(dataclasses.replace(load_scenario(scenario), image_size=32), seed=SEED)


def _logits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A model with AUROC about 0.9 whose score does not depend on the image: only the inputs drift.
    return 2.2 * (2 * labels - 1) + rng.normal(0.0, 1.5, size=labels.shape[0])


def write_reference_profile(model_repo: Path) -> Path:
    """The version's reference profile from the baseline hospital, as the model repository carries it."""
    batch = _hospital("baseline").studies(REFERENCE_STUDIES)
    descriptors = intensity_descriptors(batch.images)
    labels = np.array([study.label for study in batch.studies], dtype=np.float64)
    logits = _logits(labels, np.random.default_rng(SEED))
    path = model_repo / MODEL / VERSION / "reference_profile.npz"
    path.parent.mkdir(parents=True)
    np.savez(
        path,
        logits=logits,
        probabilities=1.0 / (1.0 + np.exp(-logits)),
        labels=labels,
        threshold=np.array([0.5]),
        image_stats=np.column_stack([descriptors.mean, descriptors.p95]),
        image_stat_names=np.array(["mean", "p95"]),
        embeddings=np.column_stack([descriptors.mean, descriptors.std]),
        site=np.array([study.site_id for study in batch.studies]),
        manufacturer=np.array([study.manufacturer for study in batch.studies]),
        model=np.array([study.model for study in batch.studies]),
        sex=np.array([study.sex for study in batch.studies]),
        age=np.array([study.age for study in batch.studies], dtype=np.float64),
    )
    return path


def day_traffic() -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(predictions, reads) of the shifted day, every prediction on the stable arm of the version."""
    hospital = _hospital("new_scanner")
    batch = hospital.studies(DAY_STUDIES, SHIFT_START)
    descriptors = intensity_descriptors(batch.images)
    labels = np.array([study.label for study in batch.studies], dtype=np.float64)
    logits = _logits(labels, np.random.default_rng(SEED + 1))
    predictions, reads = [], []
    for position, study in enumerate(batch.studies):
        probability = float(min(max(1.0 / (1.0 + math.exp(-logits[position])), 1e-6), 1 - 1e-6))
        decision = int(probability >= 0.5)
        truth = Truth(str(uuid.uuid4()), study, VERSION, "stable", probability, decision)
        event = prediction_event(
            truth, float(descriptors.mean[position]), float(descriptors.std[position]), float(descriptors.p95[position])
        )
        predictions.append((study.study_uid.encode(), event.SerializeToString()))
        if position % READ_EVERY == 0:
            read = hospital.read(study, decision)
            truth = dataclasses.replace(truth, read=read, read_id=str(uuid.uuid4()))
            reads.append((truth.prediction_id.encode(), read_event(truth).SerializeToString()))
    return predictions, reads


def _start_tags(text: str) -> Counter[str]:
    """Start tags of an HTML document, counted by a real parser (it raises on nothing, so count what it saw)."""
    seen: Counter[str] = Counter()

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            seen[tag] += 1

    parser = Tags()
    parser.feed(text)
    parser.close()
    return seen


def _read_report(html: Path) -> tuple[str, bool]:
    return html.read_text(encoding="utf-8", errors="replace"), html.with_suffix(".json").is_file()


@pytest.fixture
def findings_topic(stack: StackEndpoints) -> Iterator[str]:
    """A fresh findings topic for the test."""
    name = f"monitortest.{uuid.uuid4().hex[:10]}.findings"
    ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, 1)])
    yield name
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="monitor-tests")
    try:
        admin.delete_topics([name], timeout_ms=10_000)
    finally:
        admin.close()


def consume_findings(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[tuple[bytes, bytes]]:
    """Up to ``expected`` (key, value) records of ``topic`` from the beginning."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    records: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((record.key, record.value) for record in batch)
    finally:
        consumer.close()
    return records


async def test_a_planted_scanner_shift_becomes_a_drift_breach_in_postgres_on_kafka_and_in_a_report(
    stack: StackEndpoints, ledger_dsn: str, topics: Topics, findings_topic: str, tmp_path: Path
) -> None:
    write_reference_profile(tmp_path / "model_repo")
    predictions, reads = await asyncio.to_thread(day_traffic)
    writer = await start_writer(writer_env(stack, ledger_dsn, topics))
    try:
        await produce(stack.kafka_bootstrap, topics.predictions, predictions)
        await produce(stack.kafka_bootstrap, topics.reads, reads)
        got = await wait_for_rows(ledger_dsn, len(predictions), len(reads), timeout_s=90)
        w = writer.writer
        assert got == (len(predictions), len(reads)), (w.assignment, w.healthy, w.batches, w.write_failures)
    finally:
        await writer.stop()

    env = {
        "RADGUARD_POSTGRES_DSN": ledger_dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_FINDINGS_TOPIC": findings_topic,
        "RADGUARD_MONITOR_MODEL": MODEL,
        "RADGUARD_MONITOR_VERSIONS": json.dumps([VERSION]),
        "RADGUARD_MONITOR_ARMS": json.dumps(["stable"]),
        "RADGUARD_MONITOR_KINDS": json.dumps(["drift", "performance"]),
        "RADGUARD_MONITOR_MODEL_REPO": str(tmp_path / "model_repo"),
        "RADGUARD_MONITOR_REPORTS_DIR": str(tmp_path / "reports"),
        "RADGUARD_MONITOR_BLOCK_SIZE": "1000",
        "RADGUARD_MONITOR_FOLLOW_ROUTES": "false",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
    }
    runner = await build_monitor_runner(load_settings(MonitorRunnerSettings, env))
    try:
        issued = await runner.run_once()
    finally:
        await runner.close()

    # A restarted runner finds its block cursor in PostgreSQL: no new complete block, nothing issued.
    restarted = await build_monitor_runner(load_settings(MonitorRunnerSettings, env))
    try:
        again = await restarted.run_once()
    finally:
        await restarted.close()
    assert again == []

    assert [item.finding.kind.value for item in issued] == ["drift", "performance"]
    drift = issued[0]
    assert drift.finding.severity.value == "breach"
    assert drift.finding.maturity.total == 1000

    # PostgreSQL: the same finding, by id.
    connection = await asyncpg.connect(ledger_dsn)
    try:
        row = await connection.fetchrow(
            "select * from monitor_findings where finding_id = $1", uuid.UUID(drift.finding_id)
        )
        total = await connection.fetchval("select count(*) from monitor_findings")
        charts = await connection.fetch(
            "select * from monitor_sequential_state where model_name = $1 and model_version = $2 and arm = 'stable'"
            " order by kind",
            MODEL,
            VERSION,
        )
        pending = await connection.fetchval("select count(*) from monitor_findings_outbox where published_at is null")
    finally:
        await connection.close()
    assert total == 2
    assert pending == 0  # the relay published both before the runner closed
    drift_chart = charts[0]
    assert (drift_chart["kind"], drift_chart["steps"], drift_chart["alarms"], drift_chart["statistic"]) == (
        "drift",
        1,
        1,
        0.0,
    )
    assert len(charts) == 2 and len({c["last_prediction_id"] for c in charts}) == 1  # one cursor per target
    assert row is not None
    assert (row["kind"], row["model_name"], row["model_version"], row["arm"], row["severity"]) == (
        "drift",
        MODEL,
        VERSION,
        "stable",
        "breach",
    )
    assert (row["window_count"], row["report_uri"]) == (1000, drift.finding.report_uri)
    stored_statistics = json.loads(row["statistics"])
    breached_features = {s["feature"] for s in stored_statistics if s["severity"] == "breach"}
    assert "intensity.mean" in breached_features
    assert isinstance(row["window_end"], datetime)

    # Kafka: the finding event, keyed by model name, with the same values.
    records = await asyncio.to_thread(consume_findings, stack.kafka_bootstrap, findings_topic, 2)
    assert len(records) == 2
    events = {}
    for key, value in records:
        assert key == MODEL.encode()
        event = events_pb2.Finding.FromString(value)
        events[event.finding_id] = event
    event = events[drift.finding_id]
    assert event.kind == events_pb2.MONITOR_KIND_DRIFT
    assert event.severity == events_pb2.SEVERITY_BREACH
    assert (event.model.model_name, event.model.model_version) == (MODEL, VERSION)
    assert event.window.count == 1000
    assert event.meta.event_id == drift.finding_id
    assert event.report_uri == drift.finding.report_uri
    assert event.spec_ref == f"{MODEL}-drift@1"
    assert any(s.breached and s.feature == "intensity.mean" for s in event.statistics)
    assert len(event.statistics) == len(stored_statistics)

    # The Evidently report of the window: HTML beside its JSON.
    html = Path(drift.finding.report_uri)
    assert html.parent == (tmp_path / "reports").resolve()
    text, json_exists = await asyncio.to_thread(_read_report, html)
    tags = _start_tags(text)
    assert {"html", "head", "body"} <= tags.keys() and tags["script"] >= 1, dict(tags)
    assert json_exists

    # ``radguard findings`` lists it from PostgreSQL.
    arguments = ["findings", "--dsn", ledger_dsn, "--model", MODEL, "--severity", "breach", "--limit", "5"]
    result = await asyncio.to_thread(CliRunner(env={"COLUMNS": "400"}).invoke, cli, arguments)
    assert result.exit_code == 0, result.output
    listed = [line for line in result.output.splitlines() if MODEL in line]
    breaches = sum(1 for item in issued if item.finding.severity.value == "breach")
    assert len(listed) == breaches
    assert any("drift" in line and "breach" in line and drift.finding.report_uri in line for line in listed)
