"""The committed chest_nodule versions: artifacts agree with each other, with the code, and with the story.

If ``modeling/network.py`` or ``modeling/triton_model.py`` changes, or the simulator renders differently,
these fail until the versions are re-exported with ``radguard model export``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modeling.network
import modeling.triton_model
from modeling.calibration import calibrated_probability
from modeling.cohorts import simulate_cohort
from modeling.network import InferenceEngine
from modeling.reference import REFERENCE_START
from modeling.train import VERSION_SPECS
from sim import Hospital

MODEL_DIR = Path(__file__).resolve().parents[3] / "model_repo" / "chest_nodule"
CR90 = "CR-90"
SCANNER = "manufacturer_model"


def _folder(version: int) -> Path:
    folder = MODEL_DIR / str(version)
    if not (folder / "metadata.json").is_file():
        pytest.fail(f"{folder} is missing: run `radguard model export`")
    return folder


def _json(version: int, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((_folder(version) / name).read_text())
    return result


def _test_metric(version: int, dimension: str, group: str, metric: str) -> float:
    metrics = _json(version, "metadata.json")["metrics"]["test"]
    if dimension == "overall":
        return float(metrics["overall"][metric])
    entry = next(s for s in metrics["subgroups"] if s["dimension"] == dimension and s["group"] == group)
    return float(entry[metric])


@pytest.mark.parametrize("version", sorted(VERSION_SPECS))
def test_artifacts_match_their_hashes_and_the_current_code(version: int) -> None:
    folder = _folder(version)
    metadata = _json(version, "metadata.json")
    assert metadata["version"] == version
    assert metadata["spec"] == VERSION_SPECS[version].as_dict()
    assert metadata["weights_sha256"] == hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    for name, digest in metadata["artifacts"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert (folder / "model.py").read_text() == Path(modeling.triton_model.__file__).read_text()
    assert (folder / "chest_nodule_logic.py").read_text() == Path(modeling.network.__file__).read_text()
    # The reads-labelled reference (50,000 studies) is most of it; git stays a few MB per version.
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) < 4_000_000


@pytest.mark.parametrize("version", sorted(VERSION_SPECS))
def test_calibration_and_operating_point(version: int) -> None:
    record = _json(version, "calibration.json")
    assert record["temperature"] > 0
    assert 0 < record["threshold"] < 1
    assert record["validation_sensitivity"] >= record["target_sensitivity"] == 0.90
    assert calibrated_probability(record["logit_threshold"], record["temperature"]) == pytest.approx(
        record["threshold"]
    )
    assert record["ece_after"] < 0.05


@pytest.mark.parametrize("version", sorted(VERSION_SPECS))
def test_reference_profile_is_reproducible_from_the_weights(version: int) -> None:
    folder = _folder(version)
    seed = _json(version, "metadata.json")["seed"]
    scenario = VERSION_SPECS[version].scenario
    studies = simulate_cohort(scenario, seed, REFERENCE_START, 4)
    outputs = InferenceEngine.from_weights(folder / "weights.pt").predict(studies.images)
    hospital = Hospital(scenario, seed=seed)
    reads = [hospital.read(study, 0).label for study in hospital.studies(4, REFERENCE_START).studies]
    with np.load(folder / "reference_profile.npz", allow_pickle=False) as profile:
        n = profile["logits"].shape[0]
        assert n >= 10_000
        assert {profile[name].shape[0] for name in profile.files if name not in ("threshold", "metadata")} == {n}
        np.testing.assert_array_equal(profile["ground_truth"][:4], studies.labels)
        np.testing.assert_array_equal(profile["labels"][:4], reads)
        np.testing.assert_allclose(profile["logits"][:4], outputs["LOGIT"][:, 0], atol=1e-4)
        assert float(profile["threshold"][0]) == pytest.approx(_json(version, "calibration.json")["threshold"])
        np.testing.assert_allclose(profile["image_stats"][:4], outputs["STATS"], atol=1e-6)


def test_v2_is_better_overall_but_worse_on_the_cr90() -> None:
    # The difference governance must catch: v2 discriminates better on the hospital mix, yet at its
    # operating point it misses more nodules on the scanner it was developed without.
    assert _test_metric(2, "overall", "", "auroc") > _test_metric(1, "overall", "", "auroc")
    assert _test_metric(2, "overall", "", "specificity") > _test_metric(1, "overall", "", "specificity")
    assert _test_metric(2, SCANNER, CR90, "sensitivity") < _test_metric(1, SCANNER, CR90, "sensitivity")
    gap_v1 = _test_metric(1, "overall", "", "sensitivity") - _test_metric(1, SCANNER, CR90, "sensitivity")
    gap_v2 = _test_metric(2, "overall", "", "sensitivity") - _test_metric(2, SCANNER, CR90, "sensitivity")
    assert gap_v2 > gap_v1
