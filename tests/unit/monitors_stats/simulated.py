"""Simulator-backed test data for the monitors: studies, reads and a cheap, deterministic stand-in model.

The hospital simulator supplies patients, sites, scanners, lesions (with their contrast and size), images
and radiologist reads. The model under monitoring is a stand-in, so the tests need no trained CNN and
little CPU:

- score (logit) = ``B0 + B1 * (1 - exp(-v / V0)) * label + noise``, where ``v = (contrast / 0.2) * (size / 15 mm)``
  is the lesion's visibility and the noise is standard normal, seeded per (seed, first study). Fainter or
  smaller lesions score lower, so the ``subgroup_degradation`` scenario lowers the affected subgroup's
  sensitivity by itself; the constants give sensitivity ~0.85 at the operating point and a ~10-point drop
  there (measured in the tests);
- served probability = ``sigmoid(CAL_A + CAL_B * score)``, constants fitted once on baseline truth;
- embedding = a fixed random projection of the 8 x 8 average-pooled image (8 components);
- image descriptors = ``sim.intensity_descriptors`` of the image.

Images are generated at reduced size (64 px for drift data, 32 px where images are not looked at) to keep
generation cheap; intensity shifts are defined in SDs of the per-image mean at the scenario's own size,
so a "0.25 SD" shift means the same at any size. Generated arrays are cached as ``.npz`` under pytest's
cache directory, keyed by scenario, seed, range and size.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from services.monitors.core.reference import normalise_sex
from services.monitors.core.window import Window, age_bands
from sim import DESCRIPTOR_NAMES, Hospital, Phase, ScannerChange, Scenario, intensity_descriptors, load_scenario

B0, B1, V0 = -1.0, 3.0, 0.3
CAL_A, CAL_B = -1.93, 2.46
THRESHOLD = 0.31
EMBEDDING_DIM = 8
_POOL = 8
_CACHE_VERSION = "v1"
_CHUNK = 1000


@dataclass(frozen=True)
class SimRows:
    """Per-study arrays of one generated range (no images)."""

    index: NDArray[np.int64]
    truth: NDArray[np.float64]
    read: NDArray[np.float64]
    contrast: NDArray[np.float64]
    size_mm: NDArray[np.float64]
    sex: NDArray[np.str_]
    age: NDArray[np.float64]
    site: NDArray[np.str_]
    manufacturer: NDArray[np.str_]
    scanner_model: NDArray[np.str_]
    pixel_spacing: NDArray[np.float64]
    descriptors: NDArray[np.float64]
    embedding: NDArray[np.float64]
    noise: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.index.size)

    def take(self, rows: NDArray[np.intp] | slice) -> SimRows:
        """A subset of the studies."""
        return SimRows(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    @property
    def visibility(self) -> NDArray[np.float64]:
        """Lesion visibility v (0 without a lesion)."""
        visibility: NDArray[np.float64] = (self.contrast / 0.2) * (self.size_mm / 15.0)
        return visibility

    def scores(self) -> NDArray[np.float64]:
        """The stand-in model's logits."""
        logits: NDArray[np.float64] = B0 + B1 * (1.0 - np.exp(-self.visibility / V0)) * self.truth + self.noise
        return logits


def without_subgroup_degradation(rows: SimRows) -> SimRows:
    """The same studies as if ``subgroup_degradation`` had not happened.

    Its planted change multiplies the lesion contrast and diameter of the matching patients by the
    scenario's scales, so dividing by them undoes it exactly (patients, labels, reads and the stand-in's
    noise do not depend on the change).
    """
    modifiers = [m for phase in load_scenario("subgroup_degradation").phases for m in phase.lesion_modifiers or ()]
    contrast, size_mm = rows.contrast.copy(), rows.size_mm.copy()
    for modifier in modifiers:
        sexes = ("F", "M") if modifier.sex is None else (modifier.sex,)
        affected = np.isin(rows.sex, sexes) & (rows.age >= modifier.min_age) & (rows.age < modifier.max_age)
        contrast[affected] /= modifier.contrast_scale
        size_mm[affected] /= modifier.size_scale
    return dataclasses.replace(rows, contrast=contrast, size_mm=size_mm)


def shifted_scanner(base: Scenario, site: str, shift_sd: float, start: int) -> Scenario:
    """Baseline with one site's scanner shifted in intensity from study ``start`` (same scanner model)."""
    change = ScannerChange(site_id=site, intensity_shift_sd=shift_sd)
    phase = Phase(name=f"{site}_shift", start_study=start, scanner_changes=(change,))
    return dataclasses.replace(base, name=f"{base.name}_{site}_shift", phases=(phase,))


def _projection() -> NDArray[np.float64]:
    return np.random.default_rng(20_250_107).standard_normal((_POOL * _POOL, EMBEDDING_DIM)) / _POOL


def _generate(scenario: Scenario, seed: int, start: int, n: int, images: bool) -> dict[str, NDArray[np.generic]]:
    hospital = Hospital(scenario, seed)
    columns: dict[str, list[NDArray[np.generic]]] = {}
    projection = _projection()
    for offset in range(0, n, _CHUNK):
        batch = hospital.studies(min(_CHUNK, n - offset), start + offset)
        studies = batch.studies
        part: dict[str, NDArray[np.generic]] = {
            "index": np.array([s.index for s in studies], dtype=np.int64),
            "truth": np.array([s.label for s in studies], dtype=np.float64),
            "read": np.array([hospital.read(s, 0).label for s in studies], dtype=np.float64),
            "contrast": np.array([s.lesion.contrast or 0.0 for s in studies], dtype=np.float64),
            "size_mm": np.array([s.lesion.size_mm or 0.0 for s in studies], dtype=np.float64),
            "sex": np.array([s.sex for s in studies], dtype=np.str_),
            "age": np.array([s.age for s in studies], dtype=np.float64),
            "site": np.array([s.site_id for s in studies], dtype=np.str_),
            "manufacturer": np.array([s.manufacturer for s in studies], dtype=np.str_),
            "scanner_model": np.array([s.model for s in studies], dtype=np.str_),
            "pixel_spacing": np.array([s.pixel_spacing[0] for s in studies], dtype=np.float64),
        }
        if images:
            part["descriptors"] = intensity_descriptors(batch.images).as_matrix()
            size = batch.images.shape[-1]
            pooled = batch.images.reshape(len(studies), _POOL, size // _POOL, _POOL, size // _POOL).mean(axis=(2, 4))
            part["embedding"] = pooled.reshape(len(studies), -1).astype(np.float64) @ projection
        else:
            part["descriptors"] = np.zeros((len(studies), 0))
            part["embedding"] = np.zeros((len(studies), 0))
        for key, values in part.items():
            columns.setdefault(key, []).append(values)
    data = {key: np.concatenate(values) for key, values in columns.items()}
    data["noise"] = np.random.default_rng([seed, 99, start]).standard_normal(n)
    return data


def simulate(
    scenario: str | Scenario,
    seed: int,
    start: int,
    n: int,
    *,
    image_size: int,
    images: bool,
    cache: Path | None,
) -> SimRows:
    """Studies ``start .. start + n - 1`` of a seeded hospital, as arrays (cached on disk when possible).

    Args:
        scenario: Shipped scenario name or a scenario.
        seed: Hospital seed.
        start: First study index.
        n: Number of studies.
        image_size: Image side to generate at.
        images: Whether to compute descriptors and embeddings (costs image rendering at this size).
        cache: Folder for the cache, or None for no caching.
    """
    base = load_scenario(scenario) if isinstance(scenario, str) else scenario
    sized = dataclasses.replace(base, image_size=image_size)
    # The scenario's full content is in the key: scenarios are edited, and stale data must not survive it.
    content = hashlib.sha256(repr(sized).encode()).hexdigest()[:16]
    key = f"{_CACHE_VERSION}-{sized.name}-{content}-{seed}-{start}-{n}-{int(images)}.npz"
    path = cache / key if cache is not None else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as archive:
            return SimRows(**{name: archive[name] for name in archive.files})
    data = _generate(sized, seed, start, n, images)
    if path is not None:
        np.savez(path, **data)  # type: ignore[arg-type]
    return SimRows(**data)  # type: ignore[arg-type]


def served_probability(scores: NDArray[np.float64], logit_shift: float = 0.0) -> NDArray[np.float64]:
    """The stand-in's served probability, optionally miscalibrated by a logit offset."""
    probability: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-(CAL_A + CAL_B * scores + logit_shift)))
    return probability


def to_window(
    rows: SimRows,
    *,
    arm: str = "canary",
    version: str = "1",
    labelled: NDArray[np.bool_] | None = None,
    logit_shift: float = 0.0,
    features: bool = True,
) -> Window:
    """A monitoring window of the stand-in model over simulated studies, reads as labels.

    Args:
        rows: The studies.
        arm: Arm or ``reference``.
        version: Model version.
        labelled: Which studies have a read yet (all when None).
        logit_shift: Planted miscalibration of the served probability.
        features: Include descriptors and embeddings (when generated).
    """
    scores = rows.scores()
    probability = served_probability(scores, logit_shift)
    decision = (probability >= THRESHOLD).astype(np.float64)
    label = rows.read.copy()
    if labelled is not None:
        label[~labelled] = np.nan
    feature_columns: dict[str, NDArray[np.float64]] = {}
    if features:
        names = DESCRIPTOR_NAMES[: rows.descriptors.shape[1]]
        feature_columns.update({f"intensity.{name}": rows.descriptors[:, i] for i, name in enumerate(names)})
        feature_columns.update({f"embedding.{i}": rows.embedding[:, i] for i in range(rows.embedding.shape[1])})
        feature_columns["acquisition.pixel_spacing"] = rows.pixel_spacing
    return Window.from_columns(
        model_name="chest-nodule",
        model_version=version,
        arm=arm,
        score=scores,
        probability=probability,
        decision=decision,
        label=label,
        features=feature_columns,
        attributes={
            "site": rows.site,
            "manufacturer": rows.manufacturer,
            "manufacturer_model": rows.scanner_model,
            "sex": normalise_sex(rows.sex),
            "age_band": age_bands(rows.age),
        },
    )
