"""Prediction and read events built from the seeded hospital simulator, with the ground truth to check against.

No model runs: a prediction's score is drawn around the study's true label (a model with AUROC ~0.9),
the decision is the score at a 0.5 threshold, and the read is the simulator's radiologist reading the
study after that decision (so outcome and label follow the simulator's rules).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from kernel import vocabulary
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.runtime.ids import uuid7
from sim import Hospital, Read, ReadOutcome, Study, intensity_descriptors, load_scenario

MODEL = "chest_nodule"
_OUTCOMES = {
    ReadOutcome.AGREE: common_pb2.OUTCOME_AGREE,
    ReadOutcome.OVERRIDE: common_pb2.OUTCOME_OVERRIDE,
    ReadOutcome.CORRECT: common_pb2.OUTCOME_CORRECT,
}


@dataclass(frozen=True)
class Truth:
    """What the simulator knows about one prediction (and its read, when one was made)."""

    prediction_id: str
    study: Study
    version: str
    arm: str
    probability: float
    decision: int
    read: Read | None = None
    read_id: str | None = None


@dataclass
class Traffic:
    """Serialized events (key, value) in production order, and the truth by prediction id."""

    predictions: list[tuple[bytes, bytes]] = field(default_factory=list)
    reads: list[tuple[bytes, bytes]] = field(default_factory=list)
    truth: dict[str, Truth] = field(default_factory=dict)

    def read_truths(self) -> list[Truth]:
        return [t for t in self.truth.values() if t.read is not None]


@cache
def hospital(seed: int) -> Hospital:
    # Small images: the events carry descriptors, not pixels, and 32 px keeps 10,000 studies to seconds.
    return Hospital(dataclasses.replace(load_scenario("baseline"), image_size=32), seed=seed)


def _stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def age_band(age: int) -> str:
    return vocabulary.age_band(age)


def prediction_event(truth: Truth, mean: float, std: float, p95: float) -> events_pb2.PredictionEvent:
    study = truth.study
    arm = common_pb2.ARM_CANARY if truth.arm == "canary" else common_pb2.ARM_STABLE
    sex = common_pb2.SEX_FEMALE if study.sex == "F" else common_pb2.SEX_MALE
    return events_pb2.PredictionEvent(
        meta=common_pb2.EventMeta(
            schema_version=1,
            event_id=truth.prediction_id,
            event_time=_stamp(study.acquired_at),
            producer="gateway/sim",
        ),
        prediction_id=truth.prediction_id,
        model=common_pb2.ModelRef(model_name=MODEL, model_version=truth.version),
        arm=arm,
        study=common_pb2.StudyRef(
            study_instance_uid=study.study_uid,
            series_instance_uid=study.series_uid,
            accession_number=study.accession,
        ),
        patient_pseudonym=f"psn-{study.patient_id[-6:]}",
        patient_context=common_pb2.PatientContext(sex=sex, age_years=study.age),
        age_band=age_band(study.age),
        acquisition=common_pb2.AcquisitionContext(
            site_id=study.site_id,
            modality=study.modality,
            body_part="CHEST",
            manufacturer=study.manufacturer,
            manufacturer_model=study.model,
            protocol_name=study.protocol,
            pixel_spacing_mm=common_pb2.PixelSpacing(row_mm=study.pixel_spacing[0], col_mm=study.pixel_spacing[1]),
        ),
        raw_score=math.log(truth.probability / (1 - truth.probability)),
        probability=truth.probability,
        decision=common_pb2.DECISION_POSITIVE if truth.decision else common_pb2.DECISION_NEGATIVE,
        threshold=0.5,
        descriptors={"intensity.mean": mean, "intensity.p95": p95},
        embedding=[mean, std],
        latency_ms=8.0,
        route_revision=1,
        request_id=f"req-{study.index}",
    )


def read_event(truth: Truth) -> events_pb2.ReadEvent:
    read, read_id = truth.read, truth.read_id
    assert read is not None and read_id is not None
    event = events_pb2.ReadEvent(
        meta=common_pb2.EventMeta(
            schema_version=1, event_id=read_id, event_time=_stamp(read.read_at), producer="feedback/sim"
        ),
        read_id=read_id,
        prediction_id=truth.prediction_id,
        reader_pseudonym=read.reader_id,
        outcome=_OUTCOMES[read.outcome],
        ground_truth=common_pb2.LABEL_POSITIVE if read.label else common_pb2.LABEL_NEGATIVE,
        read_time=_stamp(read.read_at),
        idempotency_key=f"ris-{truth.study.index}",
    )
    if read.label:
        event.finding.category_code = "NODULE"
        if read.finding_size_mm is not None:
            event.finding.size_mm = read.finding_size_mm
    return event


def simulate(n_predictions: int, n_reads: int, seed: int = 11, start_index: int = 0) -> Traffic:
    """Predictions for ``n_predictions`` consecutive studies and reads for a random ``n_reads`` of them.

    Versions: every fourth study (by index) goes to the canary, version "4"; the rest to stable "3".
    """
    rng = np.random.default_rng(seed)
    traffic = Traffic()
    batch = hospital(seed).studies(n_predictions, start_index)
    read_indices = set(rng.choice(n_predictions, size=n_reads, replace=False).tolist())
    descriptors = intensity_descriptors(batch.images)
    for position, study in enumerate(batch.studies):
        logit = 2.2 * (2 * study.label - 1) + rng.normal(0.0, 1.5)
        probability = float(min(max(1.0 / (1.0 + math.exp(-logit)), 1e-6), 1 - 1e-6))
        decision = int(probability >= 0.5)
        canary = study.index % 4 == 0
        truth = Truth(
            prediction_id=uuid7(now_ms=_ms(study.acquired_at)),
            study=study,
            version="4" if canary else "3",
            arm="canary" if canary else "stable",
            probability=probability,
            decision=decision,
        )
        if position in read_indices:
            read = hospital(seed).read(study, decision)
            truth = dataclasses.replace(truth, read=read, read_id=uuid7(now_ms=_ms(read.read_at)))
            traffic.reads.append((truth.prediction_id.encode(), read_event(truth).SerializeToString()))
        traffic.truth[truth.prediction_id] = truth
        event = prediction_event(
            truth,
            float(descriptors.mean[position]),
            float(descriptors.std[position]),
            float(descriptors.p95[position]),
        )
        traffic.predictions.append((study.study_uid.encode(), event.SerializeToString()))
    return traffic
