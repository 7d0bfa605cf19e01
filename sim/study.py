"""The record of one simulated study, and a batch of them sharing one image array."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from sim.lesions import Lesion
from sim.specs import Sex


@dataclass(frozen=True)
class Study:
    """One chest radiograph with its metadata and ground truth.

    Attributes:
        index: Position in the hospital's study sequence (drives the phase and the random streams).
        study_uid: StudyInstanceUID (2.25 root).
        series_uid: SeriesInstanceUID.
        sop_uid: SOPInstanceUID.
        accession: Accession number.
        patient_id: Synthetic patient id (``SIM-`` prefix).
        sex: ``F`` or ``M``.
        age: Age in whole years.
        site_id: Acquiring site.
        manufacturer: Scanner manufacturer.
        model: Scanner model.
        modality: ``DX`` or ``CR``.
        protocol: ``CHEST PA`` or ``CHEST AP``.
        pixel_spacing: (row, column) spacing in mm.
        acquired_at: Acquisition time on the simulated clock (UTC).
        label: Ground truth, 1 when a lesion is present.
        lesion: Lesion ground truth.
        phase: Scenario phase in force for this study.
        image: Float32 image of shape (1, H, W); a read-only view into the batch array.
    """

    index: int
    study_uid: str
    series_uid: str
    sop_uid: str
    accession: str
    patient_id: str
    sex: Sex
    age: int
    site_id: str
    manufacturer: str
    model: str
    modality: str
    protocol: str
    pixel_spacing: tuple[float, float]
    acquired_at: datetime
    label: int
    lesion: Lesion
    phase: str
    image: NDArray[np.float32] = field(compare=False, repr=False)


@dataclass(frozen=True)
class StudyBatch:
    """Consecutive studies and their images as one array.

    Attributes:
        images: Float32 array of shape (n, 1, H, W), read-only; ``studies[k].image`` is ``images[k]``.
        studies: The study records, in index order.
    """

    images: NDArray[np.float32] = field(repr=False)
    studies: tuple[Study, ...]

    def __len__(self) -> int:
        return len(self.studies)

    def __iter__(self) -> Iterator[Study]:
        return iter(self.studies)

    @property
    def labels(self) -> NDArray[np.int64]:
        """Ground-truth labels, shape (n,)."""
        return np.array([study.label for study in self.studies], dtype=np.int64)
