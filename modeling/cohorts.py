"""Simulated cohorts for training, calibration, validation and testing, drawn from the hospital simulator.

Each split is a fixed range of study indices of one seeded hospital, far enough apart that they never
overlap, so the same seed always yields the same splits and two versions trained with one seed are
compared on identical patients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kernel import vocabulary
from modeling.metrics import age_band
from sim import Hospital, Study

#: First study index of each split. Training uses indices from 0 up.
CALIBRATION_START = 1_000_000
VALIDATION_START = 2_000_000
TEST_START = 3_000_000
_GENERATION_CHUNK = 1000


@dataclass(frozen=True)
class Cohort:
    """Images, labels and acquisition/patient context of consecutive simulated studies.

    Attributes:
        images: Float32 images, shape (n, 1, H, W).
        labels: Ground truth 0/1, shape (n,).
        index: Study index in the hospital's sequence, shape (n,).
        site: Acquiring site per study.
        manufacturer: Scanner manufacturer per study.
        model: Scanner model per study.
        pixel_spacing: Pixel spacing in mm per study.
        sex: ``F`` or ``M`` per study.
        age: Age in years per study.
    """

    images: NDArray[np.float32]
    labels: NDArray[np.int64]
    index: NDArray[np.int64]
    site: NDArray[np.str_]
    manufacturer: NDArray[np.str_]
    model: NDArray[np.str_]
    pixel_spacing: NDArray[np.float64]
    sex: NDArray[np.str_]
    age: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def scanner(self) -> NDArray[np.str_]:
        """``"<manufacturer> <model>"`` per study: how scanners are named in specs and reports."""
        return np.char.add(np.char.add(self.manufacturer, " "), self.model)

    @property
    def age_band(self) -> NDArray[np.str_]:
        """Reporting age band per study (see :data:`modeling.metrics.AGE_BANDS`)."""
        return np.asarray([age_band(int(a)) for a in self.age], dtype=np.str_)

    def subgroups(self) -> dict[str, NDArray[np.str_]]:
        """The subgroup dimensions reported for every version, in report order, labelled with the shared
        vocabulary (:mod:`kernel.vocabulary`) so validation reports name groups as monitors and gates do."""
        return {
            vocabulary.SITE: self.site,
            vocabulary.MANUFACTURER: self.manufacturer,
            vocabulary.MANUFACTURER_MODEL: self.model,
            vocabulary.SEX: vocabulary.sex_labels(self.sex),
            vocabulary.AGE_BAND: self.age_band,
        }

    def select(self, mask: NDArray[np.bool_]) -> Cohort:
        """The studies where ``mask`` is true."""
        return Cohort(
            images=self.images[mask],
            labels=self.labels[mask],
            index=self.index[mask],
            site=self.site[mask],
            manufacturer=self.manufacturer[mask],
            model=self.model[mask],
            pixel_spacing=self.pixel_spacing[mask],
            sex=self.sex[mask],
            age=self.age[mask],
        )


def simulate_cohort(scenario: str, seed: int, start: int, n: int) -> Cohort:
    """Generate studies ``start .. start + n - 1`` of the seeded hospital running ``scenario``.

    Args:
        scenario: A shipped scenario name or a scenario YAML path.
        seed: Hospital seed.
        start: First study index.
        n: Number of studies.

    Returns:
        The cohort; its image array is writable and owned by the cohort.
    """
    hospital = Hospital(scenario, seed=seed)
    size = hospital.scenario.image_size
    images = np.empty((n, 1, size, size), dtype=np.float32)
    studies: list[Study] = []
    # Generating in chunks bounds the simulator's temporaries to one chunk.
    for offset in range(0, n, _GENERATION_CHUNK):
        batch = hospital.studies(min(_GENERATION_CHUNK, n - offset), start + offset)
        images[offset : offset + len(batch)] = batch.images
        studies.extend(batch.studies)
    return Cohort(
        images=images,
        labels=np.asarray([s.label for s in studies], dtype=np.int64),
        index=np.asarray([s.index for s in studies], dtype=np.int64),
        site=np.asarray([s.site_id for s in studies], dtype=np.str_),
        manufacturer=np.asarray([s.manufacturer for s in studies], dtype=np.str_),
        model=np.asarray([s.model for s in studies], dtype=np.str_),
        pixel_spacing=np.asarray([s.pixel_spacing[0] for s in studies], dtype=np.float64),
        sex=np.asarray([s.sex for s in studies], dtype=np.str_),
        age=np.asarray([s.age for s in studies], dtype=np.int64),
    )


@dataclass(frozen=True)
class EvaluationCohorts:
    """The held-out splits every version of one seed shares.

    Attributes:
        calibration: Fits the temperature.
        validation: Chooses the operating threshold; becomes the reference profile.
        test: Untouched by any fitting; the reported metrics come from here.
    """

    calibration: Cohort
    validation: Cohort
    test: Cohort


def evaluation_cohorts(
    scenario: str, seed: int, calibration: int = 2000, validation: int = 2000, test: int = 4000
) -> EvaluationCohorts:
    """Generate the calibration, validation and test splits.

    Args:
        scenario: Scenario the hospital runs.
        seed: Hospital seed.
        calibration: Calibration studies.
        validation: Validation studies.
        test: Test studies.
    """
    return EvaluationCohorts(
        calibration=simulate_cohort(scenario, seed, CALIBRATION_START, calibration),
        validation=simulate_cohort(scenario, seed, VALIDATION_START, validation),
        test=simulate_cohort(scenario, seed, TEST_START, test),
    )
