"""Records Kafka refuses for good go to the dead-letter folder; the rest flow on, in order."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import kafka.errors
import pytest

from radguard.events.v1 import events_pb2
from services.gateway.adapters.events import SinkTuning, SpooledKafkaSink
from services.gateway.app import _export_dead_letters
from services.gateway.deadletter import DEADLETTER_DIRNAME, read_dead_letters
from services.gateway.spool import Spool, SpooledRecord
from services.runtime.errors import InvalidArgument, Unavailable
from services.runtime.metrics import Metrics
from services.runtime.pseudonyms import STUDY_UID
from tests.unit.gateway.test_spooled_sink import PSEUDONYMS, prediction


def study_key(i: int) -> bytes:
    """The Kafka key of study ``i``'s events: its keyed pseudonym, never the raw UID."""
    return PSEUDONYMS.identifier(STUDY_UID, f"study-{i}").encode()


TUNING = SinkTuning(retry_initial_s=0.01, retry_max_s=0.02, probe_interval_s=0.05)


class PickyBroker:
    """Refuses records of the given studies for good; fails everything while ``down``."""

    def __init__(self, refuse: set[bytes]) -> None:
        self.refuse = refuse
        self.down = False
        self.log: list[SpooledRecord] = []

    async def send_many(self, records: list[SpooledRecord]) -> list[object]:
        await asyncio.sleep(0)
        out: list[object] = []
        for rec in records:
            if self.down:
                out.append(Unavailable("kafka", "broker down"))
            elif rec.key in self.refuse:
                out.append(kafka.errors.MessageSizeTooLargeError("too large"))
            else:
                self.log.append(rec)
                out.append(len(self.log))
        return out


def sink_for(tmp_path: Path, broker: PickyBroker, **extra: object) -> SpooledKafkaSink:
    return SpooledKafkaSink(
        Spool(tmp_path, fsync=False),
        broker.send_many,
        producer_name="gateway/test",
        age_edges=(40,),
        tuning=TUNING,
        pseudonymiser=PSEUDONYMS,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_a_refused_record_is_quarantined_and_the_rest_flow_in_order(tmp_path: Path) -> None:
    broker = PickyBroker(refuse={study_key(3), study_key(7)})
    sink = sink_for(tmp_path, broker)
    sink.start()
    sent = [prediction(i) for i in range(10)]
    for command, pred in sent:
        sink.record(command, pred)
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    published = [events_pb2.PredictionEvent.FromString(r.value).prediction_id for r in broker.log]
    assert published == [p.prediction_id for i, (_, p) in enumerate(sent) if i not in (3, 7)]
    assert sink.dead_letters == 2 and sink.published == 8 and sink.publish_failures == 0
    assert sink.spool.pending_bytes == 0

    letters = read_dead_letters(tmp_path)
    assert [d.id for d in letters] == [sent[3][1].prediction_id, sent[7][1].prediction_id]
    first = letters[0]
    assert first.topic == "radguard.predictions.v1" and first.key == study_key(3)
    assert first.reason == "MessageSizeTooLargeError"
    assert events_pb2.PredictionEvent.FromString(first.value).prediction_id == sent[3][1].prediction_id
    assert first.size == len(first.key or b"") + len(first.value) + sum(len(n) + len(v) for n, v in first.headers)
    assert (datetime.now(UTC) - first.quarantined_at).total_seconds() < 60

    # The file format other tools read: exactly these keys, base64 bytes, ISO-8601 UTC time.
    files = sorted((tmp_path / DEADLETTER_DIRNAME).glob("*.jsonl"))
    assert len(files) == 1
    line = json.loads(files[0].read_text().splitlines()[0])
    assert sorted(line) == ["headers", "id", "key", "quarantined_at", "reason", "size", "topic", "value"]
    assert base64.b64decode(line["key"]) == study_key(3) and base64.b64decode(line["value"]) == first.value
    assert line["quarantined_at"].endswith("+00:00") and isinstance(line["size"], int)
    assert all(isinstance(h, list) and len(h) == 2 for h in line["headers"])


@pytest.mark.asyncio
async def test_retriable_failures_are_retried_not_quarantined(tmp_path: Path) -> None:
    broker = PickyBroker(refuse=set())
    broker.down = True
    sink = sink_for(tmp_path, broker)
    sink.start()
    sent = [prediction(i) for i in range(5)]
    for command, pred in sent:
        sink.record(command, pred)
    for _ in range(200):
        if sink.publish_failures:
            break
        await asyncio.sleep(0.01)
    assert sink.publish_failures > 0 and not sink.kafka_ok and broker.log == []
    broker.down = False
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    assert len(broker.log) == 5 and sink.dead_letters == 0 and read_dead_letters(tmp_path) == []


@pytest.mark.asyncio
async def test_a_failure_of_the_whole_call_is_retried_not_quarantined(tmp_path: Path) -> None:
    calls = 0
    delivered: list[SpooledRecord] = []

    async def flaky(records: list[SpooledRecord]) -> list[object]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("no producer yet")
        delivered.extend(records)
        return [1] * len(records)

    sink = SpooledKafkaSink(
        Spool(tmp_path, fsync=False), flaky, producer_name="g", age_edges=(40,), tuning=TUNING, pseudonymiser=PSEUDONYMS
    )
    sink.start()
    sink.record(*prediction(1))
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    assert len(delivered) == 1 and sink.dead_letters == 0


@pytest.mark.asyncio
async def test_the_dead_letter_count_is_a_prometheus_counter(tmp_path: Path) -> None:
    broker = PickyBroker(refuse={study_key(1)})
    sink = sink_for(tmp_path, broker)
    metrics = Metrics(process_metrics=False)
    _export_dead_letters(metrics, sink)
    sink.start()
    sink.record(*prediction(1))
    sink.record(*prediction(2))
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    text = metrics.render().decode()
    assert "# TYPE radguard_gateway_dead_letters_total counter" in text
    assert "radguard_gateway_dead_letters_total 1.0" in text


def test_an_event_above_the_limit_is_refused_before_it_is_spooled(tmp_path: Path) -> None:
    sink = sink_for(tmp_path, PickyBroker(set()), max_event_bytes=64)
    with pytest.raises(InvalidArgument, match=r"^request: its prediction event would be \d+ bytes; the limit is 64"):
        sink.record(*prediction(1))
    assert sink.spool.pending_bytes == 0


@pytest.mark.asyncio
async def test_the_probe_shows_an_idle_outage_and_the_recovery(tmp_path: Path) -> None:
    answers = True

    async def probe() -> bool:
        return answers

    sink = sink_for(tmp_path, PickyBroker(set()), probe=probe)
    sink.start()
    await asyncio.sleep(0.1)
    assert sink.kafka_ok
    answers = False
    for _ in range(100):
        if not sink.kafka_ok:
            break
        await asyncio.sleep(0.01)
    assert not sink.kafka_ok and sink.probe_failures > 0  # with nothing published at all
    answers = True
    for _ in range(100):
        if sink.kafka_ok:
            break
        await asyncio.sleep(0.01)
    assert sink.kafka_ok
    await sink.stop()


def test_a_torn_last_line_is_skipped_and_other_damage_named(tmp_path: Path) -> None:
    folder = tmp_path / DEADLETTER_DIRNAME
    folder.mkdir()
    good: dict[str, object] = {
        "id": "e1",
        "topic": "t",
        "key": None,
        "value": base64.b64encode(b"v").decode(),
        "headers": [],
        "reason": "MessageSizeTooLargeError",
        "quarantined_at": "2026-12-03T13:00:00+00:00",
        "size": 1,
    }
    (folder / "2026-12-03.jsonl").write_text(json.dumps(good) + "\n" + '{"id": "e2", "to')
    letters = read_dead_letters(tmp_path)
    assert [(d.id, d.key, d.value) for d in letters] == [("e1", None, b"v")]
    (folder / "2026-12-04.jsonl").write_text("not json\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match=r"2026-12-04.jsonl:1"):
        read_dead_letters(tmp_path)
