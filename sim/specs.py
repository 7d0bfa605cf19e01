"""The simulator's configuration as data: validated, frozen dataclasses that a scenario YAML maps onto.

Every class validates itself on construction (pydantic dataclasses), rejects unknown keys, and reports
problems with the path of the offending field, so a typo in a scenario file fails loudly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field
from pydantic.dataclasses import dataclass

_STRICT_KEYS = ConfigDict(extra="forbid")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Age = Annotated[int, Field(ge=0, le=200)]
Sex = Literal["F", "M"]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")]
#: Scanner pixel spacings are stated for a 128x128 matrix; other matrices are resampled to the same FOV.
REFERENCE_MATRIX = 128


@dataclass(frozen=True, config=_STRICT_KEYS)
class Scanner:
    """An X-ray unit and how it turns the ideal image into pixel values.

    Acquisition, in order: Gaussian blur (``blur_sigma_px``), contrast curve ``ideal ** gamma``, then
    ``intensity_scale * value + intensity_offset``, then additive Gaussian noise of SD ``noise_sd``.

    Attributes:
        manufacturer: Manufacturer name written to DICOM (0008,0070).
        model: Model name written to DICOM (0008,1090).
        modality: ``DX`` (digital radiography) or ``CR`` (computed radiography).
        intensity_scale: Gain applied after the contrast curve.
        intensity_offset: Offset added after the gain.
        noise_sd: SD of the additive noise, in output units.
        blur_sigma_px: Detector blur, Gaussian SD in pixels (0 = none).
        gamma: Contrast-curve exponent (1 = linear).
        pixel_spacing_mm: Pixel spacing at the 128x128 reference matrix.
    """

    manufacturer: Identifier
    model: Identifier
    modality: Literal["DX", "CR"] = "DX"
    intensity_scale: PositiveFloat = 1.0
    intensity_offset: FiniteFloat = 0.0
    noise_sd: NonNegativeFloat = 0.02
    blur_sigma_px: Annotated[float, Field(ge=0.0, le=8.0)] = 0.6
    gamma: Annotated[float, Field(gt=0.0, le=5.0)] = 1.0
    pixel_spacing_mm: Annotated[float, Field(ge=1.0, le=6.0)] = 3.0


@dataclass(frozen=True, config=_STRICT_KEYS)
class Site:
    """A hospital site and the scanners it uses.

    Attributes:
        site_id: Site identifier, written to DICOM as InstitutionName.
        scanners: Scanners in use; the first is the site's main unit.
        weight: Relative share of the hospital's studies acquired here.
        scanner_weights: Relative use of each scanner (default: equal).
    """

    site_id: Identifier
    scanners: Annotated[tuple[Scanner, ...], Field(min_length=1)]
    weight: PositiveFloat = 1.0
    scanner_weights: tuple[PositiveFloat, ...] | None = None

    def __post_init__(self) -> None:
        if self.scanner_weights is not None and len(self.scanner_weights) != len(self.scanners):
            counts = f"{len(self.scanner_weights)} weights for {len(self.scanners)} scanners"
            raise ValueError(f"scanner_weights: {counts}")


@dataclass(frozen=True, config=_STRICT_KEYS)
class Population:
    """Who gets a chest radiograph.

    Attributes:
        female_fraction: Share of female patients.
        age_mean: Mean of the (truncated normal) age distribution.
        age_sd: SD of the age distribution before truncation.
        age_min: Youngest age, inclusive.
        age_max: Oldest age, inclusive.
        ap_fraction: Share of AP (usually bedside) rather than PA views.
    """

    female_fraction: Probability = 0.5
    age_mean: Annotated[float, Field(ge=0.0, le=120.0)] = 58.0
    age_sd: PositiveFloat = 17.0
    age_min: Age = 18
    age_max: Age = 95
    ap_fraction: Probability = 0.2

    def __post_init__(self) -> None:
        if self.age_min >= self.age_max:
            raise ValueError(f"age_min ({self.age_min}) must be below age_max ({self.age_max})")


@dataclass(frozen=True, config=_STRICT_KEYS)
class AgeBand:
    """A half-open age interval ``[min_age, max_age)`` with a prevalence multiplier."""

    min_age: Age
    max_age: Age
    multiplier: NonNegativeFloat

    def __post_init__(self) -> None:
        if self.min_age >= self.max_age:
            raise ValueError(f"min_age ({self.min_age}) must be below max_age ({self.max_age})")


@dataclass(frozen=True, config=_STRICT_KEYS)
class Prevalence:
    """Probability that a study is positive: ``base x sex multiplier x age-band multiplier``.

    Ages outside every band use multiplier 1.

    Attributes:
        base: Prevalence for a patient whose multipliers are all 1.
        female_multiplier: Multiplier for female patients.
        male_multiplier: Multiplier for male patients.
        age_bands: Non-overlapping age bands with their multipliers.
    """

    base: Probability
    female_multiplier: NonNegativeFloat = 1.0
    male_multiplier: NonNegativeFloat = 1.0
    age_bands: tuple[AgeBand, ...] = ()

    def __post_init__(self) -> None:
        bands = sorted(self.age_bands, key=lambda band: band.min_age)
        for before, after in itertools.pairwise(bands):
            if after.min_age < before.max_age:
                raise ValueError(
                    f"age_bands overlap: [{before.min_age}, {before.max_age}) and "
                    + f"[{after.min_age}, {after.max_age})"
                )
        for sex, sex_multiplier in (("F", self.female_multiplier), ("M", self.male_multiplier)):
            for band_label, band_multiplier in [("outside all bands", 1.0)] + [
                (f"age band [{band.min_age}, {band.max_age})", band.multiplier) for band in bands
            ]:
                p = self.base * sex_multiplier * band_multiplier
                if p > 1.0:
                    raise ValueError(f"base x multipliers = {p:.3f} > 1 for sex={sex}, {band_label}")

    def multiplier_for_age(self, age: int) -> float:
        """The age-band multiplier that applies at ``age``."""
        for band in self.age_bands:
            if band.min_age <= age < band.max_age:
                return band.multiplier
        return 1.0

    def probability(self, sex: Sex, age: int) -> float:
        """Prevalence for one patient group."""
        sex_multiplier = self.female_multiplier if sex == "F" else self.male_multiplier
        return self.base * sex_multiplier * self.multiplier_for_age(age)


@dataclass(frozen=True, config=_STRICT_KEYS)
class LesionModifier:
    """Makes lesions in one patient subgroup harder to see (the planted subgroup weakness).

    A study matches when its sex equals ``sex`` (any sex when None) and ``min_age <= age < max_age``.

    Attributes:
        subgroup: Human-readable name of the subgroup, e.g. ``female_70_plus``.
        sex: Sex the modifier applies to, or None for both.
        min_age: Youngest matching age, inclusive.
        max_age: Oldest matching age, exclusive.
        contrast_scale: Multiplier on lesion contrast.
        size_scale: Multiplier on lesion diameter.
    """

    subgroup: Identifier
    sex: Sex | None = None
    min_age: Age = 0
    max_age: Age = 200
    contrast_scale: PositiveFloat = 1.0
    size_scale: PositiveFloat = 1.0

    def __post_init__(self) -> None:
        if self.min_age >= self.max_age:
            raise ValueError(f"min_age ({self.min_age}) must be below max_age ({self.max_age})")

    def matches(self, sex: Sex, age: int) -> bool:
        """Whether a patient belongs to this subgroup."""
        return (self.sex is None or self.sex == sex) and self.min_age <= age < self.max_age


@dataclass(frozen=True, config=_STRICT_KEYS)
class LesionSpec:
    """How nodules look: diameter log-uniform in ``[size_mm_min, size_mm_max]``, contrast uniform.

    Contrast is the Gaussian blob's peak, in ideal-image units (soft tissue ≈ 0.45, aerated lung ≈ 0.2).
    """

    size_mm_min: PositiveFloat = 6.0
    size_mm_max: PositiveFloat = 28.0
    contrast_min: PositiveFloat = 0.07
    contrast_max: PositiveFloat = 0.25

    def __post_init__(self) -> None:
        if self.size_mm_min > self.size_mm_max:
            raise ValueError(f"size_mm_min ({self.size_mm_min}) exceeds size_mm_max ({self.size_mm_max})")
        if self.contrast_min > self.contrast_max:
            raise ValueError(f"contrast_min ({self.contrast_min}) exceeds contrast_max ({self.contrast_max})")


@dataclass(frozen=True, config=_STRICT_KEYS)
class Reader:
    """A radiologist: accuracy against the truth, how late the read arrives, how often they amend findings.

    Attributes:
        reader_id: Synthetic reader identifier.
        sensitivity: P(reports positive | lesion present).
        specificity: P(reports negative | no lesion).
        delay_median_minutes: Median time from acquisition to the read.
        delay_sigma: Log-space SD of the (lognormal) read delay.
        correction_rate: P(amends the finding | agrees with a positive model decision).
        weight: Relative share of studies this reader reads.
    """

    reader_id: Identifier
    sensitivity: Probability = 0.9
    specificity: Probability = 0.95
    delay_median_minutes: PositiveFloat = 180.0
    delay_sigma: Annotated[float, Field(ge=0.0, le=4.0)] = 1.0
    correction_rate: Probability = 0.1
    weight: PositiveFloat = 1.0


@dataclass(frozen=True, config=_STRICT_KEYS)
class ScannerChange:
    """From a phase on, a site's scanner is replaced and/or its intensity shifted.

    Attributes:
        site_id: Site whose scanner changes.
        scanner_index: Which of the site's scanners changes.
        replace_with: The new unit (None keeps the current one, e.g. to model a recalibration).
        intensity_shift_sd: Offset change in SDs of the per-image mean intensity under the replaced
            scanner (see ``sim.scanners.mean_intensity_sd``).
    """

    site_id: Identifier
    scanner_index: Annotated[int, Field(ge=0)] = 0
    replace_with: Scanner | None = None
    intensity_shift_sd: FiniteFloat = 0.0


@dataclass(frozen=True, config=_STRICT_KEYS)
class IntensityDrift:
    """A slow intensity offset drift, starting at the phase that sets it.

    Attributes:
        sd_per_1000_studies: Offset change per 1,000 hospital studies, in per-image-mean SDs.
        site_ids: Sites that drift (empty = all).
    """

    sd_per_1000_studies: FiniteFloat
    site_ids: tuple[Identifier, ...] = ()


@dataclass(frozen=True, config=_STRICT_KEYS)
class Phase:
    """A change that holds from ``start_study`` (or ``start_day``) on. Phases are cumulative.

    A field left unset keeps whatever the previous phases established. A new ``intensity_drift`` ends the
    previous drift (the offset it accumulated stays); ``sd_per_1000_studies: 0`` freezes the drift.

    Attributes:
        name: Phase name, recorded on each study.
        start_study: First study index of the phase.
        start_day: Alternatively, the first simulated day (converted with ``studies_per_day``).
        scanner_changes: Scanners replaced or shifted.
        prevalence: New prevalence model.
        lesion_modifiers: New set of subgroup lesion modifiers (replaces the current set).
        intensity_drift: New drift rate.
    """

    name: Identifier
    start_study: Annotated[int, Field(ge=0)] | None = None
    start_day: NonNegativeFloat | None = None
    scanner_changes: tuple[ScannerChange, ...] = ()
    prevalence: Prevalence | None = None
    lesion_modifiers: tuple[LesionModifier, ...] | None = None
    intensity_drift: IntensityDrift | None = None

    def __post_init__(self) -> None:
        if (self.start_study is None) == (self.start_day is None):
            raise ValueError("give exactly one of start_study and start_day")


def _check_unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what}: duplicate id {value!r}")
        seen.add(value)


@dataclass(frozen=True, config=_STRICT_KEYS)
class Scenario:
    """A simulated hospital over time, and the ground-truth change it plants.

    Attributes:
        name: Scenario name.
        description: What the scenario is for.
        planted: The ground-truth change a monitor should detect (or "none" for a baseline).
        sites: Hospital sites.
        readers: Radiologists.
        population: Patient demographics.
        prevalence: Baseline prevalence model.
        lesions: Baseline lesion appearance.
        lesion_modifiers: Baseline subgroup lesion modifiers.
        phases: Changes over time, in start order.
        start_time: Simulated clock at study 0 (timezone-aware).
        studies_per_day: Hospital throughput; maps study indices to simulated time.
        image_size: Image side in pixels.
    """

    name: Identifier
    description: str
    planted: str
    sites: Annotated[tuple[Site, ...], Field(min_length=1)]
    readers: Annotated[tuple[Reader, ...], Field(min_length=1)]
    population: Population = Population()
    prevalence: Prevalence = Prevalence(base=0.2)
    lesions: LesionSpec = LesionSpec()
    lesion_modifiers: tuple[LesionModifier, ...] = ()
    phases: tuple[Phase, ...] = ()
    start_time: AwareDatetime = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    studies_per_day: PositiveFloat = 400.0
    image_size: Annotated[int, Field(ge=32, le=512)] = 128

    def __post_init__(self) -> None:
        _check_unique((site.site_id for site in self.sites), "sites")
        _check_unique((reader.reader_id for reader in self.readers), "readers")
        _check_unique((phase.name for phase in self.phases), "phases")
        scanner_counts = {site.site_id: len(site.scanners) for site in self.sites}
        known = ", ".join(scanner_counts)
        previous_start = -1
        for i, phase in enumerate(self.phases):
            start = self.phase_start(phase)
            if start < previous_start:
                problem = f"starts at study {start}, before phases[{i - 1}]"
                raise ValueError(f"phases[{i}] ({phase.name!r}) {problem}")
            previous_start = start
            for j, change in enumerate(phase.scanner_changes):
                where = f"phases[{i}].scanner_changes[{j}]"
                if change.site_id not in scanner_counts:
                    raise ValueError(f"{where}.site_id: unknown site {change.site_id!r} (known: {known})")
                count = scanner_counts[change.site_id]
                if change.scanner_index >= count:
                    raise ValueError(
                        f"{where}.scanner_index: site {change.site_id!r} has {count} scanner(s), "
                        f"index {change.scanner_index} is out of range"
                    )
            if phase.intensity_drift is not None:
                for site_id in phase.intensity_drift.site_ids:
                    if site_id not in scanner_counts:
                        raise ValueError(
                            f"phases[{i}].intensity_drift.site_ids: unknown site {site_id!r} (known: {known})"
                        )

    def phase_start(self, phase: Phase) -> int:
        """First study index of ``phase``."""
        if phase.start_study is not None:
            return phase.start_study
        # Phase validation guarantees start_day is set when start_study is not.
        return math.ceil((phase.start_day or 0.0) * self.studies_per_day)
