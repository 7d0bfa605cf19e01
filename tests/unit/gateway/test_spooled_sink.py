"""The spooled Kafka sink with a fake broker that goes away and comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from kernel.topics import PREDICTIONS_TOPIC
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.gateway.adapters.events import SinkTuning, SpooledKafkaSink
from services.gateway.domain import Acquisition, ModelOutputs, PredictCommand, Prediction, Sex, Study
from services.gateway.routing import Arm
from services.gateway.spool import Spool, SpooledRecord
from services.runtime.errors import ResourceExhausted, Unavailable
from services.runtime.ids import uuid7
from services.runtime.pseudonyms import REQUEST_ID, STUDY_UID, Pseudonymiser

REPO = Path(__file__).resolve().parents[3]
PSEUDONYMS = Pseudonymiser(b"unit-test-key-0123456789")


class FlakyBroker:
    """Acknowledges sends while up; fails them while down."""

    def __init__(self) -> None:
        self.up = True
        self.log: list[tuple[str, bytes, bytes | None]] = []

    async def send_many(self, records: list[SpooledRecord]) -> list[object]:
        await asyncio.sleep(0)
        out: list[object] = []
        for rec in records:
            if not self.up:
                out.append(Unavailable("kafka", "broker down"))
            else:
                self.log.append((rec.topic, rec.value, rec.key))
                out.append(len(self.log))
        return out


def prediction(i: int) -> tuple[PredictCommand, Prediction]:
    cmd = PredictCommand(
        "m",
        f"r{i}",
        Study(f"study-{i}"),
        "pseudo",
        Sex.MALE,
        64,
        Acquisition(site_id="A", manufacturer="Acme"),
        np.zeros((1, 2, 2), np.float32),
    )
    pred = Prediction(
        uuid7(),
        "m",
        "1",
        Arm.STABLE,
        0.1 * i,
        0.5,
        False,
        0.6,
        1.0,
        3,
        ModelOutputs(0.1 * i, (0.5, 0.25), {"intensity.mean": 0.3}),
    )
    return cmd, pred


@pytest.mark.asyncio
async def test_outage_loses_nothing_duplicates_nothing_and_keeps_order(tmp_path: Path) -> None:
    broker = FlakyBroker()
    sink = SpooledKafkaSink(
        Spool(tmp_path, fsync=False),
        broker.send_many,
        producer_name="gateway/test",
        age_edges=(18, 40, 60, 70),
        pseudonymiser=PSEUDONYMS,
        tuning=SinkTuning(retry_initial_s=0.01, retry_max_s=0.05),
    )
    sink.start()
    expected = []
    for i in range(300):
        if i == 100:
            broker.up = False
        if i == 250:
            broker.up = True
        cmd, pred = prediction(i)
        sink.record(cmd, pred)
        expected.append(pred.prediction_id)
        if i % 50 == 0:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    ids = [events_pb2.PredictionEvent.FromString(v).prediction_id for _, v, _ in broker.log]
    assert ids == expected  # all, once each, in order
    first = events_pb2.PredictionEvent.FromString(broker.log[0][1])
    # Keyed by the study's pseudonym, which is also all the event says about the study and the request.
    study_pseudonym = PSEUDONYMS.identifier(STUDY_UID, "study-0")
    assert broker.log[0][0] == PREDICTIONS_TOPIC and broker.log[0][2] == study_pseudonym.encode()
    assert first.study.study_instance_uid == study_pseudonym
    assert first.request_id == first.meta.request_id == PSEUDONYMS.identifier(REQUEST_ID, "r0")
    assert b"study-0" not in broker.log[0][1]
    assert first.patient_pseudonym == "pseudo" and first.age_band == "60-69"
    assert first.arm == common_pb2.ARM_STABLE and first.descriptors["intensity.mean"] == pytest.approx(0.3)
    assert list(first.embedding) == [0.5, 0.25] and first.meta.schema_version == 1
    assert first.meta.event_id == first.prediction_id and first.route_revision == 3


@pytest.mark.asyncio
async def test_spooled_events_survive_a_gateway_restart(tmp_path: Path) -> None:
    down = FlakyBroker()
    down.up = False
    sink = SpooledKafkaSink(
        Spool(tmp_path, fsync=True),
        down.send_many,
        producer_name="g",
        age_edges=(40,),
        pseudonymiser=PSEUDONYMS,
        tuning=SinkTuning(retry_initial_s=0.01, retry_max_s=0.02),
    )
    sink.start()
    preds = [prediction(i) for i in range(20)]
    for cmd, pred in preds:
        sink.record(cmd, pred)
    await sink.stop(drain_timeout_s=0.1)  # Kafka still down: events stay on disk
    assert down.log == []

    up = FlakyBroker()
    sink2 = SpooledKafkaSink(
        Spool(tmp_path),
        up.send_many,
        producer_name="g",
        age_edges=(40,),
        pseudonymiser=PSEUDONYMS,
    )
    sink2.start()
    await asyncio.wait_for(sink2.wait_drained(), 10)
    await sink2.stop()
    assert [events_pb2.PredictionEvent.FromString(v).prediction_id for _, v, _ in up.log] == [
        p.prediction_id for _, p in preds
    ]


@pytest.mark.asyncio
async def test_a_gateway_killed_right_after_answering_loses_no_event(tmp_path: Path) -> None:
    """record() returns only once the event is in the spool file: a SIGKILL just after it loses nothing."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from services.gateway.adapters.events import SpooledKafkaSink
        from services.gateway.spool import Spool
        from tests.unit.gateway.test_spooled_sink import PSEUDONYMS, prediction

        async def never(records):
            raise AssertionError("not started: nothing is published")

        sink = SpooledKafkaSink(
            Spool(Path({str(tmp_path)!r})), never, producer_name="g", age_edges=(40,), pseudonymiser=PSEUDONYMS
        )
        for i in range(30):
            cmd, pred = prediction(i)
            sink.record(cmd, pred)
            print(pred.prediction_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before any group commit or publish could run
        """
    )
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    answered = proc.stdout.split()
    assert len(answered) == 30

    broker = FlakyBroker()
    sink = SpooledKafkaSink(
        Spool(tmp_path),
        broker.send_many,
        producer_name="g",
        age_edges=(40,),
        pseudonymiser=PSEUDONYMS,
    )
    sink.start()
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    assert [events_pb2.PredictionEvent.FromString(v).prediction_id for _, v, _ in broker.log] == answered


@pytest.mark.asyncio
async def test_a_full_spool_refuses_the_event_instead_of_dropping_it(tmp_path: Path) -> None:
    broker = FlakyBroker()
    broker.up = False
    sink = SpooledKafkaSink(
        Spool(tmp_path, max_bytes=4096, fsync=False),
        broker.send_many,
        producer_name="g",
        age_edges=(40,),
        pseudonymiser=PSEUDONYMS,
    )
    recorded = 0
    with pytest.raises(ResourceExhausted, match="spool full"):
        for i in range(100):
            sink.record(*prediction(i))
            recorded += 1
    assert 0 < recorded < 100
    assert 0 < sink.spool.pending_bytes <= 4096  # what was accepted is kept, nothing beyond the limit
    sink.start()
    broker.up = True
    await asyncio.wait_for(sink.wait_drained(), 10)
    await sink.stop()
    assert len(broker.log) == recorded and sink.accepting()


@pytest.mark.asyncio
async def test_the_group_commit_wakes_the_publisher(tmp_path: Path) -> None:
    """Events go out when their group commit is done, not when the publisher's idle poll comes round."""
    broker = FlakyBroker()
    sink = SpooledKafkaSink(
        Spool(tmp_path, fsync=True),
        broker.send_many,
        producer_name="g",
        age_edges=(40,),
        pseudonymiser=PSEUDONYMS,
        tuning=SinkTuning(sync_interval_s=0.01, publish_interval_s=0.01, idle_poll_s=60.0),
    )
    sink.start()
    try:
        await asyncio.sleep(0.1)  # the publisher has found the spool empty and is waiting
        for i in range(5):
            sink.record(*prediction(i))
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(broker.log) < 5:
            # Without the wake-up this would take the 60 s idle poll.
            assert loop.time() - started < 20.0, f"{len(broker.log)} of 5 events published after 20 s"
            await asyncio.sleep(0.005)
    finally:
        await sink.stop()
    request_ids = [events_pb2.PredictionEvent.FromString(v).request_id for _, v, _ in broker.log]
    assert request_ids == [PSEUDONYMS.identifier(REQUEST_ID, f"r{i}") for i in range(5)]


class FailingDisk(Spool):
    """A spool whose disk fails: fsync for the first ``sync_failures`` calls, writes while ``write_fails``."""

    def __init__(self, directory: Path, sync_failures: int) -> None:
        super().__init__(directory, fsync=True)
        self.sync_failures = sync_failures
        self.write_fails = False

    def sync(self) -> None:
        if self.sync_failures > 0:
            self.sync_failures -= 1
            raise OSError(5, "Input/output error")
        super().sync()

    def append(self, records: list[SpooledRecord], *, sync: bool = True) -> None:
        if self.write_fails:
            raise OSError(28, "No space left on device")
        super().append(records, sync=sync)


@pytest.mark.asyncio
async def test_a_failing_disk_refuses_answers_and_retries_syncs_without_losing_events(tmp_path: Path) -> None:
    broker = FlakyBroker()
    disk = FailingDisk(tmp_path, sync_failures=3)
    sink = SpooledKafkaSink(
        disk,
        broker.send_many,
        producer_name="g",
        age_edges=(40,),
        pseudonymiser=PSEUDONYMS,
        tuning=SinkTuning(sync_interval_s=0.001, retry_initial_s=0.01),
    )
    sink.start()
    try:
        for i in range(10):
            sink.record(*prediction(i))
        disk.write_fails = True
        with pytest.raises(Unavailable, match=r"event-spool is unavailable: .*No space left on device"):
            sink.record(*prediction(10))
        await asyncio.wait_for(sink.wait_drained(), 10)
    finally:
        await sink.stop()
    assert sink.sync_failures == 3
    request_ids = [events_pb2.PredictionEvent.FromString(v).request_id for _, v, _ in broker.log]
    assert request_ids == [
        PSEUDONYMS.identifier(REQUEST_ID, f"r{i}") for i in range(10)
    ]  # all the recorded ones, once, in order
