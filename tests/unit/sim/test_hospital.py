"""The hospital: determinism, records consistent with ground truth, identifiers, clock."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections import Counter

import numpy as np
import pytest
from scipy.stats import binomtest

from sim import Hospital, Prevalence
from sim.identifiers import UID_ROOT
from tests.unit.sim.scenario_factory import ScenarioFactory


def test_same_seed_gives_identical_bytes_and_records() -> None:
    first = Hospital("baseline", seed=11).studies(24)
    second = Hospital("baseline", seed=11).studies(24)
    assert first.images.tobytes() == second.images.tobytes()
    assert first.studies == second.studies


def test_different_seeds_give_different_images_and_identifiers() -> None:
    a = Hospital("baseline", seed=1).studies(8)
    b = Hospital("baseline", seed=2).studies(8)
    assert a.images.tobytes() != b.images.tobytes()
    assert {s.study_uid for s in a}.isdisjoint({s.study_uid for s in b})


def test_a_study_is_the_same_whichever_batch_generates_it(small_scenario: ScenarioFactory) -> None:
    hospital = Hospital(small_scenario(), seed=4)
    whole = hospital.studies(30)
    tail = hospital.studies(12, start_index=18)
    assert np.array_equal(whole.images[18:], tail.images)
    assert whole.studies[18:] == tail.studies
    streamed = list(hospital.iter_studies(30, batch_size=7))
    assert tuple(streamed) == whole.studies
    assert all(np.array_equal(s.image, w.image) for s, w in zip(streamed, whole, strict=True))


def test_batch_shapes_and_read_only_images() -> None:
    batch = Hospital("baseline", seed=0).studies(5)
    assert batch.images.shape == (5, 1, 128, 128)
    assert batch.images.dtype == np.float32
    assert batch.studies[2].image.shape == (1, 128, 128)
    assert np.shares_memory(batch.studies[2].image, batch.images)
    with pytest.raises(ValueError, match="read-only"):
        batch.images[0, 0, 0, 0] = 1.0


def test_lesion_present_iff_label(small_scenario: ScenarioFactory) -> None:
    batch = Hospital(small_scenario(image_size=64), seed=9).studies(400)
    positives = [s for s in batch if s.label == 1]
    assert 40 < len(positives) < 130
    for study in batch:
        assert study.lesion.present == (study.label == 1)
        if study.label:
            assert study.lesion.size_mm is not None
            assert study.lesion.contrast is not None
            assert study.lesion.center_row is not None
            assert study.lesion.center_col is not None
            assert 0 <= study.lesion.center_row < 64
            assert 0 <= study.lesion.center_col < 64
        else:
            assert study.lesion.size_mm is None
            assert study.lesion.center_row is None


def test_positive_images_are_brighter_at_the_lesion_than_their_negative_twin(
    small_scenario: ScenarioFactory,
) -> None:
    # Same seed, prevalence 1 versus 0: identical patients, with and without the lesion.
    base = small_scenario(image_size=64)
    with_lesions = Hospital(dataclasses.replace(base, prevalence=Prevalence(base=1.0)), seed=3).studies(20)
    without = Hospital(dataclasses.replace(base, prevalence=Prevalence(base=0.0)), seed=3).studies(20)
    for pos, neg in zip(with_lesions, without, strict=True):
        assert pos.lesion.center_row is not None and pos.lesion.center_col is not None
        r, c = round(pos.lesion.center_row), round(pos.lesion.center_col)
        assert pos.image[0, r, c] > neg.image[0, r, c]
        assert pos.study_uid == neg.study_uid


def test_identifiers_are_synthetic_valid_and_unique(small_scenario: ScenarioFactory) -> None:
    batch = Hospital(small_scenario(), seed=5).studies(200)
    uids = [uid for s in batch for uid in (s.study_uid, s.series_uid, s.sop_uid)]
    assert len(set(uids)) == len(uids)
    for uid in uids:
        assert uid.startswith(UID_ROOT)
        assert len(uid) <= 64
        assert re.fullmatch(r"2\.25\.(0|[1-9]\d*)", uid)
        assert uuid.UUID(int=int(uid[len(UID_ROOT) :])).version == 4
    for study in batch:
        assert re.fullmatch(r"SIM-\d{10}", study.patient_id)
        assert re.fullmatch(r"SIM\d{13}", study.accession)
        assert study.accession.endswith(f"{study.index:013d}")


def test_clock_follows_study_order_at_the_configured_throughput(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario()
    batch = Hospital(scenario, seed=6).studies(400)
    times = [s.acquired_at for s in batch]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
    assert times[0] >= scenario.start_time
    days = (times[-1] - times[0]).total_seconds() / 86_400
    assert days == pytest.approx(399 / scenario.studies_per_day, abs=1 / scenario.studies_per_day)


def test_sites_scanners_and_demographics_follow_the_scenario(small_scenario: ScenarioFactory) -> None:
    scenario = small_scenario()
    batch = Hospital(scenario, seed=7).studies(3000)
    n = len(batch)
    site_counts = Counter(s.site_id for s in batch)
    total_weight = sum(site.weight for site in scenario.sites)
    for site in scenario.sites:
        assert binomtest(site_counts[site.site_id], n, site.weight / total_weight).pvalue > 1e-4
    site_a = [s for s in batch if s.site_id == "site-A"]
    mobile = sum(s.model == "SR-250 Mobile" for s in site_a)
    assert binomtest(mobile, len(site_a), 0.2).pvalue > 1e-4
    females = sum(s.sex == "F" for s in batch)
    assert binomtest(females, n, scenario.population.female_fraction).pvalue > 1e-4
    ages = np.array([s.age for s in batch])
    assert ages.min() >= scenario.population.age_min
    assert ages.max() <= scenario.population.age_max
    assert float(ages.mean()) == pytest.approx(scenario.population.age_mean, abs=1.5)
    ap = sum(s.protocol == "CHEST AP" for s in batch)
    assert binomtest(ap, n, scenario.population.ap_fraction).pvalue > 1e-4
    for study in batch:
        scanner = next(
            sc
            for site in scenario.sites
            if site.site_id == study.site_id
            for sc in site.scanners
            if sc.model == study.model
        )
        assert study.manufacturer == scanner.manufacturer
        assert study.modality == scanner.modality
        assert study.pixel_spacing == (scanner.pixel_spacing_mm * 4, scanner.pixel_spacing_mm * 4)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        Hospital("baseline", seed=-1)
    hospital = Hospital("baseline", seed=0)
    with pytest.raises(ValueError, match="start_index"):
        hospital.studies(3, start_index=-2)
    assert len(hospital.studies(0)) == 0
