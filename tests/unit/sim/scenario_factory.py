"""Shipped scenarios shrunk to small images, so tests run fast on the same patients and field of view."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache

from sim import Scenario, load_scenario

#: Type of the ``small_scenario`` fixture: ``small_scenario(name="baseline", image_size=32)``.
ScenarioFactory = Callable[..., Scenario]


@cache
def small(name: str = "baseline", image_size: int = 32) -> Scenario:
    """A shipped scenario with a smaller image matrix (cached: scenarios are immutable)."""
    return dataclasses.replace(load_scenario(name), image_size=image_size)
