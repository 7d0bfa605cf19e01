"""Scanner acquisition effects, and the planted scanner change and drift, measured on image statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import norm

from sim import Hospital, Scanner, intensity_descriptors, mean_intensity_sd
from sim.anatomy import ANATOMY_UNIFORMS, TEXTURE_NORMALS, AnatomyParams, render_anatomy, smooth_texture
from sim.scanners import AcquisitionBatch, apply_acquisition
from tests.unit.sim.scenario_factory import ScenarioFactory

SIZE = 64


def _ideal(n: int, seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    params = AnatomyParams.from_uniforms(rng.random((n, ANATOMY_UNIFORMS)))
    texture = smooth_texture(rng.standard_normal((n, TEXTURE_NORMALS), dtype=np.float32), SIZE)
    return render_anatomy(params, np.full(n, 6.0), texture, SIZE)


def _settings(n: int, **fields: float) -> AcquisitionBatch:
    scanner = Scanner(manufacturer="Test", model="T1", **fields)  # type: ignore[arg-type]
    return AcquisitionBatch.from_scanners([scanner] * n)


def test_gain_offset_and_noise_set_mean_and_std_as_configured() -> None:
    ideal = _ideal(32)
    noise = np.random.default_rng(1).standard_normal(ideal.shape, dtype=np.float32)
    settings = _settings(32, intensity_scale=2.0, intensity_offset=0.3, noise_sd=0.05, blur_sigma_px=0.0)
    acquired = apply_acquisition(ideal, settings, noise)
    before, after = intensity_descriptors(ideal), intensity_descriptors(acquired)
    np.testing.assert_allclose(after.mean, 2.0 * before.mean + 0.3, atol=0.004)
    np.testing.assert_allclose(after.std, np.sqrt((2.0 * before.std) ** 2 + 0.05**2), rtol=0.01)
    # Noise moves the median a little, the gain and offset move it a lot.
    np.testing.assert_allclose(after.p50, 2.0 * before.p50 + 0.3, atol=0.03)


def test_contrast_curve_is_a_power_law_and_does_not_touch_the_input() -> None:
    ideal = _ideal(4)
    original = ideal.copy()
    acquired = apply_acquisition(ideal, _settings(4, gamma=1.5, blur_sigma_px=0.0, noise_sd=0.0), None)
    np.testing.assert_allclose(acquired, ideal**1.5, rtol=1e-5, atol=1e-7)
    assert np.array_equal(ideal, original)


def test_blur_keeps_the_mean_and_spreads_an_edge_by_sigma() -> None:
    ideal = _ideal(8)
    sharp = apply_acquisition(ideal, _settings(8, blur_sigma_px=0.0, noise_sd=0.0), None)
    blurred = apply_acquisition(ideal, _settings(8, blur_sigma_px=2.0, noise_sd=0.0), None)
    np.testing.assert_allclose(blurred.mean(axis=(1, 2)), sharp.mean(axis=(1, 2)), atol=2e-3)
    # A step between columns 31 and 32 becomes a Gaussian CDF centred at 31.5 with SD = blur sigma.
    step = np.zeros((1, SIZE, SIZE), dtype=np.float32)
    step[:, :, 32:] = 1.0
    edge = apply_acquisition(step, _settings(1, blur_sigma_px=2.0, noise_sd=0.0), None)[0, SIZE // 2]
    columns = np.arange(26, 38)
    np.testing.assert_allclose(edge[columns], norm.cdf((columns - 31.5) / 2.0), atol=0.01)


def test_mean_intensity_sd_is_deterministic_and_scales_with_gain() -> None:
    scanner = Scanner(manufacturer="Test", model="T1")
    unit = mean_intensity_sd(scanner, 32)
    assert unit > 0.0
    mean_intensity_sd.cache_clear()
    assert mean_intensity_sd(scanner, 32) == unit
    doubled = dataclasses.replace(scanner, intensity_scale=2.0)
    assert mean_intensity_sd(doubled, 32) == pytest.approx(2.0 * unit, rel=1e-5)
    shifted = dataclasses.replace(scanner, intensity_offset=5.0)
    assert mean_intensity_sd(shifted, 32) == pytest.approx(unit, rel=1e-4)


def test_a_brighter_scanner_shifts_the_site_mean_in_a_paired_comparison(
    small_scenario: ScenarioFactory,
) -> None:
    base = small_scenario()
    site_c = base.sites[2]
    old = site_c.scanners[0]
    # Gain 1.2x applied to signal and noise alike, and a new offset.
    brighter = dataclasses.replace(
        old, intensity_scale=1.2 * old.intensity_scale, noise_sd=1.2 * old.noise_sd, intensity_offset=0.1
    )
    new_site_c = dataclasses.replace(site_c, scanners=(brighter,))
    changed = dataclasses.replace(base, sites=(*base.sites[:2], new_site_c))
    a = Hospital(base, seed=31).studies(300)
    b = Hospital(changed, seed=31).studies(300)
    on_c = np.array([s.site_id == "site-C" for s in a])
    da, db = intensity_descriptors(a.images), intensity_descriptors(b.images)
    # Same patients and noise draws: mean_b - offset_b = 1.2 x (mean_a - offset_a), up to float error.
    expected_mean = 1.2 * (da.mean[on_c] - old.intensity_offset) + 0.1
    np.testing.assert_allclose(db.mean[on_c], expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(db.std[on_c], 1.2 * da.std[on_c], rtol=1e-4)
    assert np.array_equal(a.images[~on_c], b.images[~on_c])


def test_new_scanner_phase_shifts_site_b_by_the_configured_sds(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario("new_scanner")
    baseline = small_scenario("baseline")
    phase = scenario.phases[0]
    change = phase.scanner_changes[0]
    start = scenario.phase_start(phase)
    old_scanner = baseline.sites[1].scanners[0]
    unit = mean_intensity_sd(old_scanner, scenario.image_size)

    changed = Hospital(scenario, seed=41).studies(600, start_index=start - 300)
    reference = Hospital(baseline, seed=41).studies(600, start_index=start - 300)
    on_b = np.array([s.site_id == "site-B" for s in changed])
    after = np.array([s.index >= start for s in changed])
    # Before the phase, everything is identical; after it only site B changes.
    assert np.array_equal(changed.images[~after], reference.images[~after])
    assert np.array_equal(changed.images[after & ~on_b], reference.images[after & ~on_b])
    assert {s.model for s, b, t in zip(changed, on_b, after, strict=True) if b and t} == {"MX-9"}
    assert {s.model for s, b, t in zip(changed, on_b, after, strict=True) if b and not t} == {"MX-7"}
    assert {s.phase for s, t in zip(changed, after, strict=True) if t} == {"site_b_new_scanner"}

    shift = intensity_descriptors(changed.images).mean - intensity_descriptors(reference.images).mean
    realised_sd = float(np.mean(shift[after & on_b])) / unit
    assert realised_sd == pytest.approx(change.intensity_shift_sd, abs=0.05)
    # The planted shift is large against the between-patient spread of site B's image means.
    before_b = intensity_descriptors(reference.images[on_b & ~after]).mean
    assert float(np.mean(shift[after & on_b])) / float(np.std(before_b)) > 1.3


def test_intensity_drift_grows_linearly_from_the_phase_start(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario("intensity_drift")
    phase = scenario.phases[0]
    assert phase.intensity_drift is not None
    start = scenario.phase_start(phase)
    assert start == 2000  # start_day 5 at 400 studies a day
    rate = phase.intensity_drift.sd_per_1000_studies / 1000.0
    indices = [start - 50, start, start + 1000, start + 3000]
    for index in indices:
        drifted = Hospital(scenario, seed=51).studies(60, start_index=index)
        reference = Hospital(small_scenario("baseline"), seed=51).studies(60, start_index=index)
        shift = intensity_descriptors(drifted.images).mean - intensity_descriptors(reference.images).mean
        for study, delta in zip(drifted, shift, strict=True):
            if study.site_id != "site-A":
                assert delta == 0.0
                continue
            scanner = next(sc for sc in scenario.sites[0].scanners if sc.model == study.model)
            expected = rate * max(0, study.index - start) * mean_intensity_sd(scanner, scenario.image_size)
            assert delta == pytest.approx(expected, abs=1e-5)
