"""Subgroups of a window: one per attribute value, and one per value combination of an intersection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.monitors.core.window import BoolArray, Window


@dataclass(frozen=True)
class Subgroup:
    """A set of patients defined by attribute values.

    Attributes:
        conditions: ``(attribute, value)`` pairs that must all hold.
    """

    conditions: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        """``attribute=value`` pairs joined by commas, e.g. ``sex=female,age_band=70+``."""
        return ",".join(f"{attribute}={value}" for attribute, value in self.conditions)

    def rows(self, window: Window) -> BoolArray:
        """Mask of the window's rows in this subgroup (none when the window lacks an attribute)."""
        mask = np.ones(len(window), dtype=bool)
        for attribute, value in self.conditions:
            if attribute not in window.attributes:
                return np.zeros(len(window), dtype=bool)
            mask &= window.attributes[attribute] == value
        return mask


def enumerate_subgroups(
    window: Window, attributes: Sequence[str], intersections: Sequence[Sequence[str]]
) -> list[Subgroup]:
    """The subgroups present in ``window``: each value of each attribute, then each value combination of
    each intersection that occurs (attributes the window does not carry are skipped)."""
    found: list[Subgroup] = []
    for attribute in attributes:
        if attribute in window.attributes:
            found.extend(Subgroup(((attribute, str(v)),)) for v in np.unique(window.attributes[attribute]))
    for combination in intersections:
        if not all(attribute in window.attributes for attribute in combination):
            continue
        columns = [window.attributes[attribute] for attribute in combination]
        present = sorted(set(zip(*(column.tolist() for column in columns), strict=True)))
        for values in present:
            found.append(Subgroup(tuple(zip(combination, (str(v) for v in values), strict=True))))
    return list(dict.fromkeys(found))
