"""The hospital traffic driver: a seeded simulated hospital (``sim``) sending studies and radiologists' reads.

Each study goes to a gateway's radiology API (``Predict``, pixels plus the DICOM metadata); once answered,
the simulated radiologist's read of it follows after the read's simulated delay (scaled to wall-clock
seconds), through a :class:`ReadSink`: the feedback service (``RecordRead``, what ``radguard simulate``
uses) or a Kafka reads topic (the end-to-end tests' in-process ledgers). The driver counts only what was
acknowledged: a prediction when the gateway answered it, a read when the sink accepted it; the ids of both
are kept so a caller can compare them with the ledger, id by id.

Used by ``radguard simulate``, ``radguard demo`` and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import grpc
import grpc.aio
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.cli import channels
from sim import Hospital, Read, ReadOutcome, Study

MODEL = "chest_nodule"
OUTCOMES = {
    ReadOutcome.AGREE: common_pb2.OUTCOME_AGREE,
    ReadOutcome.OVERRIDE: common_pb2.OUTCOME_OVERRIDE,
    ReadOutcome.CORRECT: common_pb2.OUTCOME_CORRECT,
}
_SEX = {"F": common_pb2.SEX_FEMALE, "M": common_pb2.SEX_MALE}
#: Retries of a Predict answered UNAVAILABLE.
_RETRIES = 3
#: Studies generated together (rendering is CPU work, done off the event loop).
_BATCH = 16


def stamp(moment: datetime) -> Timestamp:
    """A protobuf timestamp of ``moment``."""
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def bearer(token: str) -> tuple[tuple[str, str], ...] | None:
    """gRPC metadata carrying ``token`` (None without one)."""
    return (("authorization", f"Bearer {token}"),) if token else None


def predict_request(study: Study, model: str = MODEL, *, dicom: bool = False) -> inference_pb2.PredictRequest:
    """The gateway request a hospital system sends for ``study``: pixels plus its DICOM metadata, or (``dicom``)
    the study as a DICOM Part-10 file."""
    if dicom:
        from sim import to_dicom

        return inference_pb2.PredictRequest(
            model_name=model, request_id=uuid.uuid4().hex, dicom=inference_pb2.DicomInstance(data=to_dicom(study))
        )
    image = np.ascontiguousarray(study.image, dtype=np.float32)
    return inference_pb2.PredictRequest(
        model_name=model,
        request_id=uuid.uuid4().hex,
        study=common_pb2.StudyRef(study_instance_uid=study.study_uid, accession_number=study.accession),
        patient=common_pb2.PatientRef(patient_id=study.patient_id),
        patient_context=common_pb2.PatientContext(sex=_SEX[study.sex], age_years=study.age),
        acquisition=common_pb2.AcquisitionContext(
            site_id=study.site_id,
            modality=study.modality,
            manufacturer=study.manufacturer,
            manufacturer_model=study.model,
            protocol_name=study.protocol,
        ),
        tensor=common_pb2.Tensor(data=image.tobytes(), shape=[1, *image.shape], dtype=common_pb2.DATA_TYPE_FLOAT32),
    )


def record_read_request(prediction_id: str, read: Read) -> feedback_pb2.RecordReadRequest:
    """The feedback request of the simulated read (signed now: the simulated clock runs ahead of the ledger's)."""
    request = feedback_pb2.RecordReadRequest(
        idempotency_key=f"ris-{prediction_id}",
        prediction_id=prediction_id,
        reader_pseudonym=read.reader_id,
        outcome=OUTCOMES[read.outcome],
        ground_truth=common_pb2.LABEL_POSITIVE if read.label else common_pb2.LABEL_NEGATIVE,
        read_time=stamp(datetime.now(UTC)),
    )
    if read.label:
        request.finding.category_code = "NODULE"
    return request


class ReadSink(Protocol):
    """Where the radiologists' reads go."""

    async def record(self, prediction_id: str, read: Read) -> None:
        """Deliver one read; returns once it is acknowledged, raises if it is refused."""

    async def flush(self) -> None:
        """Deliver anything held back."""

    async def close(self) -> None:
        """Release connections."""


class FeedbackReads:
    """Reads recorded through the feedback service's ``RecordRead``, as a reading system does."""

    def __init__(self, target: str, token: str = "", timeout_s: float = 30.0) -> None:
        self._channel = channels.aio_channel(target)
        self._stub = feedback_pb2_grpc.FeedbackStub(self._channel)
        self._metadata = bearer(token)
        self._timeout_s = timeout_s

    async def record(self, prediction_id: str, read: Read) -> None:
        await self._stub.RecordRead(
            record_read_request(prediction_id, read), timeout=self._timeout_s, metadata=self._metadata
        )

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        await self._channel.close(None)


def read_event(prediction_id: str, read: Read, producer: str = "feedback/sim") -> events_pb2.ReadEvent:
    """The ReadEvent the feedback service would publish for ``read``."""
    request = record_read_request(prediction_id, read)
    read_id = str(uuid.uuid4())
    event = events_pb2.ReadEvent(
        meta=common_pb2.EventMeta(schema_version=1, event_id=read_id, event_time=request.read_time, producer=producer),
        read_id=read_id,
        prediction_id=prediction_id,
        reader_pseudonym=request.reader_pseudonym,
        outcome=request.outcome,
        ground_truth=request.ground_truth,
        read_time=request.read_time,
        idempotency_key=request.idempotency_key,
    )
    if read.label:
        event.finding.category_code = "NODULE"
    return event


class KafkaReads:
    """Reads published straight onto a reads topic as ReadEvents (for ledgers without a feedback service).

    Reads are held and published together by :meth:`flush` (the driver flushes at the end of each run).
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap, self._topic = bootstrap, topic
        self._held: list[events_pb2.ReadEvent] = []

    async def record(self, prediction_id: str, read: Read) -> None:
        self._held.append(read_event(prediction_id, read, producer="feedback/e2e"))

    async def flush(self) -> None:
        from services.runtime.kafka import AsyncKafkaProducer, OutgoingRecord

        held, self._held = self._held, []
        if not held:
            return
        async with AsyncKafkaProducer(self._bootstrap, linger_ms=5) as producer:
            outcomes = await producer.send_many(
                [OutgoingRecord(self._topic, e.SerializeToString(), e.prediction_id.encode()) for e in held]
            )
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            raise RuntimeError(f"{len(failed)} reads not acknowledged: {failed[0]}")

    async def close(self) -> None:
        return None


@dataclass
class DriverStats:
    """What the driver sent and what was acknowledged."""

    sent: int = 0
    answered: int = 0
    reads: int = 0
    #: "predict UNAVAILABLE", "read INVALID_ARGUMENT", ... → count.
    errors: Counter[str] = field(default_factory=Counter)
    #: (arm, version) → studies answered.
    answered_by_arm: dict[tuple[str, str], int] = field(default_factory=dict)
    #: site → studies answered.
    answered_by_site: Counter[str] = field(default_factory=Counter)
    prediction_ids: list[str] = field(default_factory=list)
    read_prediction_ids: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    interrupted: bool = False

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Answered studies per second so far."""
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_json(self) -> dict[str, object]:
        """The summary as plain data (the ids included)."""
        return {
            "sent": self.sent,
            "answered": self.answered,
            "reads": self.reads,
            "errors": dict(self.errors),
            "answered_by_arm": {f"{arm}/v{version}": n for (arm, version), n in sorted(self.answered_by_arm.items())},
            "answered_by_site": dict(sorted(self.answered_by_site.items())),
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "prediction_ids": self.prediction_ids,
            "read_prediction_ids": self.read_prediction_ids,
        }


def _status(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    return type(exc).__name__


@dataclass
class HospitalDriver:
    """Drives one gateway with a seeded hospital's studies, in index order; each read follows its answer.

    Attributes:
        hospital: The simulated hospital.
        gateway_target: ``host:port`` of the gateway.
        reads: Where the reads go (None: no reads are sent).
        gateway_token: Bearer token of a hospital_system caller.
        model: Model name in the requests.
        concurrency: Predictions in flight at once.
        read_delay_scale: Wall-clock seconds per simulated minute of read delay (0: read at once).
        next_index: The next study's index (a driver can be run again and continues).
        dicom: Send each study as a DICOM Part-10 file instead of pixels plus metadata.
    """

    hospital: Hospital
    gateway_target: str
    reads: ReadSink | None
    gateway_token: str = ""
    model: str = MODEL
    concurrency: int = 4
    read_delay_scale: float = 0.0
    timeout_s: float = 30.0
    next_index: int = 0
    dicom: bool = False
    stats: DriverStats = field(default_factory=DriverStats)
    on_answer: Callable[[Study, inference_pb2.PredictResponse], None] | None = None

    async def run(
        self,
        n: int | None = None,
        *,
        duration_s: float | None = None,
        rate: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> DriverStats:
        """Send studies until ``n`` were sent, ``duration_s`` passed, or ``stop`` is set (whichever first).

        Args:
            n: How many studies (None: no limit; then ``duration_s`` or ``stop`` must end the run).
            duration_s: Wall-clock limit in seconds.
            rate: Studies per second (None: as fast as ``concurrency`` allows).
            stop: Set it to stop sending; answers in flight are awaited and pending reads delivered at once.

        Returns:
            The driver's statistics, cumulative over runs.
        """
        if n is None and duration_s is None and stop is None:
            raise ValueError("a run needs n, duration_s or stop")
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + duration_s if duration_s is not None else None
        limit = asyncio.Semaphore(self.concurrency)
        hurry = asyncio.Event()  # set when stopping: pending reads skip their delay
        tasks: set[asyncio.Task[None]] = set()
        sent_here = 0
        async with channels.aio_channel(self.gateway_target) as channel:
            stub = inference_pb2_grpc.InferenceGatewayStub(channel)
            metadata = bearer(self.gateway_token)
            batch: Sequence[Study] = ()
            while not stop.is_set() and (n is None or sent_here < n):
                if deadline is not None and loop.time() >= deadline:
                    break
                if not batch:
                    size = _BATCH if n is None else min(_BATCH, n - sent_here)
                    generated = await asyncio.to_thread(self.hospital.studies, size, self.next_index)
                    batch = generated.studies
                if rate is not None:
                    due = started + sent_here / rate
                    if (wait := due - loop.time()) > 0:
                        await _sleep_or_stop(wait, stop)
                        continue
                await _acquire_or_stop(limit, stop)
                if stop.is_set():
                    break
                study, batch = batch[0], batch[1:]
                self.next_index += 1
                sent_here += 1
                self.stats.sent += 1
                task = asyncio.create_task(self._one(stub, metadata, study, limit, hurry))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                if stop.is_set():
                    hurry.set()
                await asyncio.wait(set(tasks), timeout=0.2)
        if self.reads is not None:
            await self._flush()
        self.stats.interrupted = self.stats.interrupted or stop.is_set()
        self.stats.finished = time.monotonic()
        return self.stats

    async def _flush(self) -> None:
        assert self.reads is not None
        try:
            await self.reads.flush()
        except Exception as exc:
            self.stats.errors[f"read {_status(exc)}"] += 1
            raise

    async def _predict(
        self,
        stub: inference_pb2_grpc.InferenceGatewayStub,
        request: inference_pb2.PredictRequest,
        metadata: tuple[tuple[str, str], ...] | None,
    ) -> inference_pb2.PredictResponse:
        """Predict, retrying UNAVAILABLE (e.g. a version being unloaded) with the same request id, as a
        hospital system would: the gateway answers a repeated request id from its memory, never twice."""
        for attempt in range(_RETRIES + 1):
            try:
                answer: inference_pb2.PredictResponse = await stub.Predict(
                    request, timeout=self.timeout_s, metadata=metadata
                )
                return answer
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == _RETRIES:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _one(
        self,
        stub: inference_pb2_grpc.InferenceGatewayStub,
        metadata: tuple[tuple[str, str], ...] | None,
        study: Study,
        limit: asyncio.Semaphore,
        hurry: asyncio.Event,
    ) -> None:
        request = predict_request(study, self.model, dicom=self.dicom)
        try:
            answer = await self._predict(stub, request, metadata)
        except Exception as exc:
            self.stats.errors[f"predict {_status(exc)}"] += 1
            return
        finally:
            limit.release()
        self.stats.answered += 1
        self.stats.prediction_ids.append(answer.prediction_id)
        key = (common_pb2.Arm.Name(answer.arm).removeprefix("ARM_").lower(), answer.model.model_version)
        self.stats.answered_by_arm[key] = self.stats.answered_by_arm.get(key, 0) + 1
        self.stats.answered_by_site[study.site_id] += 1
        if self.on_answer is not None:
            self.on_answer(study, answer)
        if self.reads is None:
            return
        decision = int(answer.decision == common_pb2.DECISION_POSITIVE)
        read = self.hospital.read(study, decision)
        delay = read.delay.total_seconds() / 60 * self.read_delay_scale
        if delay > 0:
            await _sleep_or_stop(delay, hurry)
        try:
            await self.reads.record(answer.prediction_id, read)
        except Exception as exc:
            self.stats.errors[f"read {_status(exc)}"] += 1
            return
        self.stats.reads += 1
        self.stats.read_prediction_ids.append(answer.prediction_id)


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return


async def _acquire_or_stop(limit: asyncio.Semaphore, stop: asyncio.Event) -> None:
    """Take a slot, or return without one once ``stop`` is set."""
    while True:
        try:
            await asyncio.wait_for(limit.acquire(), timeout=0.2)
            if stop.is_set():
                limit.release()
            return
        except TimeoutError:
            if stop.is_set():
                return


async def ledger_ids(dsn: str, prediction_ids: Sequence[str]) -> tuple[set[str], set[str]]:
    """Of ``prediction_ids``: those the ledger stores, and those with a read stored."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        predicted = await connection.fetch(
            "select prediction_id::text as id from ledger_predictions where prediction_id = any($1::uuid[])",
            list(prediction_ids),
        )
        read = await connection.fetch(
            "select distinct prediction_id::text as id from ledger_reads where prediction_id = any($1::uuid[])",
            list(prediction_ids),
        )
    finally:
        await connection.close()
    return {r["id"] for r in predicted}, {r["id"] for r in read}


async def wait_for_ledger(
    dsn: str, stats: DriverStats, timeout_s: float = 60.0, poll_s: float = 0.5
) -> tuple[set[str], set[str]]:
    """Wait until the ledger holds every acknowledged prediction and read of ``stats`` (or the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    want_predictions, want_reads = set(stats.prediction_ids), set(stats.read_prediction_ids)
    while True:
        predicted, read = await ledger_ids(dsn, stats.prediction_ids)
        if (predicted >= want_predictions and read >= want_reads) or loop.time() >= deadline:
            return predicted, read
        await asyncio.sleep(poll_s)
