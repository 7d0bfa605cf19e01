"""Prevalence per patient group, before and after a prevalence-shift phase, within binomial tolerance."""

from __future__ import annotations

from collections.abc import Callable

from scipy.stats import binomtest

from sim import Hospital, Study
from sim.specs import Sex
from tests.unit.sim.scenario_factory import ScenarioFactory

AGE_BANDS = ((18, 50), (50, 70), (70, 96))


def _check_groups(studies: list[Study], scenario_prevalence: Callable[[Sex, int], float]) -> int:
    """binomtest per sex x age band; returns how many groups were checked."""
    checked = 0
    sexes: tuple[Sex, ...] = ("F", "M")
    for sex in sexes:
        for low, high in AGE_BANDS:
            group = [s for s in studies if s.sex == sex and low <= s.age < high]
            expected = scenario_prevalence(sex, low)
            positives = sum(s.label for s in group)
            assert len(group) > 150, (sex, low, len(group))
            assert binomtest(positives, len(group), expected).pvalue > 1e-4, (sex, low, positives, len(group))
            checked += 1
    return checked


def test_prevalence_per_sex_and_age_band(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario()
    studies = list(Hospital(scenario, seed=21).studies(5000))
    assert _check_groups(studies, scenario.prevalence.probability) == 6
    # The multipliers matter: the oldest men are several times likelier to be positive than young women.
    assert scenario.prevalence.probability("M", 75) / scenario.prevalence.probability("F", 30) > 3


def test_prevalence_shift_switches_at_the_configured_study(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario("prevalence_shift")
    start = scenario.phase_start(scenario.phases[0])
    assert start == 2000
    new_prevalence = scenario.phases[0].prevalence
    assert new_prevalence is not None
    hospital = Hospital(scenario, seed=22)
    before = list(hospital.studies(start))
    after = list(hospital.studies(3000, start_index=start))
    assert {s.phase for s in before} == {"baseline"}
    assert {s.phase for s in after} == {"more_positives"}
    for studies, prevalence in ((before, scenario.prevalence), (after, new_prevalence)):
        expected = sum(prevalence.probability(s.sex, s.age) for s in studies) / len(studies)
        positives = sum(s.label for s in studies)
        assert binomtest(positives, len(studies), expected).pvalue > 1e-4
    assert sum(s.label for s in after) > 1.5 * sum(s.label for s in before)
