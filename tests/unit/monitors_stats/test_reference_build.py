"""The reference builder's pure part (ledger rows → profile) and the power statement it prints."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kernel.power import minimal_detectable_drop
from services.monitors.core.reference import load_reference_profile
from services.monitors.core.reference_build import PeriodError, build_from_rows, with_twin_reads, write_profile
from services.monitors.ledger.domain import Arm, Sex
from services.monitors.ledger.queries import LabelledPrediction

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_power_matches_the_monitoring_table_and_an_independent_oracle():
    # docs/MONITORING.md, version 2's reference: site-A 4,809 read-positives -> 0.074; SR-250 972 -> 0.089.
    assert round(minimal_detectable_drop(4809), 3) == 0.074
    assert round(minimal_detectable_drop(972), 3) == 0.089
    p, n_ref, n_win = 0.77, 1500, 600
    z = stats.norm.ppf(1 - 0.01 / 16) + stats.norm.ppf(0.8)
    assert minimal_detectable_drop(n_ref) == pytest.approx(z * math.sqrt(p * (1 - p) * (1 / n_ref + 1 / n_win)))
    assert minimal_detectable_drop(0) == math.inf
    assert minimal_detectable_drop(100) > minimal_detectable_drop(1000) > minimal_detectable_drop(10000)
    with pytest.raises(ValueError, match="alpha"):
        minimal_detectable_drop(100, alpha=0)


def _rows(n: int, *, seed: int = 3, threshold: float = 0.4, read_fraction: float = 0.8) -> list[LabelledPrediction]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = float(rng.uniform(0.01, 0.99))
        read = rng.random() < read_fraction
        label = int(rng.random() < p) if read else None
        at = T0 + timedelta(minutes=i)
        row = LabelledPrediction(
            prediction_id=f"p{i}",
            event_time=at,
            model_name="m",
            model_version="2",
            arm=Arm.STABLE,
            study_uid=f"s{i}",
            site_id=("site-A", "site-B")[i % 2],
            modality="DX",
            manufacturer="Acme",
            manufacturer_model=("X1", "X2")[i % 2],
            protocol_name="PA",
            sex=(Sex.FEMALE, Sex.MALE)[i % 3 == 0],
            age_years=int(rng.integers(20, 90)),
            age_band="",
            raw_score=math.log(p / (1 - p)),
            probability=p,
            decision=int(p >= threshold),
            threshold=threshold,
            descriptors={"intensity.mean": float(i), "intensity.std": 1.0},
            embedding=(0.1, 0.2, 0.3),
            read_id=f"r{i}" if read else None,
            label=label,
            outcome=None,
            read_time=at + timedelta(hours=2) if read else None,
            read_count=int(read),
        )
        rows.append(row)
    return rows


def test_build_keeps_read_rows_at_the_threshold_and_loads(tmp_path: Path):
    rows = _rows(600)
    rows[5] = replace(rows[5], age_years=None)  # a read without an age cannot be banded: left out, counted
    built = build_from_rows(
        rows, model_name="m", model_version="2", since=T0, until=T0 + timedelta(days=1), min_reads=100
    )
    read = [r for r in rows if r.label is not None and r.age_years is not None]
    assert (built.studies, built.reads, built.threshold) == (600, len(read), 0.4)
    assert built.read_positives == sum(r.label or 0 for r in read)
    assert built.metadata["reads_without_age_left_out"] == (1 if rows[5].label is not None else 0)
    assert built.metadata["read_delay_minutes"]["median"] == pytest.approx(120.0)
    assert np.array_equal(built.arrays["decisions"], (built.arrays["probabilities"] >= 0.4).astype(np.int8))
    female = next(p for p in built.powers if p.subgroup == "sex=female")
    assert female.read_positives == sum(r.label or 0 for r in read if r.sex is Sex.FEMALE)
    assert female.detectable_drop == pytest.approx(minimal_detectable_drop(female.read_positives))
    # ~600 rows, ~230 read-positives per sex: short of a 0.10 drop, so named as underpowered.
    assert built.metadata["power"]["underpowered"] == [p.subgroup for p in built.powers if p.detectable_drop > 0.10]
    assert "sex=female" in built.metadata["power"]["underpowered"]

    path = tmp_path / "reference_profile.npz"
    write_profile(path, built.arrays)
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    write_profile(path, built.arrays)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first  # same rows, same bytes, same sha256
    window = load_reference_profile(path, model_name="m", model_version="2")
    assert len(window) == len(read)
    assert np.array_equal(window.decision, built.arrays["decisions"].astype(np.float64))  # the file's threshold
    with np.load(path) as archive:
        assert json.loads(str(archive["metadata"].reshape(-1)[0]))["period"]["source"] == "ledger"
        assert archive["image_stats"].shape == (len(read), 2) and list(archive["image_stat_names"]) == ["mean", "std"]


def test_too_few_reads_or_mixed_thresholds_are_refused():
    rows = _rows(300)
    reads = sum(1 for r in rows if r.label is not None)
    with pytest.raises(PeriodError, match=f"holds {reads} reads .* needs at least 2000 \\(--min-reads\\)"):
        build_from_rows(rows, model_name="m", model_version="2", since=T0, until=T0 + timedelta(days=1))
    mixed = rows[:150] + _rows(150, seed=4, threshold=0.6)
    with pytest.raises(PeriodError, match=r"2 operating thresholds \(0\.4, 0\.6\)"):
        build_from_rows(mixed, model_name="m", model_version="2", since=T0, until=T0 + timedelta(days=1), min_reads=10)
    chosen = build_from_rows(
        mixed, model_name="m", model_version="2", since=T0, until=T0 + timedelta(days=1), min_reads=10, threshold=0.5
    )
    assert chosen.threshold == 0.5


def test_shadow_rows_take_the_label_of_their_served_twin():
    rows = [replace(r, arm=Arm.SHADOW, label=None, read_time=None, read_id=None, read_count=0) for r in _rows(3)]
    read_at = T0 + timedelta(hours=5)
    labelled = with_twin_reads(rows, {"p1": (1, read_at, "r-served")})
    assert [(r.label, r.read_id) for r in labelled] == [(None, None), (1, "r-served"), (None, None)]
    assert labelled[1].read_time == read_at and labelled[1].arm is Arm.SHADOW
    own = replace(rows[0], label=0, read_id="own")
    assert with_twin_reads([own], {"p0": (1, read_at, "twin")}) == [own]  # an own read is never replaced
