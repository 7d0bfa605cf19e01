"""Simulator traffic through a gateway: studies scored by the real Triton, radiologists' reads as ReadEvents."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import grpc.aio
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.runtime.kafka import AsyncKafkaProducer, OutgoingRecord
from sim import Hospital, ReadOutcome, Study

MODEL = "chest_nodule"
_OUTCOMES = {
    ReadOutcome.AGREE: common_pb2.OUTCOME_AGREE,
    ReadOutcome.OVERRIDE: common_pb2.OUTCOME_OVERRIDE,
    ReadOutcome.CORRECT: common_pb2.OUTCOME_CORRECT,
}
_SEX = {"F": common_pb2.SEX_FEMALE, "M": common_pb2.SEX_MALE}


def _stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def predict_request(study: Study) -> inference_pb2.PredictRequest:
    """The gateway request a hospital system sends for ``study`` (pixels plus its DICOM metadata)."""
    image = np.ascontiguousarray(study.image, dtype=np.float32)
    return inference_pb2.PredictRequest(
        model_name=MODEL,
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


@dataclass
class Traffic:
    """Sends the seeded hospital's studies, in order, through one gateway; each read follows its answer."""

    hospital: Hospital
    gateway_target: str
    bootstrap: str
    reads_topic: str
    concurrency: int = 4
    next_index: int = 0
    #: (arm, version) → studies answered.
    answered: dict[tuple[str, str], int] = field(default_factory=dict)

    async def send(self, n: int) -> None:
        """Score the next ``n`` studies and publish the simulated radiologist's read of each."""
        batch = self.hospital.studies(n, self.next_index)
        self.next_index += n
        limit = asyncio.Semaphore(self.concurrency)
        async with grpc.aio.insecure_channel(self.gateway_target) as channel:
            stub = inference_pb2_grpc.InferenceGatewayStub(channel)

            async def one(study: Study) -> events_pb2.ReadEvent:
                async with limit:
                    answer = await stub.Predict(predict_request(study), timeout=30)
                key = (common_pb2.Arm.Name(answer.arm).removeprefix("ARM_").lower(), answer.model.model_version)
                self.answered[key] = self.answered.get(key, 0) + 1
                decision = int(answer.decision == common_pb2.DECISION_POSITIVE)
                return self._read_event(study, answer.prediction_id, decision)

            events = await asyncio.gather(*(one(s) for s in batch.studies))
        async with AsyncKafkaProducer(self.bootstrap, linger_ms=5) as producer:
            outcomes = await producer.send_many(
                [OutgoingRecord(self.reads_topic, e.SerializeToString(), e.prediction_id.encode()) for e in events]
            )
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert not failed, f"reads not acknowledged: {failed[0]}"

    def _read_event(self, study: Study, prediction_id: str, decision: int) -> events_pb2.ReadEvent:
        read = self.hospital.read(study, decision)
        read_id = str(uuid.uuid4())
        now = _stamp(datetime.now(UTC))  # read now (the simulated clock runs days ahead of the ledger's)
        event = events_pb2.ReadEvent(
            meta=common_pb2.EventMeta(schema_version=1, event_id=read_id, event_time=now, producer="feedback/e2e"),
            read_id=read_id,
            prediction_id=prediction_id,
            reader_pseudonym=read.reader_id,
            outcome=_OUTCOMES[read.outcome],
            ground_truth=common_pb2.LABEL_POSITIVE if read.label else common_pb2.LABEL_NEGATIVE,
            read_time=now,
            idempotency_key=f"ris-{prediction_id}",
        )
        if read.label:
            event.finding.category_code = "NODULE"
        return event


async def ledger_counts(dsn: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(arm, version) → (predictions, predictions with a read) in the ledger at ``dsn``."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """select p.arm, p.model_version, count(*) as n,
                      count(*) filter (where exists (select 1 from ledger_reads r
                                                     where r.prediction_id = p.prediction_id)) as read
               from ledger_predictions p where p.model_name = $1 group by 1, 2""",
            MODEL,
        )
        return {(r["arm"], r["model_version"]): (r["n"], r["read"]) for r in rows}
    finally:
        await connection.close()


async def wait_ledger(dsn: str, arm: str, version: str, predictions: int, timeout_s: float = 30.0) -> int:
    """Wait until the ledger holds ``predictions`` of (arm, version); returns how many it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        got = (await ledger_counts(dsn)).get((arm, version), (0, 0))[0]
        if got >= predictions:
            return got
        assert loop.time() < deadline, f"ledger holds {got} of {predictions} {arm} predictions of v{version}"
        await asyncio.sleep(0.2)


async def per_scanner(dsn: str, arm: str, version: str) -> dict[str, dict[str, float]]:
    """Scanner → reads, mean calibrated probability, rate of positive reads and sensitivity, for one arm."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """select p.manufacturer_model as scanner, count(*) as reads,
                      avg(p.probability) as mean_probability, avg(r.label) as positive_rate,
                      count(*) filter (where r.label = 1) as positives,
                      count(*) filter (where r.label = 1 and p.decision = 1) as detected
               from ledger_predictions p join ledger_reads r on r.prediction_id = p.prediction_id
               where p.model_name = $1 and p.arm = $2 and p.model_version = $3 and r.label is not null
               group by 1""",
            MODEL,
            arm,
            version,
        )
    finally:
        await connection.close()
    return {
        r["scanner"]: {
            "reads": float(r["reads"]),
            "mean_probability": float(r["mean_probability"]),
            "positive_rate": float(r["positive_rate"]),
            "calibration_gap": abs(float(r["mean_probability"]) - float(r["positive_rate"])),
            "sensitivity": r["detected"] / r["positives"] if r["positives"] else float("nan"),
        }
        for r in rows
    }
