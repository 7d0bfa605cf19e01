"""Scenarios as data: shipped files load and validate, bad files fail naming the field, phases resolve."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from sim import (
    Hospital,
    IntensityDrift,
    Phase,
    ScannerChange,
    ScenarioError,
    available_scenarios,
    load_scenario,
    mean_intensity_sd,
    scenario_from_mapping,
)
from sim.loader import SCENARIO_DIR
from sim.timeline import Timeline
from tests.unit.sim.scenario_factory import ScenarioFactory

SHIPPED = (
    "baseline",
    "cr90_protocol_change",
    "intensity_drift",
    "new_scanner",
    "prevalence_shift",
    "subgroup_degradation",
)


def test_every_shipped_scenario_loads_and_states_what_it_plants() -> None:
    assert available_scenarios() == SHIPPED
    for name in SHIPPED:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert len(scenario.planted) > 10
        assert scenario.image_size == 128
        assert [site.site_id for site in scenario.sites] == ["site-A", "site-B", "site-C"]
        assert len(scenario.phases) == (0 if name == "baseline" else 1)


def test_load_by_path_equals_load_by_name() -> None:
    assert load_scenario(SCENARIO_DIR / "new_scanner.yaml") == load_scenario("new_scanner")
    assert load_scenario(str(SCENARIO_DIR / "baseline.yaml")) == load_scenario("baseline")


def test_extends_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(
        textwrap.dedent(
            f"""\
            extends: {SCENARIO_DIR / "baseline.yaml"}
            name: child
            population: {{female_fraction: 0.7}}
            readers: [{{reader_id: ONLY, sensitivity: 0.5}}]
            """
        )
    )
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("extends: child.yaml\nname: grandchild\nstudies_per_day: 100\n")
    scenario = load_scenario(grandchild)
    baseline = load_scenario("baseline")
    assert scenario.name == "grandchild"
    assert scenario.studies_per_day == 100
    assert scenario.population.female_fraction == 0.7
    assert scenario.population.age_mean == baseline.population.age_mean
    assert [r.reader_id for r in scenario.readers] == ["ONLY"]
    assert scenario.sites == baseline.sites


#: A one-phase scenario fragment; format it with the phase's change.
_PHASE = "phases:\n  - name: p\n    start_study: 5\n    {}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(f"extends: {SCENARIO_DIR / 'baseline.yaml'}\n" + textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sites:\n  - site_id: X\n    scanners:\n      - {manufacturer: M, model: Q, noise_sd: -1}\n",
            r"sites\[0\]\.scanners\[0\]\.noise_sd: Input should be greater than or equal to 0",
        ),
        ("population: {female_fraction: 1.5}\n", r"population\.female_fraction: Input should be less than"),
        ("population: {female_fraction: lots}\n", r"population\.female_fraction: Input should be a valid"),
        ("studies_per_dya: 3\n", r"studies_per_dya: Unexpected keyword argument"),
        ("readers: []\n", r"readers: .*at least 1"),
        (
            "prevalence: {base: 0.8, male_multiplier: 2, age_bands: []}\n",
            r"prevalence: base x multipliers = 1\.600 > 1 for sex=M, outside all bands",
        ),
        ("population: {age_min: 80, age_max: 40}\n", r"population: age_min \(80\) must be below age_max"),
        ("start_time: 2025-01-01T00:00:00\n", r"start_time: Input should have timezone info"),
        (
            _PHASE.format("scanner_changes: [{site_id: site-Z}]"),
            r"phases\[0\]\.scanner_changes\[0\]\.site_id: unknown site 'site-Z'",
        ),
        (
            _PHASE.format("scanner_changes: [{site_id: site-B, scanner_index: 3}]"),
            r"phases\[0\]\.scanner_changes\[0\]\.scanner_index: site 'site-B' has 1 scanner",
        ),
        ("phases:\n  - {name: p}\n", r"phases\[0\]: give exactly one of start_study and start_day"),
        (
            "phases:\n  - {name: p, start_study: 9}\n  - {name: q, start_study: 3}\n",
            r"phases\[1\] \('q'\) starts at study 3, before phases\[0\]",
        ),
        (
            _PHASE.format("intensity_drift: {sd_per_1000_studies: 1, site_ids: [nope]}"),
            r"phases\[0\]\.intensity_drift\.site_ids: unknown site 'nope'",
        ),
        (
            "sites:\n  - {site_id: A, scanners: [{manufacturer: M, model: Q}], scanner_weights: [1, 2]}\n",
            r"sites\[0\]: scanner_weights: 2 weights for 1 scanners",
        ),
    ],
)
def test_invalid_field_is_named_in_the_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(_write(tmp_path, text))


def test_yaml_syntax_errors_unknown_names_and_cycles_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nsites: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml: invalid YAML at line \d+"):
        load_scenario(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="top level must be a mapping, got list"):
        load_scenario(listing)
    with pytest.raises(ScenarioError, match="unknown scenario 'no_such'; shipped scenarios: baseline"):
        load_scenario("no_such")
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "missing.yaml")
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ScenarioError, match="forms a cycle"):
        load_scenario(tmp_path / "a.yaml")
    assert issubclass(ScenarioError, ValueError)


def test_scenario_from_mapping_validates_like_a_file() -> None:
    scenario = scenario_from_mapping(
        {
            "name": "tiny",
            "description": "d",
            "planted": "none",
            "sites": [{"site_id": "S", "scanners": [{"manufacturer": "M", "model": "Q"}]}],
            "readers": [{"reader_id": "R"}],
        }
    )
    assert scenario.sites[0].scanners[0].noise_sd == 0.02
    with pytest.raises(ScenarioError, match=r"<mapping>: sites: Field required"):
        scenario_from_mapping(
            {"name": "x", "description": "d", "planted": "p", "readers": [{"reader_id": "R"}]},
        )


def test_phases_are_cumulative_and_switch_at_their_start(small_scenario: ScenarioFactory) -> None:
    base = small_scenario()
    old = base.sites[1].scanners[0]
    shift_site_b = ScannerChange(site_id="site-B", intensity_shift_sd=1.0)
    scenario = dataclasses.replace(
        base,
        phases=(
            Phase(name="shift", start_study=10, scanner_changes=(shift_site_b,)),
            Phase(name="drift", start_day=0.05, intensity_drift=IntensityDrift(sd_per_1000_studies=100.0)),
            Phase(name="freeze", start_study=40, intensity_drift=IntensityDrift(sd_per_1000_studies=0.0)),
        ),
    )
    timeline = Timeline(scenario)
    assert [timeline.conditions_at(i).phase for i in (0, 9, 10, 19, 20, 39, 40, 10_000)] == [
        "baseline",
        "baseline",
        "shift",
        "shift",
        "drift",
        "drift",
        "freeze",
        "freeze",
    ]
    unit = mean_intensity_sd(old, scenario.image_size)
    assert timeline.conditions_at(9).sites[1].scanners[0] == old
    # The shift made in phase "shift" persists through the later phases.
    for index in (10, 25, 100):
        shifted = timeline.conditions_at(index).sites[1].scanners[0]
        assert shifted.intensity_offset == pytest.approx(old.intensity_offset + unit)
    # Drift starts at day 0.05 (study 20 at 400/day), runs at 0.1 SD per study, and is frozen from study 40.
    drift = [timeline.drift_sd(i, "site-A") for i in (19, 20, 30, 40, 500)]
    assert drift == pytest.approx([0, 0, 1.0, 2.0, 2.0])
    studies = Hospital(scenario, seed=1).studies(45)
    assert [s.phase for s in studies][8:12] == ["baseline", "baseline", "shift", "shift"]


def test_subgroup_degradation_changes_only_the_targeted_lesions(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario("subgroup_degradation")
    phase = scenario.phases[0]
    assert phase.lesion_modifiers is not None
    modifier = phase.lesion_modifiers[0]
    start = scenario.phase_start(phase)
    degraded = Hospital(scenario, seed=61).studies(1500, start_index=start - 500)
    reference = Hospital(small_scenario("baseline"), seed=61).studies(1500, start_index=start - 500)
    targeted = 0
    for study, twin in zip(degraded, reference, strict=True):
        assert study.label == twin.label
        if not study.label:
            continue
        assert study.lesion.contrast is not None and twin.lesion.contrast is not None
        assert study.lesion.size_mm is not None and twin.lesion.size_mm is not None
        in_group = study.index >= start and study.sex == "F" and study.age >= 70
        if in_group:
            targeted += 1
            assert study.lesion.subgroups == ("female_70_plus",)
            assert study.lesion.contrast == pytest.approx(modifier.contrast_scale * twin.lesion.contrast)
            assert study.lesion.size_mm == pytest.approx(modifier.size_scale * twin.lesion.size_mm)
        else:
            assert study.lesion == twin.lesion
    assert targeted > 20
