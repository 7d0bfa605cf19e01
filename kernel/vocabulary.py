"""The subgroup vocabulary: attribute names and the labels each attribute's values take.

Every producer of a subgroup label (the gateway's prediction events, the reference builder, modeling's
validation report) and every consumer (monitor specs, governance gates, policies) uses these names and
functions, so ``age_band=70+`` or ``sex=female`` means the same patients everywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Attribute names (subgroup dimensions).
SITE = "site"
MANUFACTURER = "manufacturer"
MANUFACTURER_MODEL = "manufacturer_model"
SEX = "sex"
AGE_BAND = "age_band"

#: Every subgroup dimension, in report order.
DIMENSIONS: tuple[str, ...] = (SITE, MANUFACTURER, MANUFACTURER_MODEL, SEX, AGE_BAND)

#: Acquisition dimensions (describe the scanner and place, not the patient).
ACQUISITION_DIMENSIONS: frozenset[str] = frozenset({SITE, MANUFACTURER, MANUFACTURER_MODEL})

#: Ascending age band edges in years: bands ``<50``, ``50-69``, ``70+`` (the simulator's prevalence bands).
AGE_BAND_EDGES: tuple[int, ...] = (50, 70)

#: Sex labels as the ledger stores them.
FEMALE = "female"
MALE = "male"
OTHER = "other"
UNSPECIFIED = "unspecified"
SEX_LABELS: tuple[str, ...] = (FEMALE, MALE, OTHER, UNSPECIFIED)

_SEX_CODES: Mapping[str, str] = {
    "f": FEMALE,
    "female": FEMALE,
    "m": MALE,
    "male": MALE,
    "o": OTHER,
    "other": OTHER,
    "": UNSPECIFIED,
    "u": UNSPECIFIED,
    "unspecified": UNSPECIFIED,
}


def _check_edges(edges: tuple[int, ...]) -> None:
    if not edges or list(edges) != sorted(set(edges)) or edges[0] <= 0:
        raise ValueError(f"age band edges must be strictly ascending positive ages, got {edges}")


def age_band_labels(edges: tuple[int, ...] = AGE_BAND_EDGES) -> tuple[str, ...]:
    """Every band label for ``edges``, youngest first, e.g. ``("<50", "50-69", "70+")``."""
    _check_edges(edges)
    middle = [f"{low}-{high - 1}" for low, high in itertools.pairwise(edges)]
    return (f"<{edges[0]}", *middle, f"{edges[-1]}+")


def age_band(age: float | None, edges: tuple[int, ...] = AGE_BAND_EDGES) -> str:
    """The band label of one age in years (``""`` when the age is unknown).

    Raises:
        ValueError: If the age is negative or not finite.
    """
    if age is None:
        return ""
    return str(age_bands([age], edges)[0])


def age_bands(ages: ArrayLike, edges: tuple[int, ...] = AGE_BAND_EDGES) -> NDArray[np.str_]:
    """Band labels of many ages (vectorised :func:`age_band`).

    Raises:
        ValueError: If an age is negative or not finite.
    """
    values = np.asarray(ages, dtype=np.float64).reshape(-1)
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("ages must be finite and not negative")
    names = np.array(age_band_labels(edges), dtype=np.str_)
    bands: NDArray[np.str_] = names[np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")]
    return bands


def sex_label(value: str) -> str:
    """The ledger's sex label for a code or label (``F``/``female`` → ``female``).

    Raises:
        ValueError: If the value names no known sex label.
    """
    key = str(value).strip().lower()
    if key not in _SEX_CODES:
        raise ValueError(f"unknown sex {value!r} (known: {', '.join(SEX_LABELS)} or F/M/O/U)")
    return _SEX_CODES[key]


def sex_labels(values: Iterable[str] | ArrayLike) -> NDArray[np.str_]:
    """Vectorised :func:`sex_label`."""
    return np.array([sex_label(str(v)) for v in np.asarray(values).reshape(-1)], dtype=np.str_)


def subgroup(attribute: str, value: str) -> str:
    """The subgroup key used in findings, gates and registered validation reports: ``attribute=value``.

    Raises:
        ValueError: If the attribute is not one of :data:`DIMENSIONS`.
    """
    if attribute not in DIMENSIONS:
        raise ValueError(f"unknown subgroup dimension {attribute!r} (known: {', '.join(DIMENSIONS)})")
    return f"{attribute}={value}"
