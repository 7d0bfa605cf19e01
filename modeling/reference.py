"""The reference builder: a version's ``reference_profile.npz``, labelled the way live windows are.

Live monitoring windows are labelled by radiologists' reads, and reads are wrong sometimes (the simulated
readers miss about one nodule in nine and flag about one normal in twenty). A reference labelled by ground
truth would make a healthy model look worse and miscalibrated as soon as it meets real reads, so the
reference here is a simulated production period of the version: the same hospital, studies outside every
training and evaluation split, scored by the shipped weights, decided at the version's operating threshold
and labelled by the simulator's radiologists. Each file records how it was made (``metadata`` member,
JSON): reads or ground truth, the period, the threshold and temperature, and counts per subgroup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kernel import vocabulary
from modeling.network import InferenceEngine
from sim import Hospital

#: First study index of the reference period (after the test split, which ends before 3,004,000).
REFERENCE_START = 4_000_000
#: Studies in a shipped reference: enough read-positives per subgroup to detect a 10-point sensitivity drop.
REFERENCE_STUDIES = 20_000
_CHUNK = 500


@dataclass(frozen=True)
class VersionScoring:
    """How one version turns images into a decision: weights, temperature and operating threshold."""

    version: int
    engine: InferenceEngine
    temperature: float
    threshold: float

    @classmethod
    def from_folder(cls, folder: Path) -> VersionScoring:
        """Load ``weights.pt`` and ``calibration.json`` of an exported version folder."""
        calibration = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
        return cls(
            version=int(folder.name),
            engine=InferenceEngine.from_weights(folder / "weights.pt"),
            temperature=float(calibration["temperature"]),
            threshold=float(calibration["threshold"]),
        )


@dataclass
class _Columns:
    parts: dict[str, list[NDArray[Any]]] = field(default_factory=dict)

    def add(self, **columns: NDArray[Any]) -> None:
        for name, values in columns.items():
            self.parts.setdefault(name, []).append(values)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {name: np.concatenate(values) for name, values in self.parts.items()}


def build_references(
    versions: Sequence[VersionScoring],
    *,
    scenario: str = "baseline",
    seed: int = 7,
    start: int = REFERENCE_START,
    n: int = REFERENCE_STUDIES,
    progress: Callable[[int, float], None] | None = None,
) -> dict[int, dict[str, NDArray[Any]]]:
    """Score a simulated period with every version and label it with the simulator's reads.

    The studies (and so the reads' labels, which do not depend on the model) are the same for every
    version; the decisions, and hence each read's agree/override outcome, are the version's own.

    Args:
        versions: The versions to build references for.
        scenario: Scenario the simulated hospital runs.
        seed: Hospital seed.
        start: First study index of the period.
        n: Studies in the period.
        progress: Called with (studies done, seconds elapsed) after each chunk.

    Returns:
        Version number → the arrays of its reference profile (see :func:`profile_arrays`).
    """
    hospital = Hospital(scenario, seed=seed)
    shared = _Columns()
    own = {v.version: _Columns() for v in versions}
    started = time.perf_counter()
    for offset in range(0, n, _CHUNK):
        batch = hospital.studies(min(_CHUNK, n - offset), start + offset)
        studies = batch.studies
        # The read's label is drawn independently of the decision (sim.reads), so decision 0 gives it.
        reads = [hospital.read(study, 0) for study in studies]
        shared.add(
            study_index=np.array([s.index for s in studies], dtype=np.int64),
            ground_truth=np.array([s.label for s in studies], dtype=np.int8),
            labels=np.array([r.label for r in reads], dtype=np.int8),
            read_delay_minutes=np.array([r.delay.total_seconds() / 60.0 for r in reads], dtype=np.float32),
            reader_id=np.array([r.reader_id for r in reads], dtype=np.str_),
            site=np.array([s.site_id for s in studies], dtype=np.str_),
            manufacturer=np.array([s.manufacturer for s in studies], dtype=np.str_),
            model=np.array([s.model for s in studies], dtype=np.str_),
            pixel_spacing=np.array([s.pixel_spacing[0] for s in studies], dtype=np.float32),
            sex=vocabulary.sex_labels([str(getattr(s.sex, "value", s.sex)) for s in studies]),
            age=np.array([s.age for s in studies], dtype=np.int16),
        )
        for scoring in versions:
            out = scoring.engine.predict(batch.images)
            logits = out["LOGIT"][:, 0].astype(np.float32)
            probabilities = (1.0 / (1.0 + np.exp(-logits.astype(np.float64) / scoring.temperature))).astype(np.float32)
            own[scoring.version].add(
                logits=logits,
                probabilities=probabilities,
                decisions=(probabilities >= scoring.threshold).astype(np.int8),
                embeddings=out["EMBEDDING"].astype(np.float32),
                image_stats=out["STATS"].astype(np.float32),
            )
        if progress is not None:
            progress(offset + len(studies), time.perf_counter() - started)
    common = shared.arrays()
    period = {"scenario": scenario, "hospital_seed": seed, "study_indices": [start, start + n]}
    return {
        v.version: profile_arrays({**common, **own[v.version].arrays()}, v.threshold, v.temperature, period)
        for v in versions
    }


def profile_arrays(
    columns: dict[str, NDArray[Any]], threshold: float, temperature: float, period: dict[str, Any]
) -> dict[str, NDArray[Any]]:
    """Add the operating threshold and the ``metadata`` member (JSON) to a reference's columns."""
    arrays = dict(columns)
    arrays["threshold"] = np.array([threshold], dtype=np.float64)
    arrays["metadata"] = np.array(json.dumps(reference_metadata(arrays, threshold, temperature, period)))
    return arrays


def reference_metadata(
    arrays: dict[str, NDArray[Any]], threshold: float, temperature: float, period: dict[str, Any]
) -> dict[str, Any]:
    """How the reference was made and what it holds: labelling, period, n, positives per subgroup."""
    labels = np.asarray(arrays["labels"], dtype=np.int64)
    truth = np.asarray(arrays["ground_truth"], dtype=np.int64)
    groups = {
        vocabulary.SITE: np.asarray(arrays["site"]).astype(np.str_),
        vocabulary.MANUFACTURER: np.asarray(arrays["manufacturer"]).astype(np.str_),
        vocabulary.MANUFACTURER_MODEL: np.asarray(arrays["model"]).astype(np.str_),
        vocabulary.SEX: np.asarray(arrays["sex"]).astype(np.str_),
        vocabulary.AGE_BAND: vocabulary.age_bands(arrays["age"]),
    }
    subgroups = []
    for dimension, values in groups.items():
        for value in sorted(set(values.tolist())):
            rows = values == value
            subgroups.append(
                {
                    "subgroup": vocabulary.subgroup(dimension, value),
                    "n": int(rows.sum()),
                    "read_positives": int(labels[rows].sum()),
                }
            )
    return {
        "labels": "reads",
        "labelled_by": "the simulated hospital's radiologists (sim.reads), as live windows are",
        "period": period,
        "n": int(labels.size),
        "read_positives": int(labels.sum()),
        "true_positives_in_period": int(truth.sum()),
        "read_sensitivity_vs_truth": float(labels[truth == 1].mean()) if (truth == 1).any() else None,
        "read_specificity_vs_truth": float(1.0 - labels[truth == 0].mean()) if (truth == 0).any() else None,
        "threshold": threshold,
        "temperature": temperature,
        "age_band_edges": list(vocabulary.AGE_BAND_EDGES),
        "subgroups": subgroups,
    }


def read_metadata(path: Path) -> dict[str, Any]:
    """The ``metadata`` member of a reference profile (empty for profiles written before it existed)."""
    with np.load(path, allow_pickle=False) as archive:
        if "metadata" not in archive.files:
            return {}
        content = json.loads(str(archive["metadata"].reshape(-1)[0]))
    return content if isinstance(content, dict) else {}


_LEGACY_DIMENSIONS = {"scanner": vocabulary.MANUFACTURER_MODEL}


def _relabel(entry: dict[str, Any], manufacturers: Sequence[str]) -> dict[str, Any]:
    """A validation-report subgroup entry in the shared vocabulary (``scanner`` → ``manufacturer_model``
    without the vendor prefix, ``F``/``M`` → ``female``/``male``)."""
    dimension, group = str(entry["dimension"]), str(entry["group"])
    if dimension in _LEGACY_DIMENSIONS:
        for manufacturer in manufacturers:
            if group.startswith(manufacturer + " "):
                group = group.removeprefix(manufacturer + " ")
                break
        dimension = _LEGACY_DIMENSIONS[dimension]
    elif dimension == vocabulary.SEX:
        group = vocabulary.sex_label(group)
    return {**entry, "dimension": dimension, "group": group}


def install_reference(folder: Path, arrays: dict[str, NDArray[Any]]) -> Path:
    """Write ``reference_profile.npz`` into an exported version folder and record it in ``metadata.json``.

    The metadata gets the reference's description (labelling, period, n, subgroup counts) and the file's
    new hash; its validation and test subgroups are relabelled in the shared vocabulary.

    Returns:
        The written profile.
    """
    from kernel.digest import sha256_file
    from modeling.export import REFERENCE_FILE, write_reference_profile

    path = folder / REFERENCE_FILE
    write_reference_profile(path, arrays)
    metadata_path = folder / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    manufacturers = sorted({str(m) for m in np.asarray(arrays["manufacturer"]).tolist()}, key=len, reverse=True)
    for split in metadata.get("metrics", {}).values():
        split["subgroups"] = [_relabel(entry, manufacturers) for entry in split.get("subgroups", [])]
    metadata["reference_profile"] = json.loads(str(arrays["metadata"]))
    metadata.setdefault("artifacts", {})[REFERENCE_FILE] = sha256_file(path)
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def concatenate(
    parts: Sequence[dict[str, NDArray[Any]]], threshold: float, temperature: float
) -> dict[str, NDArray[Any]]:
    """Join consecutive reference periods built by :func:`build_references` into one profile."""
    skip = {"threshold", "metadata"}
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0] if name not in skip}
    first = json.loads(str(parts[0]["metadata"]))["period"]
    last = json.loads(str(parts[-1]["metadata"]))["period"]
    period = {**first, "study_indices": [first["study_indices"][0], last["study_indices"][1]]}
    return profile_arrays(columns, threshold, temperature, period)
