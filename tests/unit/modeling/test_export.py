"""Training determinism and the exported version folder: files, hashes, calibration, reference, Triton entry."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

import modeling.network
import modeling.triton_model
from modeling.calibration import calibrated_probability
from modeling.cohorts import VALIDATION_START, simulate_cohort
from modeling.export import CONFIG_PBTXT, export, weights_bytes
from modeling.network import IMAGE_SIZE, InferenceEngine
from modeling.train import TrainedModel, train, training_cohort
from tests.unit.modeling.conftest import TINY_SEED, TINY_SPEC

REFERENCE_FIELDS = {
    "logits", "probabilities", "labels", "embeddings", "image_stats", "study_index", "site", "manufacturer",
    "model", "pixel_spacing", "sex", "age",
}  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_bit_identical_weights(tiny_trained: TrainedModel) -> None:
    again = train(TINY_SPEC, TINY_SEED)
    first, second = tiny_trained.network.state_dict(), again.network.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert weights_bytes(tiny_trained) == weights_bytes(again)
    assert again.calibration == tiny_trained.calibration
    assert again.test.overall == tiny_trained.test.overall


def test_excluded_scanner_is_absent_from_training_but_present_in_evaluation(
    tiny_trained: TrainedModel,
) -> None:
    excluded = TINY_SPEC.exclude_scanners[0]
    assert excluded not in set(training_cohort(TINY_SPEC, TINY_SEED).scanner.tolist())
    groups = {s.group for s in tiny_trained.test.subgroups if s.dimension == "manufacturer_model"}
    assert excluded.removeprefix("SimRay Medical ") in groups
    assert tiny_trained.calibration.validation_count < TINY_SPEC.validation_studies


def test_version_folder_holds_every_artifact(tiny_export: Path) -> None:
    names = {path.name for path in tiny_export.iterdir()}
    assert names >= {
        "model.py", "chest_nodule_logic.py", "weights.pt", "calibration.json", "reference_profile.npz",
        "model_card.md", "metadata.json",
    }  # fmt: skip
    assert tiny_export.name == str(TINY_SPEC.version)
    assert (tiny_export / "model.py").read_text() == Path(modeling.triton_model.__file__).read_text()
    assert (tiny_export / "chest_nodule_logic.py").read_text() == Path(modeling.network.__file__).read_text()
    assert sum(p.stat().st_size for p in tiny_export.iterdir()) < 1_000_000


def test_config_pbtxt_declares_the_served_interface(tiny_export: Path) -> None:
    config = (tiny_export.parent / "config.pbtxt").read_text()
    assert config == CONFIG_PBTXT
    for fragment in (
        'name: "chest_nodule"', 'backend: "python"', "max_batch_size: 32", 'name: "IMAGE"', "dims: [ 1, 128, 128 ]",
        'name: "LOGIT"', "dims: [ 1 ]", 'name: "EMBEDDING"', "dims: [ 8 ]", 'name: "STATS"', "dims: [ 5 ]",
        "max_queue_delay_microseconds:", "kind: KIND_CPU", "version_policy: { all { } }",
    ):  # fmt: skip
        assert fragment in config


def test_metadata_hashes_match_the_files(tiny_export: Path, tiny_trained: TrainedModel) -> None:
    metadata = json.loads((tiny_export / "metadata.json").read_text())
    assert metadata["weights_sha256"] == _sha256(tiny_export / "weights.pt")
    for name, digest in metadata["artifacts"].items():
        assert digest == _sha256(tiny_export / name), name
    assert metadata["version"] == TINY_SPEC.version
    assert metadata["seed"] == TINY_SEED
    assert metadata["spec"] == TINY_SPEC.as_dict()
    assert metadata["torch_version"] == torch.__version__
    assert metadata["training"]["studies"] == tiny_trained.train_count
    assert metadata["weights_sha256"] == hashlib.sha256(weights_bytes(tiny_trained)).hexdigest()


def test_calibration_json_is_consistent(tiny_export: Path, tiny_trained: TrainedModel) -> None:
    record = json.loads((tiny_export / "calibration.json").read_text())
    c = tiny_trained.calibration
    assert record["temperature"] == c.temperature
    assert record["threshold"] == c.threshold
    assert record["target_sensitivity"] == TINY_SPEC.target_sensitivity
    # The logit threshold is the probability threshold mapped back through the temperature.
    assert calibrated_probability(record["logit_threshold"], record["temperature"]) == pytest.approx(
        record["threshold"], rel=1e-9
    )
    assert record["fitted_on"]["excluded_scanners"] == list(TINY_SPEC.exclude_scanners)
    assert record["fitted_on"]["temperature"]["studies_used"] == c.calibration_count
    assert record["ece_before"] == c.ece_before
    assert record["ece_after"] == c.ece_after


def test_threshold_meets_target_sensitivity_on_its_validation_data(tiny_export: Path) -> None:
    record = json.loads((tiny_export / "calibration.json").read_text())
    with np.load(tiny_export / "reference_profile.npz", allow_pickle=False) as profile:
        scanner = np.char.add(np.char.add(profile["manufacturer"], " "), profile["model"])
        kept = ~np.isin(scanner, TINY_SPEC.exclude_scanners)
        probabilities = calibrated_probability(profile["logits"][kept], record["temperature"])
        labels = profile["labels"][kept]
    sensitivity = float((probabilities[labels == 1] >= record["threshold"]).mean())
    assert sensitivity >= record["target_sensitivity"]
    assert sensitivity == pytest.approx(record["validation_sensitivity"])


def test_reference_profile_reproduces_from_the_exported_weights(tiny_export: Path) -> None:
    engine = InferenceEngine.from_weights(tiny_export / "weights.pt")
    studies = simulate_cohort(TINY_SPEC.scenario, TINY_SEED, VALIDATION_START, 6)
    outputs = engine.predict(studies.images)
    with np.load(tiny_export / "reference_profile.npz", allow_pickle=False) as profile:
        assert set(profile.files) == REFERENCE_FIELDS
        rows = {name: profile[name].shape[0] for name in profile.files}
        assert set(rows.values()) == {TINY_SPEC.validation_studies}
        np.testing.assert_allclose(profile["logits"][:6], outputs["LOGIT"][:, 0], atol=1e-5)
        np.testing.assert_allclose(profile["embeddings"][:6], outputs["EMBEDDING"], atol=1e-5)
        np.testing.assert_allclose(profile["image_stats"][:6], outputs["STATS"], atol=1e-6)
        np.testing.assert_array_equal(profile["study_index"][:6], studies.index)
        np.testing.assert_array_equal(profile["site"][:6], studies.site)
        assert profile["embeddings"].shape[1] == 8 and profile["image_stats"].shape[1] == 5


def test_reexport_is_byte_identical(tiny_trained: TrainedModel, tiny_export: Path, tmp_path: Path) -> None:
    again = export(tiny_trained, tmp_path)
    for name in (
        "weights.pt",
        "reference_profile.npz",
        "calibration.json",
        "model.py",
        "chest_nodule_logic.py",
    ):
        assert _sha256(again / name) == _sha256(tiny_export / name), name


def test_model_card_states_the_research_only_status_and_the_metrics(
    tiny_export: Path, tiny_trained: TrainedModel
) -> None:
    card = (tiny_export / "model_card.md").read_text()
    assert "simulated data" in card
    assert "not for clinical use" in card
    assert f"| overall | {tiny_trained.test.overall.n:,} |" in card
    assert "manufacturer_model: SR-250 Mobile" in card
    assert f"{tiny_trained.calibration.temperature:.4f}" in card


# --- the Triton entry point, run against a stand-in for triton_python_backend_utils ---------------------


@dataclass
class _FakeTensor:
    name: str
    array: NDArray[Any]

    def as_numpy(self) -> NDArray[Any]:
        return self.array


@dataclass
class _FakeResponse:
    output_tensors: list[_FakeTensor]
    error: Any = None


def _fake_backend_utils() -> ModuleType:
    module = ModuleType("triton_python_backend_utils")
    module.Tensor = _FakeTensor  # type: ignore[attr-defined]
    module.InferenceResponse = _FakeResponse  # type: ignore[attr-defined]
    module.TritonError = lambda message: SimpleNamespace(message=message)  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request[name]  # type: ignore[attr-defined]
    return module


@pytest.fixture
def triton_model(tiny_export: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_backend_utils())
    spec = importlib.util.spec_from_file_location("chest_nodule_model_under_test", tiny_export / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({"model_name": "chest_nodule", "model_version": str(TINY_SPEC.version)})
    return model


def test_triton_entry_batches_requests_and_matches_the_engine(triton_model: Any, tiny_export: Path) -> None:
    rng = np.random.default_rng(2)
    first = rng.normal(0.4, 0.2, (2, 1, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    second = rng.normal(0.4, 0.2, (3, 1, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    broken = first[:1].copy()
    broken[0, 0, 0, 0] = np.inf
    requests = [{"IMAGE": _FakeTensor("IMAGE", a)} for a in (first, broken, second)]
    responses = triton_model.execute(requests)
    expected = InferenceEngine.from_weights(tiny_export / "weights.pt").predict(np.concatenate([first, second]))
    assert len(responses) == 3
    assert responses[1].error is not None and "IMAGE" in responses[1].error.message
    got_first = {t.name: t.array for t in responses[0].output_tensors}
    got_second = {t.name: t.array for t in responses[2].output_tensors}
    assert list(got_first) == ["LOGIT", "EMBEDDING", "STATS"]
    for name, value in expected.items():
        np.testing.assert_allclose(got_first[name], value[:2], atol=1e-6)
        np.testing.assert_allclose(got_second[name], value[2:], atol=1e-6)
