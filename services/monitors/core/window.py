"""A window of one model version's predictions, held as columns, with the reads that have arrived.

Every monitor calculator takes windows: the traffic being judged and a baseline to judge it against (the
version's reference profile, or the stable version's window over the same time). Missing values are NaN:
a prediction without a read has ``label`` and ``override`` NaN, a prediction without a decision has
``decision`` NaN. Arrays are copied in and made read-only, so a window can be shared between monitors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kernel import vocabulary

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
StrArray = NDArray[np.str_]

#: Reporting age bands: the shared vocabulary's labels (``<50``, ``50-69``, ``70+``), as the gateway labels events.
AGE_BANDS: tuple[str, ...] = vocabulary.age_band_labels()

#: Attribute names the monitors know about (a window may carry others; specs name what they use).
SITE = vocabulary.SITE
MANUFACTURER = vocabulary.MANUFACTURER
MANUFACTURER_MODEL = vocabulary.MANUFACTURER_MODEL
SEX = vocabulary.SEX
AGE_BAND = vocabulary.AGE_BAND

_LABEL_VALUES = (0.0, 1.0)


def age_bands(ages: ArrayLike) -> StrArray:
    """Map ages in years to the vocabulary's age band labels (see :func:`kernel.vocabulary.age_bands`).

    Raises:
        ValueError: If an age is negative or not finite.
    """
    return vocabulary.age_bands(ages)


def _frozen_float(values: ArrayLike, name: str, n: int | None) -> FloatArray:
    array = np.array(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} rows, expected {n}")
    array.setflags(write=False)
    return array


def _frozen_str(values: ArrayLike, name: str, n: int) -> StrArray:
    array = np.array(values, dtype=np.str_)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {array.shape}")
    array.setflags(write=False)
    return array


def _nan_column(n: int) -> FloatArray:
    array = np.full(n, np.nan)
    array.setflags(write=False)
    return array


def _check_binary(values: FloatArray, name: str) -> None:
    present = values[~np.isnan(values)]
    if not np.isin(present, _LABEL_VALUES).all():
        raise ValueError(f"{name} must be 0, 1 or NaN")


@dataclass(frozen=True)
class LabelMaturity:
    """How many of a window's predictions have a read (label) yet.

    Attributes:
        labelled: Predictions with a read.
        total: Predictions in the window.
    """

    labelled: int
    total: int

    @property
    def fraction(self) -> float:
        """labelled / total (0.0 for an empty window)."""
        return self.labelled / self.total if self.total else 0.0

    @property
    def partial(self) -> bool:
        """True while some predictions still wait for their read."""
        return self.labelled < self.total

    def __str__(self) -> str:
        return f"{self.labelled}/{self.total} labelled ({self.fraction:.0%})"


@dataclass(frozen=True, eq=False)
class Window:
    """Predictions of one model version and arm, as aligned columns (one row per prediction).

    Build one with :meth:`from_columns`, which converts, validates and fills missing columns.

    Attributes:
        model_name: The model.
        model_version: The version that produced the predictions.
        arm: Route the traffic took (``stable``, ``canary``, ``shadow``) or ``reference``.
        score: Raw model score (logit), shape (n,).
        probability: Calibrated probability served, shape (n,).
        decision: Decision at the operating point, 0/1 or NaN.
        label: Radiologist's read, 0/1, NaN while no read has arrived.
        override: 1 when the read disagreed with the decision, 0 when it agreed, NaN without a read.
        features: Numeric inputs for drift by feature name (e.g. ``intensity.p95``, ``embedding.3``,
            ``acquisition.pixel_spacing``), each shape (n,).
        attributes: Categorical columns by name (``site``, ``manufacturer``, ``manufacturer_model``,
            ``sex``, ``age_band``, ...), each shape (n,).
        start: First event time covered (inclusive), if known.
        end: Event time where the window stops (exclusive), if known.
    """

    model_name: str
    model_version: str
    arm: str
    score: FloatArray
    probability: FloatArray
    decision: FloatArray
    label: FloatArray
    override: FloatArray
    features: Mapping[str, FloatArray] = field(default_factory=dict)
    attributes: Mapping[str, StrArray] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def from_columns(
        cls,
        *,
        model_name: str,
        model_version: str,
        arm: str,
        score: ArrayLike,
        probability: ArrayLike | None = None,
        decision: ArrayLike | None = None,
        label: ArrayLike | None = None,
        override: ArrayLike | None = None,
        features: Mapping[str, ArrayLike] | None = None,
        attributes: Mapping[str, ArrayLike] | None = None,
        threshold: float | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Window:
        """Build a validated window from plain columns.

        Args:
            model_name: The model.
            model_version: The version.
            arm: Traffic arm or ``reference``.
            score: Raw scores (logits).
            probability: Served probabilities; the logistic of ``score`` when omitted.
            decision: Decisions; derived as ``probability >= threshold`` when omitted and a threshold is
                given, else all NaN.
            label: Reads (0/1/NaN); all NaN when omitted.
            override: Override flags (0/1/NaN); derived as ``label != decision`` where both are known
                when omitted.
            features: Numeric drift inputs by name.
            attributes: Categorical columns by name.
            threshold: Operating point on ``probability``, used only to derive ``decision``.
            start: First event time covered.
            end: End of the covered time (exclusive).

        Returns:
            The window, with every array copied and read-only.

        Raises:
            ValueError: If a column has the wrong length or shape, a probability is outside [0, 1], or a
                label, decision or override is not 0, 1 or NaN.
        """
        scores = _frozen_float(score, "score", None)
        n = scores.shape[0]
        if probability is None:
            probabilities = _frozen_float(1.0 / (1.0 + np.exp(-scores)), "probability", n)
        else:
            probabilities = _frozen_float(probability, "probability", n)
        if decision is not None:
            decisions = _frozen_float(decision, "decision", n)
        elif threshold is not None:
            decisions = _frozen_float(
                np.where(np.isnan(probabilities), np.nan, (probabilities >= threshold).astype(np.float64)),
                "decision",
                n,
            )
        else:
            decisions = _nan_column(n)
        labels = _nan_column(n) if label is None else _frozen_float(label, "label", n)
        if override is None:
            known = ~np.isnan(labels) & ~np.isnan(decisions)
            derived = np.where(known, (labels != decisions).astype(np.float64), np.nan)
            overrides = _frozen_float(derived, "override", n)
        else:
            overrides = _frozen_float(override, "override", n)
        return cls(
            model_name=model_name,
            model_version=model_version,
            arm=arm,
            score=scores,
            probability=probabilities,
            decision=decisions,
            label=labels,
            override=overrides,
            features=MappingProxyType(
                {name: _frozen_float(values, f"features[{name!r}]", n) for name, values in (features or {}).items()}
            ),
            attributes=MappingProxyType(
                {name: _frozen_str(values, f"attributes[{name!r}]", n) for name, values in (attributes or {}).items()}
            ),
            start=start,
            end=end,
        )

    def __post_init__(self) -> None:
        n = self.score.shape[0]
        for name in ("probability", "decision", "label", "override"):
            column: FloatArray = getattr(self, name)
            if column.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {column.shape}")
        finite = self.probability[~np.isnan(self.probability)]
        if ((finite < 0.0) | (finite > 1.0)).any():
            raise ValueError("probability must lie in [0, 1]")
        for name in ("decision", "label", "override"):
            _check_binary(getattr(self, name), name)
        for name, values in {**self.features, **self.attributes}.items():
            if values.shape != (n,):
                raise ValueError(f"column {name!r} must have shape ({n},), got {values.shape}")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("end must be after start")

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @property
    def labelled(self) -> BoolArray:
        """Mask of the predictions that have a read."""
        return ~np.isnan(self.label)

    @property
    def maturity(self) -> LabelMaturity:
        """How many predictions have a read."""
        return LabelMaturity(int(self.labelled.sum()), len(self))

    def select(self, rows: BoolArray | NDArray[np.intp] | slice) -> Window:
        """The window restricted to some rows (same model, version, arm and time range).

        Args:
            rows: Boolean mask, integer indices or a slice over the rows.
        """
        return Window.from_columns(
            model_name=self.model_name,
            model_version=self.model_version,
            arm=self.arm,
            score=self.score[rows],
            probability=self.probability[rows],
            decision=self.decision[rows],
            label=self.label[rows],
            override=self.override[rows],
            features={name: values[rows] for name, values in self.features.items()},
            attributes={name: values[rows] for name, values in self.attributes.items()},
            start=self.start,
            end=self.end,
        )
