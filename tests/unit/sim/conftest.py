"""Shared fixtures for the simulator tests."""

from __future__ import annotations

import pytest

from tests.unit.sim.scenario_factory import ScenarioFactory, small


@pytest.fixture
def small_scenario() -> ScenarioFactory:
    """Factory for shipped scenarios shrunk to small images (default 32x32)."""
    return small
