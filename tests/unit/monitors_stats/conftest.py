"""Session-wide simulated data for the monitor statistics tests (generated once, cached on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import load_scenario
from tests.unit.monitors_stats.simulated import SimRows, shifted_scanner, simulate, without_subgroup_degradation

#: Study index where validation-like reference data starts (far from the live ranges).
REFERENCE_START = 1_000_000
#: Planted scanner shift of the drift power test, in SDs of the per-image mean intensity.
SHIFT_SD = 0.25
#: Where the planted shift starts in each drift stream.
SHIFT_START = 1000
DRIFT_SEEDS = (2, 3, 4)
BIAS_SEEDS = (2, 3, 4)
#: Hospitals of the bias power test (a detection rate needs more than three).
BIAS_POWER_SEEDS = tuple(range(2, 12))
#: Studies after the change in the bias power test: about 150 and about 300 read-positives in the subgroup.
BIAS_POWER_SIZES = (5000, 10_000)
CALIBRATION_SEEDS = (5, 6, 7)
#: subgroup_degradation plants its change at study 2000.
DEGRADATION_START = 2000


@pytest.fixture(scope="session")
def sim_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)  # None when the cache plugin is disabled
    if cache is None:
        return tmp_path_factory.mktemp("sim-cache")
    return Path(cache.mkdir("radguard-monitors-stats"))


@pytest.fixture(scope="session")
def drift_reference(sim_cache: Path) -> SimRows:
    return simulate("baseline", 0, REFERENCE_START, 3000, image_size=64, images=True, cache=sim_cache)


@pytest.fixture(scope="session")
def drift_null_pool(sim_cache: Path) -> SimRows:
    return simulate("baseline", 1, 0, 3000, image_size=64, images=True, cache=sim_cache)


@pytest.fixture(scope="session")
def drift_streams(sim_cache: Path) -> dict[int, SimRows]:
    scenario = shifted_scanner(load_scenario("baseline"), "site-B", SHIFT_SD, SHIFT_START)
    return {
        seed: simulate(scenario, seed, 0, 2 * SHIFT_START, image_size=64, images=True, cache=sim_cache)
        for seed in DRIFT_SEEDS
    }


@pytest.fixture(scope="session")
def labelled_reference(sim_cache: Path) -> SimRows:
    return simulate("baseline", 0, REFERENCE_START, 12_000, image_size=32, images=False, cache=sim_cache)


@pytest.fixture(scope="session")
def large_labelled_reference(sim_cache: Path) -> SimRows:
    """A 40,000-study reference: about 1,400 read-positives in the smallest tested subgroup."""
    return simulate("baseline", 0, REFERENCE_START, 40_000, image_size=32, images=False, cache=sim_cache)


@pytest.fixture(scope="session")
def labelled_null_pool(sim_cache: Path) -> SimRows:
    return simulate("baseline", 1, 0, 12_000, image_size=32, images=False, cache=sim_cache)


@pytest.fixture(scope="session")
def degraded(sim_cache: Path) -> dict[int, tuple[SimRows, SimRows]]:
    """Per seed: (unchanged, subgroup_degradation) over the same patients after the change."""
    pairs = {}
    for seed in BIAS_SEEDS:
        changed = simulate(
            "subgroup_degradation", seed, DEGRADATION_START, 5000, image_size=32, images=False, cache=sim_cache
        )
        pairs[seed] = (without_subgroup_degradation(changed), changed)
    return pairs


@pytest.fixture(scope="session")
def degraded_streams(sim_cache: Path) -> dict[int, SimRows]:
    """Per hospital seed: the first 10,000 studies after ``subgroup_degradation``'s change."""
    return {
        seed: simulate(
            "subgroup_degradation",
            seed,
            DEGRADATION_START,
            max(BIAS_POWER_SIZES),
            image_size=32,
            images=False,
            cache=sim_cache,
        )
        for seed in BIAS_POWER_SEEDS
    }


@pytest.fixture(scope="session")
def calibration_streams(sim_cache: Path) -> dict[int, SimRows]:
    return {
        seed: simulate("baseline", seed, 0, 1000, image_size=32, images=False, cache=sim_cache)
        for seed in CALIBRATION_SEEDS
    }
