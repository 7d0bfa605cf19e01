"""Every producer and consumer of a subgroup label speaks the shared vocabulary (kernel.vocabulary).

Labels are produced through each side's own code path from the same ages and sexes — the gateway's event
labelling with its default settings, the reference builder, the monitors' reference loader, modeling's
validation report — and compared with what the monitors' specs, the gates' evidence and the shipped
reference files and registered validation subgroups name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kernel import vocabulary
from modeling.cohorts import Cohort
from modeling.reference import profile_arrays, read_metadata
from services.gateway.domain import age_band as gateway_age_band
from services.gateway.settings import GatewaySettings
from services.monitors.bias import BiasSpec
from services.monitors.core import load_reference_profile
from services.monitors.drift import DriftSpec

REPO = Path(__file__).resolve().parents[3]
AGES = np.array([0, 18, 39, 40, 49, 50, 59, 60, 69, 70, 85, 104])
SEXES = np.array(["F", "M"] * 6)


def _gateway_labels(ages: np.ndarray) -> list[str]:
    edges = GatewaySettings.model_fields["age_band_edges"].default
    return [gateway_age_band(int(age), edges) for age in ages]


def _profile(tmp_path: Path) -> Path:
    n = AGES.size
    columns = {
        "logits": np.linspace(-3, 3, n).astype(np.float32),
        "probabilities": np.linspace(0.05, 0.95, n).astype(np.float32),
        "labels": np.array([0, 1] * (n // 2), dtype=np.int8),
        "ground_truth": np.array([0, 1] * (n // 2), dtype=np.int8),
        "site": np.array(["site-A"] * n),
        "manufacturer": np.array(["SimRay Medical"] * n),
        "model": np.array(["SR-400 DR"] * n),
        "sex": vocabulary.sex_labels(SEXES),
        "age": AGES.astype(np.int16),
    }
    arrays = profile_arrays(columns, 0.3, 1.2, {"scenario": "baseline", "hospital_seed": 7, "study_indices": [0, n]})
    path = tmp_path / "reference_profile.npz"
    np.savez(path, **arrays)
    return path


def test_gateway_reference_and_modeling_label_the_same_ages_alike(tmp_path: Path) -> None:
    gateway = _gateway_labels(AGES)
    path = _profile(tmp_path)
    monitors = load_reference_profile(path, model_name="chest_nodule", model_version="2").attributes
    cohort = Cohort(
        images=np.zeros((AGES.size, 1, 2, 2), dtype=np.float32),
        labels=np.zeros(AGES.size, dtype=np.int64),
        index=np.arange(AGES.size),
        site=np.array(["site-A"] * AGES.size),
        manufacturer=np.array(["SimRay Medical"] * AGES.size),
        model=np.array(["SR-400 DR"] * AGES.size),
        pixel_spacing=np.full(AGES.size, 0.2),
        sex=SEXES,
        age=AGES,
    )
    modeling = cohort.subgroups()
    assert gateway == monitors[vocabulary.AGE_BAND].tolist() == modeling[vocabulary.AGE_BAND].tolist()
    assert set(gateway) == set(vocabulary.age_band_labels()) == {"<50", "50-69", "70+"}
    assert monitors[vocabulary.SEX].tolist() == modeling[vocabulary.SEX].tolist()
    assert set(modeling[vocabulary.SEX].tolist()) == {"female", "male"}
    # The builder's recorded subgroup counts use the same labels.
    recorded = {entry["subgroup"] for entry in read_metadata(path)["subgroups"]}
    assert {f"age_band={band}" for band in set(gateway)} <= recorded
    assert {"sex=female", "sex=male"} <= recorded


def test_monitor_specs_and_gate_evidence_name_vocabulary_dimensions() -> None:
    assert set(BiasSpec(name="b").attributes) <= set(vocabulary.DIMENSIONS)
    assert {a for group in BiasSpec(name="b").intersections for a in group} <= set(vocabulary.DIMENSIONS)
    drift = DriftSpec(name="d")
    assert set(drift.categorical_attributes) | set(drift.stratify_by) <= set(vocabulary.DIMENSIONS)
    assert {vocabulary.SEX, vocabulary.AGE_BAND} <= set(drift.categorical_attributes)  # case mix by default
    source = (REPO / "governance/adapters/evidence_postgres.py").read_text(encoding="utf-8")
    assert all(f"vocabulary.{name.upper()}:" in source for name in vocabulary.DIMENSIONS)


@pytest.mark.parametrize("version", ["1", "2"])
def test_shipped_references_and_validation_reports_use_the_vocabulary(version: str) -> None:
    folder = REPO / "model_repo" / "chest_nodule" / version
    metadata = read_metadata(folder / "reference_profile.npz")
    assert metadata["labels"] == "reads" and metadata["n"] >= 10_000
    with np.load(folder / "reference_profile.npz", allow_pickle=False) as archive:
        ages, threshold = archive["age"], float(archive["threshold"][0])
        bands = set(_gateway_labels(ages))
    calibration = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
    assert threshold == pytest.approx(calibration["threshold"])
    recorded = {e["subgroup"].split("=", 1)[1] for e in metadata["subgroups"] if e["subgroup"].startswith("age_band=")}
    assert recorded == bands
    report = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["metrics"]["validation"]["subgroups"]
    assert {e["dimension"] for e in report} <= set(vocabulary.DIMENSIONS)
    assert {e["group"] for e in report if e["dimension"] == vocabulary.AGE_BAND} <= set(vocabulary.age_band_labels())
    assert {e["group"] for e in report if e["dimension"] == vocabulary.SEX} <= set(vocabulary.SEX_LABELS)
