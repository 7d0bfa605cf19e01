"""Discrimination metrics of a version, overall and per subgroup, at its operating threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from kernel import vocabulary

#: Age bands reported as subgroups: the shared vocabulary's labels (they match the simulator's prevalence bands).
AGE_BANDS: tuple[str, ...] = vocabulary.age_band_labels()


@dataclass(frozen=True)
class BinaryMetrics:
    """How well scores separate positives from negatives, and the decision rule ``score >= threshold``.

    Attributes:
        n: Studies.
        positives: Studies with a nodule.
        auroc: Area under the ROC curve (NaN when only one class is present).
        sensitivity: True-positive rate at the threshold (NaN without positives).
        specificity: True-negative rate at the threshold (NaN without negatives).
    """

    n: int
    positives: int
    auroc: float
    sensitivity: float
    specificity: float

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready form; NaN becomes None."""
        return {
            "n": self.n,
            "positives": self.positives,
            "auroc": _finite_or_none(self.auroc),
            "sensitivity": _finite_or_none(self.sensitivity),
            "specificity": _finite_or_none(self.specificity),
        }


@dataclass(frozen=True)
class SubgroupMetrics:
    """Metrics of one subgroup, e.g. dimension ``scanner``, group ``Contoso Radiography Sim CR-90``."""

    dimension: str
    group: str
    metrics: BinaryMetrics


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve via the Mann-Whitney rank statistic (ties count one half).

    Returns:
        The AUROC, or NaN when the labels hold a single class.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    positives = int((y == 1).sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(s)
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def binary_metrics(scores: ArrayLike, labels: ArrayLike, threshold: float) -> BinaryMetrics:
    """AUROC, and sensitivity and specificity of the rule ``score >= threshold``.

    Args:
        scores: Scores on the same scale as the threshold, shape (n,).
        labels: Ground truth 0/1, shape (n,).
        threshold: Decision threshold.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    decisions = s >= threshold
    positives = int((y == 1).sum())
    negatives = y.size - positives
    true_positives = int((decisions & (y == 1)).sum())
    true_negatives = int((~decisions & (y == 0)).sum())
    return BinaryMetrics(
        n=int(y.size),
        positives=positives,
        auroc=auroc(s, y),
        sensitivity=true_positives / positives if positives else float("nan"),
        specificity=true_negatives / negatives if negatives else float("nan"),
    )


def subgroup_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    threshold: float,
    groups: Mapping[str, Sequence[str] | NDArray[np.str_]],
) -> list[SubgroupMetrics]:
    """Metrics per subgroup, for every dimension in ``groups``.

    Args:
        scores: Scores, shape (n,).
        labels: Ground truth 0/1, shape (n,).
        threshold: The version's operating threshold (the same for every subgroup, as in deployment).
        groups: Dimension name → the group of each study, e.g. ``{"sex": ["F", "M", ...]}``.

    Returns:
        One entry per (dimension, group), dimensions in the given order, groups sorted.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    result = []
    for dimension, members in groups.items():
        values: NDArray[np.str_] = np.asarray(members, dtype=np.str_)
        if values.size != s.size:
            raise ValueError(f"groups[{dimension!r}] has {values.size} entries for {s.size} scores")
        for group in sorted(set(values.tolist())):
            mask = values == group
            result.append(SubgroupMetrics(dimension, group, binary_metrics(s[mask], y[mask], threshold)))
    return result


def age_band(age: int) -> str:
    """The reporting age band of an age in years, e.g. ``"50-69"`` (see :mod:`kernel.vocabulary`)."""
    return vocabulary.age_band(age)


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None
