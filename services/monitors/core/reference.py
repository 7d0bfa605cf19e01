"""Loading a model version's reference profile (``reference_profile.npz``) as a baseline window.

A version ships, beside its weights in ``model_repo/<model>/<version>/``, what its validation predictions
looked like: logits, probabilities, labels, embeddings, image intensity statistics, acquisition metadata
and patient sex and age, one row per validation study. The monitors compare live windows against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kernel import vocabulary
from services.monitors.core.window import (
    AGE_BAND,
    MANUFACTURER,
    MANUFACTURER_MODEL,
    SEX,
    SITE,
    Window,
    age_bands,
)

#: Column names of the ``image_stats`` matrix when the file does not name them (the model's order).
DEFAULT_IMAGE_STAT_NAMES = ("mean", "std", "p5", "p50", "p95")

#: Feature name prefixes of the window built from a profile.
INTENSITY_PREFIX = "intensity."
EMBEDDING_PREFIX = "embedding."
PIXEL_SPACING = "acquisition.pixel_spacing"


def normalise_sex(values: NDArray[np.str_]) -> NDArray[np.str_]:
    """Map ``F``/``M`` codes to the ledger's ``female``/``male`` (the shared vocabulary's labels)."""
    return vocabulary.sex_labels(values)


def _matrix(data: dict[str, NDArray[np.generic]], key: str, n: int) -> NDArray[np.float64]:
    matrix = np.asarray(data[key], dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise ValueError(f"reference profile: {key} must have shape ({n}, k), got {matrix.shape}")
    return matrix


def load_reference_profile(
    path: str | Path, *, model_name: str, model_version: str, threshold: float | None = None
) -> Window:
    """Read a ``reference_profile.npz`` into a window with arm ``reference``.

    Keys used (all but one of ``logits``/``probabilities`` optional): ``logits``, ``probabilities``,
    ``labels``, ``embeddings`` (n, d) → features ``embedding.<i>``, ``image_stats`` (n, k) → features
    ``intensity.<name>`` (names from ``image_stat_names`` or :data:`DEFAULT_IMAGE_STAT_NAMES`),
    ``pixel_spacing`` → ``acquisition.pixel_spacing``, ``site``, ``manufacturer``, ``model`` (scanner model)
    → attributes ``site``, ``manufacturer``, ``manufacturer_model``, ``sex`` (F/M → female/male), ``age`` →
    ``age_band``, and ``threshold`` (operating point) when the argument is not given.

    Args:
        path: The npz file.
        model_name: The model it belongs to.
        model_version: The version it belongs to.
        threshold: Operating point on the probability, to derive decisions; overrides the file's.

    Returns:
        The reference window. Without a threshold anywhere, decisions are NaN (rank-based tests still
        work; proportion metrics are then undefined for the reference).

    Raises:
        ValueError: If neither logits nor probabilities are present or shapes disagree.
    """
    with np.load(Path(path), allow_pickle=False) as archive:
        data = {key: archive[key] for key in archive.files}
    if "logits" in data:
        score = np.asarray(data["logits"], dtype=np.float64).reshape(-1)
    elif "probabilities" in data:
        p = np.clip(np.asarray(data["probabilities"], dtype=np.float64).reshape(-1), 1e-12, 1 - 1e-12)
        score = np.log(p / (1.0 - p))
    else:
        raise ValueError("reference profile: needs logits or probabilities")
    n = score.shape[0]
    probability = None
    if "probabilities" in data:
        probability = np.asarray(data["probabilities"], dtype=np.float64).reshape(-1)
    label = np.asarray(data["labels"], dtype=np.float64).reshape(-1) if "labels" in data else None
    if threshold is None and "threshold" in data:
        threshold = float(np.asarray(data["threshold"]).reshape(-1)[0])

    return Window.from_columns(
        model_name=model_name,
        model_version=model_version,
        arm="reference",
        score=score,
        probability=probability,
        label=label,
        threshold=threshold,
        features=_features(data, n),
        attributes=_attributes(data),
    )


def _features(data: dict[str, NDArray[np.generic]], n: int) -> dict[str, NDArray[np.float64]]:
    features: dict[str, NDArray[np.float64]] = {}
    if "image_stats" in data:
        stats = _matrix(data, "image_stats", n)
        names = tuple(str(name) for name in data.get("image_stat_names", np.array(DEFAULT_IMAGE_STAT_NAMES)))
        if len(names) != stats.shape[1]:
            names = tuple(f"stat{i}" for i in range(stats.shape[1]))
        features.update({f"{INTENSITY_PREFIX}{name}": stats[:, i] for i, name in enumerate(names)})
    if "embeddings" in data:
        embeddings = _matrix(data, "embeddings", n)
        features.update({f"{EMBEDDING_PREFIX}{i}": embeddings[:, i] for i in range(embeddings.shape[1])})
    if "pixel_spacing" in data:
        features[PIXEL_SPACING] = np.asarray(data["pixel_spacing"], dtype=np.float64).reshape(-1)
    return features


def _attributes(data: dict[str, NDArray[np.generic]]) -> dict[str, NDArray[np.str_]]:
    attributes: dict[str, NDArray[np.str_]] = {}
    for key, name in (("site", SITE), ("manufacturer", MANUFACTURER), ("model", MANUFACTURER_MODEL)):
        if key in data:
            attributes[name] = np.asarray(data[key]).astype(np.str_)
    if "sex" in data:
        attributes[SEX] = normalise_sex(np.asarray(data["sex"]).astype(np.str_))
    if "age" in data:
        attributes[AGE_BAND] = age_bands(np.asarray(data["age"], dtype=np.float64))
    return attributes
