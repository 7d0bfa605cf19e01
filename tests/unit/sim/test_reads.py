"""Radiologist reads: realised accuracy, outcome relative to the model, delays, determinism."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.stats import binomtest

from sim import Hospital, Lesion, Reader, ReadOutcome, read_study
from tests.unit.sim.scenario_factory import ScenarioFactory


@dataclasses.dataclass(frozen=True)
class _Case:
    label: int
    lesion: Lesion
    acquired_at: datetime


ACQUIRED = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LESION = Lesion(present=True, center_row=10.0, center_col=12.0, size_mm=12.0, contrast=0.1)
POSITIVE = _Case(1, LESION, ACQUIRED)
NEGATIVE = _Case(0, Lesion(present=False), ACQUIRED)


def test_realised_sensitivity_and_specificity_match_the_reader() -> None:
    reader = Reader(reader_id="R", sensitivity=0.8, specificity=0.9)
    rng = np.random.default_rng(71)
    n = 4000
    true_positives = sum(read_study(POSITIVE, 1, reader, rng).label for _ in range(n))
    true_negatives = sum(1 - read_study(NEGATIVE, 0, reader, rng).label for _ in range(n))
    assert binomtest(true_positives, n, 0.8).pvalue > 1e-4
    assert binomtest(true_negatives, n, 0.9).pvalue > 1e-4


def test_outcome_compares_the_reported_label_with_the_model_decision() -> None:
    reader = Reader(reader_id="R", sensitivity=1.0, specificity=1.0, correction_rate=0.3)
    rng = np.random.default_rng(72)
    positive_agreeing = Counter(read_study(POSITIVE, 1, reader, rng).outcome for _ in range(3000))
    assert set(positive_agreeing) == {ReadOutcome.AGREE, ReadOutcome.CORRECT}
    assert binomtest(positive_agreeing[ReadOutcome.CORRECT], 3000, 0.3).pvalue > 1e-4
    assert read_study(POSITIVE, 0, reader, rng).outcome is ReadOutcome.OVERRIDE
    assert read_study(NEGATIVE, 1, reader, rng).outcome is ReadOutcome.OVERRIDE
    # Nothing to amend when both say negative.
    assert {read_study(NEGATIVE, 0, reader, rng).outcome for _ in range(200)} == {ReadOutcome.AGREE}


def test_reads_do_not_depend_on_the_model_decision() -> None:
    reader = Reader(reader_id="R", sensitivity=0.7, specificity=0.8)
    for seed in range(50):
        a = read_study(POSITIVE, 0, reader, np.random.default_rng(seed))
        b = read_study(POSITIVE, 1, reader, np.random.default_rng(seed))
        assert (a.label, a.read_at, a.finding_size_mm) == (b.label, b.read_at, b.finding_size_mm)


def test_read_delay_is_lognormal_with_the_configured_median() -> None:
    reader = Reader(reader_id="R", delay_median_minutes=90.0, delay_sigma=0.7)
    rng = np.random.default_rng(73)
    reads = [read_study(NEGATIVE, 0, reader, rng) for _ in range(2000)]
    log_minutes = np.log([r.delay / timedelta(minutes=1) for r in reads])
    assert float(np.mean(log_minutes)) == pytest.approx(math.log(90.0), abs=4 * 0.7 / math.sqrt(2000))
    assert float(np.std(log_minutes)) == pytest.approx(0.7, rel=0.08)
    assert all(r.read_at == ACQUIRED + r.delay for r in reads)


def test_finding_size_is_reported_only_for_lesions_the_reader_calls() -> None:
    reader = Reader(reader_id="R", sensitivity=0.5, specificity=0.5)
    rng = np.random.default_rng(74)
    for _ in range(200):
        read = read_study(POSITIVE, 1, reader, rng)
        if read.label == 1:
            assert read.finding_size_mm == pytest.approx(12.0, rel=0.5)
        else:
            assert read.finding_size_mm is None
        assert read_study(NEGATIVE, 1, reader, rng).finding_size_mm is None
    with pytest.raises(ValueError, match="model_decision must be 0 or 1"):
        read_study(POSITIVE, 2, reader, rng)


def test_hospital_reads_are_deterministic_and_follow_reader_weights(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario()
    hospital = Hospital(scenario, seed=75)
    batch = hospital.studies(1500)
    reads = [hospital.read(study, model_decision=study.label) for study in batch]
    twin = Hospital(scenario, seed=75)
    again = [twin.read(study, model_decision=study.label) for study in batch.studies[:20]]
    assert reads[:20] == again
    counts = Counter(read.reader_id for read in reads)
    total = sum(reader.weight for reader in scenario.readers)
    for reader in scenario.readers:
        assert binomtest(counts[reader.reader_id], len(reads), reader.weight / total).pvalue > 1e-4
    assert all(read.read_at > study.acquired_at for read, study in zip(reads, batch, strict=True))
