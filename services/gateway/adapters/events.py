"""PredictionSink that writes every PredictionEvent to a durable spool first, then drains it to Kafka.

The answer never waits for Kafka or for an fsync. ``record`` encodes the event and appends it to the
spool's open segment (a write to the page cache), so the event survives the gateway process before the
answer leaves; a syncer task fsyncs in group commits (``sync_interval_s``), after which the event also
survives the machine; a publisher task sends synced events in order, in batches, and advances the
spool's cursor only over records Kafka acknowledged. With Kafka down the spool grows, the gateway keeps
answering, and the spool drains when Kafka returns. A full spool flips ``accepting()`` to False (the
gateway then refuses new predictions with RESOURCE_EXHAUSTED and reports degraded health) — events are
never dropped silently.

A record Kafka refuses for good (too large, or any other non-retriable error) is moved to the dead-letter
folder (:mod:`services.gateway.deadletter`), counted, and passed over, so it never holds back the records
behind it; retriable failures (broker away, timeouts) are retried from the spool. Order: the records of a
study (one Kafka key) reach Kafka in the order they were recorded, quarantined ones left out. ``record``
refuses an event larger than ``max_event_bytes``, so with sane settings only a broker whose limit is below
the gateway's ever sends a prediction there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from kernel.topics import PREDICTIONS_TOPIC
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.gateway.deadletter import MAX_REASON_CHARS, DeadLetter, DeadLetterWriter, now_utc, record_size
from services.gateway.domain import PredictCommand, Prediction, Sex, age_band
from services.gateway.routing import Arm
from services.gateway.spool import Position, Spool, SpooledRecord, SpoolFull
from services.runtime.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.runtime.kafka import inject_context
from services.runtime.pseudonyms import ACCESSION, REQUEST_ID, SERIES_UID, STUDY_UID, Pseudonymiser

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_ARMS = {Arm.STABLE: common_pb2.ARM_STABLE, Arm.CANARY: common_pb2.ARM_CANARY, Arm.SHADOW: common_pb2.ARM_SHADOW}
_SEXES = {
    Sex.UNSPECIFIED: common_pb2.SEX_UNSPECIFIED,
    Sex.FEMALE: common_pb2.SEX_FEMALE,
    Sex.MALE: common_pb2.SEX_MALE,
    Sex.OTHER: common_pb2.SEX_OTHER,
}

#: Publishes a batch in order; returns, per record, its acknowledgement or the exception it failed with
#: (:class:`Unavailable` when retrying may help, anything else when the record can never be delivered).
SendManyFn = Callable[[list[SpooledRecord]], Awaitable[list[object]]]
#: Asks whether Kafka answers now (a metadata round trip); False or an exception when it does not.
ProbeFn = Callable[[], Awaitable[bool]]
#: Default ceiling of one encoded prediction event (key, value and headers): half of Kafka's default
#: message limit (1 MiB), so an event fits every broker and producer left at its defaults.
DEFAULT_MAX_EVENT_BYTES = 512 * 1024


def _span_ids() -> tuple[str, str]:
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return "", ""
    return format(span.trace_id, "032x"), format(span.span_id, "016x")


def prediction_event(
    command: PredictCommand,
    prediction: Prediction,
    producer: str,
    age_edges: tuple[int, ...],
    span_ids: tuple[str, str] = ("", ""),
    *,
    pseudonymiser: Pseudonymiser,
) -> events_pb2.PredictionEvent:
    """The Kafka payload for one prediction.

    It carries keyed pseudonyms only: of the patient (made by the servicer), and of the study, series and
    accession and the caller's request id (made here, the last moment before the event leaves the request
    path), never the raw values the caller sent.
    """
    ids = pseudonymiser.identifier
    request_id = ids(REQUEST_ID, command.request_id)
    now = Timestamp()
    now.GetCurrentTime()
    acq = command.acquisition
    event = events_pb2.PredictionEvent(
        meta=common_pb2.EventMeta(
            schema_version=SCHEMA_VERSION,
            event_id=prediction.prediction_id,
            event_time=now,
            producer=producer,
            trace_id=span_ids[0],
            span_id=span_ids[1],
            request_id=request_id,
        ),
        prediction_id=prediction.prediction_id,
        model=common_pb2.ModelRef(model_name=prediction.model_name, model_version=prediction.version),
        arm=_ARMS[prediction.arm],
        study=common_pb2.StudyRef(
            study_instance_uid=ids(STUDY_UID, command.study.study_uid),
            series_instance_uid=ids(SERIES_UID, command.study.series_uid),
            accession_number=ids(ACCESSION, command.study.accession),
        ),
        patient_pseudonym=command.patient_pseudonym,
        patient_context=common_pb2.PatientContext(sex=_SEXES[command.sex], age_years=command.age_years)
        if command.age_years is not None
        else common_pb2.PatientContext(sex=_SEXES[command.sex]),
        age_band=age_band(command.age_years, age_edges),
        acquisition=common_pb2.AcquisitionContext(
            site_id=acq.site_id,
            modality=acq.modality,
            body_part=acq.body_part,
            manufacturer=acq.manufacturer,
            manufacturer_model=acq.manufacturer_model,
            protocol_name=acq.protocol_name,
            pixel_spacing_mm=common_pb2.PixelSpacing(row_mm=acq.pixel_spacing_row_mm, col_mm=acq.pixel_spacing_col_mm),
        ),
        raw_score=prediction.raw_score,
        probability=prediction.probability,
        decision=common_pb2.DECISION_POSITIVE if prediction.positive else common_pb2.DECISION_NEGATIVE,
        threshold=prediction.threshold,
        descriptors=prediction.outputs.descriptors,
        embedding=prediction.outputs.embedding,
        latency_ms=prediction.latency_ms,
        route_revision=prediction.route_revision,
        request_id=request_id,
        served_prediction_id=prediction.served_prediction_id,
    )
    return event


@dataclass(frozen=True)
class SinkTuning:
    """Batching and retry knobs of the spooled sink.

    Attributes:
        sync_interval_s: Group commit: appended events are fsynced at most this often. They survive the
            gateway process as soon as ``record`` returns; this is how long they may wait to survive a
            power loss of the machine.
        publish_interval_s: When less than a full batch is waiting, the publisher waits this long for more
            before sending (fewer, larger produce requests and cursor writes).
        drain_batch: Most events in one publish.
        idle_poll_s: With nothing to publish, the publisher looks again after this long even if no group
            commit woke it (a safety net: every commit wakes it).
        retry_initial_s: First wait after a failed publish; doubles up to ``retry_max_s``.
        retry_max_s: Longest wait between publish attempts.
        probe_interval_s: How often Kafka is asked whether it answers (``kafka_ok``), even with nothing to
            publish, so an outage shows within seconds.
    """

    sync_interval_s: float = 0.02
    publish_interval_s: float = 0.02
    drain_batch: int = 512
    idle_poll_s: float = 0.5
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    probe_interval_s: float = 3.0


class SpooledKafkaSink:
    """PredictionSink: event → spool (before the answer) → fsync (group commit) → Kafka, in order."""

    def __init__(
        self,
        spool: Spool,
        send_many: SendManyFn,
        *,
        producer_name: str,
        age_edges: tuple[int, ...],
        tuning: SinkTuning | None = None,
        topic: str = PREDICTIONS_TOPIC,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        dead_letters: DeadLetterWriter | None = None,
        probe: ProbeFn | None = None,
        pseudonymiser: Pseudonymiser,
    ) -> None:
        self.spool = spool
        self.max_event_bytes = max_event_bytes
        self._dead_letters = dead_letters or DeadLetterWriter(spool.directory, fsync=spool.fsync)
        self._probe = probe
        self._pseudonymiser = pseudonymiser
        self._topic = topic
        self._send_many = send_many
        self._producer_name = producer_name
        self._age_edges = age_edges
        self.tuning = tuning or SinkTuning()
        self._appended = asyncio.Event()
        self._spooled = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        #: Kafka reachable at the last attempt (for health and metrics).
        self.kafka_ok = True
        self.published = 0
        #: Publish attempts that failed (each is retried from the spool).
        self.publish_failures = 0
        #: fsyncs of the spool that failed (each is retried).
        self.sync_failures = 0
        #: Records Kafka refused for good, moved to the dead-letter folder since start.
        self.dead_letters = 0
        #: Probes Kafka did not answer (an outage counts here within seconds, before any publish times out).
        self.probe_failures = 0

    # ---- PredictionSink --------------------------------------------------------------------------------
    def accepting(self) -> bool:
        return not self.spool.full

    def record(self, command: PredictCommand, prediction: Prediction) -> None:
        # Encoding and one buffered write to the page cache cost tens of microseconds, and make the event
        # survive this process before the caller sees the answer; the fsync comes in the next group commit.
        event = prediction_event(
            command, prediction, self._producer_name, self._age_edges, _span_ids(), pseudonymiser=self._pseudonymiser
        )
        record = SpooledRecord(
            topic=self._topic,
            key=event.study.study_instance_uid.encode(),  # the pseudonym: a study's events stay in order
            value=event.SerializeToString(),
            headers=tuple(inject_context()),
        )
        size = record_size(record.key, record.value, record.headers)
        if size > self.max_event_bytes:
            # The edge's field limits keep events far below this; refusing here keeps a record that no
            # broker would take out of the spool in the first place.
            raise InvalidArgument(
                "request", f"its prediction event would be {size} bytes; the limit is {self.max_event_bytes}"
            )
        try:
            self.spool.append([record], sync=False)
        except SpoolFull:
            _log.error("prediction spool full: %d bytes pending", self.spool.pending_bytes)
            raise ResourceExhausted("prediction events cannot be recorded (spool full); retry later") from None
        except OSError as exc:  # e.g. the disk is full or gone: refuse the answer rather than lose its event
            _log.error("writing the prediction spool failed: %s", exc)
            raise Unavailable("event-spool", f"prediction events cannot be written ({exc.strerror})") from None
        self._appended.set()

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the syncer and the publisher tasks on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._syncer(), name="spool-syncer"),
            loop.create_task(self._drainer(), name="spool-drainer"),
        ]
        if self._probe is not None:
            self._tasks.append(loop.create_task(self._prober(), name="kafka-prober"))

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Sync what was recorded, try to publish the spool, then stop (what is left stays spooled)."""
        self._stopping = True
        self._appended.set()
        syncer, drainer = self._tasks[:2] if self._tasks else (None, None)
        for extra in self._tasks[2:]:
            extra.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await extra
        if syncer is not None:
            await syncer
        if drainer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_drained(), drain_timeout_s)
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
        self.spool.close()

    async def wait_drained(self, poll_s: float = 0.02) -> None:
        """Wait until everything recorded so far has been acknowledged by Kafka."""
        while self.spool.pending_bytes:  # noqa: ASYNC110 - the spool is shared with worker threads, polled
            await asyncio.sleep(poll_s)

    # ---- tasks -----------------------------------------------------------------------------------------------
    async def _syncer(self) -> None:
        while True:
            await self._appended.wait()
            self._appended.clear()
            if not self._stopping:
                await asyncio.sleep(self.tuning.sync_interval_s)  # group commit: let a batch form
            if self.spool.unsynced:
                try:
                    await asyncio.to_thread(self.spool.sync)
                except OSError as exc:
                    # Nothing is lost: the events stay in the page cache and unpublished until a sync succeeds.
                    self.sync_failures += 1
                    _log.error("syncing the prediction spool failed (%s); retrying", exc)
                    if self._stopping:
                        return
                    await asyncio.sleep(self.tuning.retry_initial_s)
                    self._appended.set()
                    continue
            self._spooled.set()
            if self._stopping:
                return

    async def _drainer(self) -> None:
        backoff = self.tuning.retry_initial_s
        acked: set[Position] = set()
        while True:
            self._spooled.clear()
            entries = await asyncio.to_thread(self.spool.read, self.tuning.drain_batch)
            if not entries:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._spooled.wait(), self.tuning.idle_poll_s)
                continue
            todo = [(pos, rec) for pos, rec in entries if pos not in acked]
            try:
                results = await self._send_many([rec for _, rec in todo])
            except Exception as exc:  # the whole call failed (e.g. no connection yet): retry every record
                results = [Unavailable("kafka", type(exc).__name__)] * len(todo)
            failed = await self._settle(todo, results, acked)
            # Advance over the acknowledged prefix only: order on disk is the order of record().
            last: tuple[Position, SpooledRecord] | None = None
            for pos, rec in entries:
                if pos not in acked:
                    break
                acked.discard(pos)
                last = (pos, rec)
            if last is not None:
                await asyncio.to_thread(self.spool.commit, self.spool.next_position(*last))
            self.kafka_ok = not failed
            if failed:
                _log.warning("publishing spooled predictions failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.tuning.retry_max_s)
            else:
                backoff = self.tuning.retry_initial_s
                if len(entries) < self.tuning.drain_batch and not self._stopping:
                    await asyncio.sleep(self.tuning.publish_interval_s)  # let the next batch gather

    async def _settle(
        self, todo: list[tuple[Position, SpooledRecord]], results: list[object], acked: set[Position]
    ) -> bool:
        """Sort a batch's outcomes: acknowledged, to retry, or quarantined. True when any is to retry."""
        failed = False
        for (pos, rec), res in zip(todo, results, strict=True):
            if not isinstance(res, BaseException):
                acked.add(pos)
                self.published += 1
            elif isinstance(res, Unavailable):
                failed = True
                self.publish_failures += 1
            elif await self._quarantine(rec, res):
                acked.add(pos)  # passed over: the cursor may move beyond it
            else:
                failed = True
                self.publish_failures += 1
        return failed

    async def _quarantine(self, record: SpooledRecord, error: BaseException) -> bool:
        """Move a record Kafka refused for good to the dead-letter folder; False if that failed (then retried)."""
        reason = type(error).__name__[:MAX_REASON_CHARS]
        letter = DeadLetter(
            id=_event_id(record),
            topic=record.topic,
            key=record.key,
            value=record.value,
            headers=record.headers,
            reason=reason,
            quarantined_at=now_utc(),
            size=record_size(record.key, record.value, record.headers),
        )
        try:
            await asyncio.to_thread(self._dead_letters.write, letter)
        except OSError as exc:
            _log.error("quarantining a refused record failed (%s); it stays in the spool", exc.strerror)
            return False
        self.dead_letters += 1
        # No ids, key or payload in the log: the folder holds the record for whoever may look at it.
        _log.error(
            "kafka refused a record for good; quarantined reason=%s size=%d folder=%s",
            reason,
            letter.size,
            self._dead_letters.directory,
        )
        return True

    async def _prober(self) -> None:
        assert self._probe is not None
        while True:
            try:
                ok = bool(await asyncio.wait_for(self._probe(), self.tuning.probe_interval_s * 2))
            except Exception:
                ok = False
            if not ok:
                self.probe_failures += 1
            if ok != self.kafka_ok:
                _log.warning("kafka %s", "reachable again" if ok else "unreachable (metadata probe failed)")
            self.kafka_ok = ok
            await asyncio.sleep(self.tuning.probe_interval_s)


def _event_id(record: SpooledRecord) -> str:
    """The event id inside a prediction event's payload; empty for other or unreadable payloads."""
    try:
        return str(events_pb2.PredictionEvent.FromString(record.value).meta.event_id)
    except Exception:
        return ""
