"""Resolves a scenario's phases into the conditions that hold at each study index."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass

from sim.scanners import mean_intensity_sd
from sim.specs import LesionModifier, Prevalence, Scanner, Scenario, Site

#: Name of the conditions before the first phase.
BASELINE_PHASE = "baseline"


@dataclass(frozen=True)
class Conditions:
    """What holds for the studies of one phase.

    Attributes:
        phase: Phase name (``baseline`` before the first phase).
        start_study: First study index of the phase.
        sites: Sites with every scanner change so far applied (offset shifts included).
        prevalence: Prevalence model in force.
        lesion_modifiers: Subgroup lesion modifiers in force.
    """

    phase: str
    start_study: int
    sites: tuple[Site, ...]
    prevalence: Prevalence
    lesion_modifiers: tuple[LesionModifier, ...]


@dataclass(frozen=True)
class _DriftSegment:
    start: int
    end: int | None
    sd_per_study: float
    site_ids: frozenset[str]

    def accumulated(self, index: int, site_id: str) -> float:
        if self.site_ids and site_id not in self.site_ids:
            return 0.0
        stop = index if self.end is None else min(index, self.end)
        return self.sd_per_study * max(0, stop - self.start)


class Timeline:
    """The scenario's phases laid out over study indices."""

    def __init__(self, scenario: Scenario) -> None:
        """Resolve every phase once, so per-study lookups are a bisection.

        Args:
            scenario: The scenario whose phases to resolve.
        """
        self._image_size = scenario.image_size
        current = Conditions(
            phase=BASELINE_PHASE,
            start_study=0,
            sites=scenario.sites,
            prevalence=scenario.prevalence,
            lesion_modifiers=scenario.lesion_modifiers,
        )
        self._starts: list[int] = [0]
        self._conditions: list[Conditions] = [current]
        self._drift: list[_DriftSegment] = []
        for phase in scenario.phases:
            start = scenario.phase_start(phase)
            sites = {site.site_id: site for site in current.sites}
            for change in phase.scanner_changes:
                site = sites[change.site_id]
                old = site.scanners[change.scanner_index]
                new = change.replace_with if change.replace_with is not None else old
                shift = change.intensity_shift_sd * mean_intensity_sd(old, self._image_size)
                new = dataclasses.replace(new, intensity_offset=new.intensity_offset + shift)
                scanners = list(site.scanners)
                scanners[change.scanner_index] = new
                sites[change.site_id] = dataclasses.replace(site, scanners=tuple(scanners))
            if phase.intensity_drift is not None:
                if self._drift and self._drift[-1].end is None:
                    self._drift[-1] = dataclasses.replace(self._drift[-1], end=start)
                self._drift.append(
                    _DriftSegment(
                        start=start,
                        end=None,
                        sd_per_study=phase.intensity_drift.sd_per_1000_studies / 1000.0,
                        site_ids=frozenset(phase.intensity_drift.site_ids),
                    )
                )
            current = Conditions(
                phase=phase.name,
                start_study=start,
                sites=tuple(sites[site.site_id] for site in current.sites),
                prevalence=phase.prevalence if phase.prevalence is not None else current.prevalence,
                lesion_modifiers=(
                    phase.lesion_modifiers if phase.lesion_modifiers is not None else current.lesion_modifiers
                ),
            )
            self._starts.append(start)
            self._conditions.append(current)

    @property
    def phases(self) -> tuple[Conditions, ...]:
        """Conditions of every phase, baseline first."""
        return tuple(self._conditions)

    def conditions_at(self, study_index: int) -> Conditions:
        """Conditions in force for the study with this index."""
        if study_index < 0:
            raise ValueError(f"study_index must be >= 0, got {study_index}")
        return self._conditions[bisect.bisect_right(self._starts, study_index) - 1]

    def drift_sd(self, study_index: int, site_id: str) -> float:
        """Intensity drift accumulated by ``study_index`` at a site, in per-image-mean SDs."""
        return sum(segment.accumulated(study_index, site_id) for segment in self._drift)

    def drift_offset(self, study_index: int, site_id: str, scanner: Scanner) -> float:
        """The drift as an intensity offset on ``scanner``'s output scale."""
        sd = self.drift_sd(study_index, site_id)
        return 0.0 if sd == 0.0 else sd * mean_intensity_sd(scanner, self._image_size)
