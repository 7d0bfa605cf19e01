"""The seeded hospital: turns a scenario and a seed into studies, images and radiologist reads.

Every study draws from its own random stream, keyed by (seed, study index), with a fixed layout of draws.
So a study is the same whichever batch it is generated in, the same seed gives identical bytes, and two
scenarios that differ only in, say, a scanner produce the same patients and lesions: a paired comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sim.anatomy import ANATOMY_UNIFORMS, TEXTURE_NORMALS, AnatomyParams, FloatArray
from sim.identifiers import accession_number, patient_id, uid_from_bytes
from sim.imaging import DEFAULT_CHUNK, RenderInputs, render_images
from sim.lesions import (
    LESION_UNIFORMS,
    NO_LESION,
    Lesion,
    LesionGeometry,
    draw_lesions,
    mm_to_pixel,
    modifier_effect,
)
from sim.loader import load_scenario
from sim.population import prevalences, sample_ages, sample_sexes
from sim.reads import Read, choose_reader, read_study
from sim.scanners import AcquisitionBatch, effective_spacing_mm
from sim.specs import Scanner, Scenario, Sex, Site
from sim.study import Study, StudyBatch
from sim.timeline import Conditions, Timeline

# Stream keys: a study's content and its read draw from different streams, so reading does not disturb
# generation.
_STUDY_STREAM = 0
_READ_STREAM = 1

# Layout of each study's uniforms. Columns are fixed: changing them changes every generated study.
_U_SITE = 0
_U_SCANNER = 1
_U_SEX = 2
_U_AGE = 3
_U_LABEL = 4
_U_PROTOCOL = 5
_U_CLOCK = 6
_U_LESION = slice(7, 7 + LESION_UNIFORMS)
_U_ANATOMY = slice(_U_LESION.stop, _U_LESION.stop + ANATOMY_UNIFORMS)
_UNIFORMS = _U_ANATOMY.stop
_UID_BYTES = 16
_PATIENT_NUMBERS = 10**10
#: Studies are spread over their slot on the simulated clock, but never past it, so time order = index order.
_CLOCK_JITTER = 0.9
_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class _Draws:
    """The random numbers behind a range of studies (arrays are filled in place once)."""

    indices: range
    uniforms: NDArray[np.float64]
    texture: FloatArray
    noise: FloatArray
    uids: list[tuple[str, str, str]]
    patient_numbers: list[int]


@dataclass(frozen=True)
class _Cohort:
    """Per-study facts derived from the draws and the scenario's conditions."""

    conditions: list[Conditions]
    anatomy: AnatomyParams
    sites: list[Site]
    scanners: list[Scanner]
    sexes: list[Sex]
    ages: NDArray[np.int64]
    labels: NDArray[np.int64]
    lesions: LesionGeometry
    subgroups: list[tuple[str, ...]]
    spacing: NDArray[np.float64]
    drift_offsets: NDArray[np.float64]


def _pick(weights: tuple[float, ...], u: float) -> int:
    cumulative = np.cumsum(weights) / np.sum(weights)
    return min(int(np.searchsorted(cumulative, u, side="right")), len(weights) - 1)


class Hospital:
    """A simulated hospital running one scenario.

    Example:
        >>> hospital = Hospital("baseline", seed=7)
        >>> batch = hospital.studies(8)
        >>> batch.images.shape
        (8, 1, 128, 128)
    """

    def __init__(self, scenario: Scenario | str | Path, seed: int, *, chunk: int = DEFAULT_CHUNK) -> None:
        """Set up the hospital; nothing is generated until asked.

        Args:
            scenario: A scenario, or the name of a shipped scenario, or a path to a scenario YAML file.
            seed: Non-negative integer seed.
            chunk: Images rendered together (memory/speed trade-off only; does not change results).

        Raises:
            ValueError: If the seed is negative or the scenario cannot be loaded.
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self._scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self._seed = seed
        self._chunk = chunk
        self._timeline = Timeline(self._scenario)

    @property
    def scenario(self) -> Scenario:
        """The scenario this hospital runs."""
        return self._scenario

    @property
    def seed(self) -> int:
        """The seed."""
        return self._seed

    @property
    def timeline(self) -> Timeline:
        """The scenario's phases over study indices."""
        return self._timeline

    def studies(self, n: int, start_index: int = 0) -> StudyBatch:
        """Generate studies ``start_index .. start_index + n - 1``.

        Args:
            n: Number of studies (memory grows with n: about 2 x n x H x W x 4 bytes).
            start_index: Index of the first study.

        Returns:
            The batch: images of shape (n, 1, H, W) and the study records.
        """
        if n < 0 or start_index < 0:
            raise ValueError(f"n and start_index must be >= 0, got n={n}, start_index={start_index}")
        draws = self._draw(range(start_index, start_index + n))
        cohort = self._cohort(draws)
        images = render_images(
            RenderInputs(
                anatomy=cohort.anatomy,
                texture_normals=draws.texture,
                noise=draws.noise,
                spacing_mm=cohort.spacing,
                lesions=cohort.lesions,
                has_lesion=cohort.labels == 1,
                acquisition=AcquisitionBatch.from_scanners(cohort.scanners, cohort.drift_offsets),
                size=self._scenario.image_size,
            ),
            chunk=self._chunk,
        )
        images.setflags(write=False)
        return StudyBatch(images=images, studies=self._records(draws, cohort, images))

    def _draw(self, indices: range) -> _Draws:
        """Every random number the studies need, each study from its own stream."""
        n, size = len(indices), self._scenario.image_size
        draws = _Draws(
            indices=indices,
            uniforms=np.empty((n, _UNIFORMS), dtype=np.float64),
            texture=np.empty((n, TEXTURE_NORMALS), dtype=np.float32),
            noise=np.empty((n, size, size), dtype=np.float32),
            uids=[],
            patient_numbers=[],
        )
        for k, index in enumerate(indices):
            rng = np.random.default_rng([self._seed, _STUDY_STREAM, index])
            draws.uniforms[k] = rng.random(_UNIFORMS)
            raw = rng.bytes(3 * _UID_BYTES)
            draws.uids.append(
                (
                    uid_from_bytes(raw[:_UID_BYTES]),
                    uid_from_bytes(raw[_UID_BYTES : 2 * _UID_BYTES]),
                    uid_from_bytes(raw[2 * _UID_BYTES :]),
                )
            )
            draws.patient_numbers.append(int(rng.integers(_PATIENT_NUMBERS)))
            draws.texture[k] = rng.standard_normal(TEXTURE_NORMALS, dtype=np.float32)
            draws.noise[k] = rng.standard_normal((size, size), dtype=np.float32)
        return draws

    def _cohort(self, draws: _Draws) -> _Cohort:
        """Who the patients are, where they are scanned, who has a lesion and what it looks like."""
        scenario, u = self._scenario, draws.uniforms
        conditions = [self._timeline.conditions_at(index) for index in draws.indices]
        site_weights = tuple(site.weight for site in scenario.sites)
        sites: list[Site] = []
        scanners: list[Scanner] = []
        for k, condition in enumerate(conditions):
            site = condition.sites[_pick(site_weights, u[k, _U_SITE])]
            sites.append(site)
            scanner_weights = site.scanner_weights or tuple(1.0 for _ in site.scanners)
            scanners.append(site.scanners[_pick(scanner_weights, u[k, _U_SCANNER])])

        sexes = sample_sexes(u[:, _U_SEX], scenario.population)
        ages = sample_ages(u[:, _U_AGE], scenario.population)
        risk = prevalences([condition.prevalence for condition in conditions], sexes, ages)
        anatomy = AnatomyParams.from_uniforms(u[:, _U_ANATOMY])
        lesions = draw_lesions(u[:, _U_LESION], anatomy, scenario.lesions)
        effects = [
            modifier_effect(condition.lesion_modifiers, sex, int(age))
            for condition, sex, age in zip(conditions, sexes, ages, strict=True)
        ]
        lesions = LesionGeometry(
            x_mm=lesions.x_mm,
            y_mm=lesions.y_mm,
            size_mm=lesions.size_mm * np.array([effect[1] for effect in effects]),
            contrast=lesions.contrast * np.array([effect[0] for effect in effects]),
        )
        size = scenario.image_size
        return _Cohort(
            conditions=conditions,
            anatomy=anatomy,
            sites=sites,
            scanners=scanners,
            sexes=sexes,
            ages=ages,
            labels=(u[:, _U_LABEL] < risk).astype(np.int64),
            lesions=lesions,
            subgroups=[effect[2] for effect in effects],
            spacing=np.array([effective_spacing_mm(scanner, size) for scanner in scanners], dtype=np.float64),
            drift_offsets=np.array(
                [
                    self._timeline.drift_offset(index, site.site_id, scanner)
                    for index, site, scanner in zip(draws.indices, sites, scanners, strict=True)
                ],
                dtype=np.float64,
            ),
        )

    def _records(self, draws: _Draws, cohort: _Cohort, images: FloatArray) -> tuple[Study, ...]:
        scenario = self._scenario
        rows = mm_to_pixel(cohort.lesions.y_mm, cohort.spacing, scenario.image_size)
        cols = mm_to_pixel(cohort.lesions.x_mm, cohort.spacing, scenario.image_size)
        slot = _SECONDS_PER_DAY / scenario.studies_per_day
        ap_fraction = scenario.population.ap_fraction
        records = []
        for k, index in enumerate(draws.indices):
            lesion = NO_LESION
            if cohort.labels[k] == 1:
                lesion = Lesion(
                    present=True,
                    center_row=float(rows[k]),
                    center_col=float(cols[k]),
                    size_mm=float(cohort.lesions.size_mm[k]),
                    contrast=float(cohort.lesions.contrast[k]),
                    subgroups=cohort.subgroups[k],
                )
            study_uid, series_uid, sop_uid = draws.uids[k]
            scanner = cohort.scanners[k]
            seconds = (index + _CLOCK_JITTER * draws.uniforms[k, _U_CLOCK]) * slot
            records.append(
                Study(
                    index=index,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    sop_uid=sop_uid,
                    accession=accession_number(index),
                    patient_id=patient_id(draws.patient_numbers[k]),
                    sex=cohort.sexes[k],
                    age=int(cohort.ages[k]),
                    site_id=cohort.sites[k].site_id,
                    manufacturer=scanner.manufacturer,
                    model=scanner.model,
                    modality=scanner.modality,
                    protocol="CHEST AP" if draws.uniforms[k, _U_PROTOCOL] < ap_fraction else "CHEST PA",
                    pixel_spacing=(float(cohort.spacing[k]), float(cohort.spacing[k])),
                    acquired_at=scenario.start_time + timedelta(seconds=seconds),
                    label=int(cohort.labels[k]),
                    lesion=lesion,
                    phase=cohort.conditions[k].phase,
                    image=images[k],
                )
            )
        return tuple(records)

    def iter_studies(self, n: int, start_index: int = 0, batch_size: int = 256) -> Iterator[Study]:
        """Yield ``n`` studies one at a time, generating them ``batch_size`` at a time to bound memory."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for offset in range(0, n, batch_size):
            yield from self.studies(min(batch_size, n - offset), start_index + offset)

    def read(self, study: Study, model_decision: int) -> Read:
        """The radiologist's read of ``study`` given the model's decision (deterministic per seed and study).

        Args:
            study: A study this hospital generated.
            model_decision: The model's binary decision.

        Returns:
            The read: reported label, outcome relative to the model, read time.
        """
        rng = np.random.default_rng([self._seed, _READ_STREAM, study.index])
        reader = choose_reader(self._scenario.readers, float(rng.random()))
        return read_study(study, model_decision, reader, rng)
