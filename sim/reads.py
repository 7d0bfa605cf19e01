"""Radiologist reads: what a reader reports, how it relates to the model's decision, and when it arrives."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import numpy as np

from sim.lesions import Lesion
from sim.specs import Reader

#: SD of the reader's log-scale error when measuring a lesion's diameter.
_MEASUREMENT_LOG_SD = 0.1


class ReadOutcome(StrEnum):
    """How the reader's final read relates to the model's decision."""

    AGREE = "agree"
    """Same label as the model; finding accepted as is."""
    OVERRIDE = "override"
    """The reader's label differs from the model's decision."""
    CORRECT = "correct"
    """Same (positive) label as the model, but the reader amends the finding."""


class ReadableStudy(Protocol):
    """What a reader needs to know about a study."""

    @property
    def label(self) -> int:
        """Ground truth: 1 when a lesion is present."""
        ...

    @property
    def lesion(self) -> Lesion:
        """The lesion ground truth."""
        ...

    @property
    def acquired_at(self) -> datetime:
        """Acquisition time on the simulated clock."""
        ...


@dataclass(frozen=True)
class Read:
    """A radiologist's final read of one study.

    Attributes:
        reader_id: Who read it.
        label: The label the reader reports (the system's "ground truth"; it can be wrong).
        outcome: Agree, override or correct, relative to the model's decision.
        read_at: When the read was recorded, on the simulated clock.
        delay: Time from acquisition to the read.
        finding_size_mm: The diameter the reader measured, when they reported a lesion that is there.
    """

    reader_id: str
    label: int
    outcome: ReadOutcome
    read_at: datetime
    delay: timedelta
    finding_size_mm: float | None


def read_study(study: ReadableStudy, model_decision: int, reader: Reader, rng: np.random.Generator) -> Read:
    """Simulate ``reader`` reading ``study`` after the model decided ``model_decision``.

    The reader's label depends only on the truth and the reader's sensitivity/specificity, not on the
    model (no automation bias); the outcome then compares it with the model's decision. The random draws
    are the same whatever the decision, so two models can be compared on identical reads.

    Args:
        study: The study (label, lesion, acquisition time).
        model_decision: The model's binary decision (0 or 1).
        reader: The radiologist.
        rng: Random stream for this read.

    Returns:
        The read.

    Raises:
        ValueError: If ``model_decision`` is not 0 or 1.
    """
    if model_decision not in (0, 1):
        raise ValueError(f"model_decision must be 0 or 1, got {model_decision!r}")
    u_label, u_correct = rng.random(2)
    z_delay, z_size = rng.standard_normal(2)
    # The reader is right with probability sensitivity (positives) or specificity (negatives).
    right = u_label < (reader.sensitivity if study.label == 1 else reader.specificity)
    label = study.label if right else 1 - study.label
    if label != model_decision:
        outcome = ReadOutcome.OVERRIDE
    elif label == 1 and u_correct < reader.correction_rate:
        outcome = ReadOutcome.CORRECT
    else:
        outcome = ReadOutcome.AGREE
    delay = timedelta(minutes=reader.delay_median_minutes * math.exp(reader.delay_sigma * float(z_delay)))
    finding_size = None
    if label == 1 and study.lesion.size_mm is not None:
        finding_size = study.lesion.size_mm * math.exp(_MEASUREMENT_LOG_SD * float(z_size))
    return Read(
        reader_id=reader.reader_id,
        label=label,
        outcome=outcome,
        read_at=study.acquired_at + delay,
        delay=delay,
        finding_size_mm=finding_size,
    )


def choose_reader(readers: Sequence[Reader], u: float) -> Reader:
    """Pick a reader in proportion to their weights, from one uniform."""
    weights = np.array([reader.weight for reader in readers], dtype=np.float64)
    cumulative = np.cumsum(weights) / weights.sum()
    return readers[min(int(np.searchsorted(cumulative, u, side="right")), len(readers) - 1)]
