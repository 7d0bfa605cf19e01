"""A tiny trained-and-exported model shared by the modeling unit tests (seconds to build, not minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.export import export
from modeling.train import TrainedModel, VersionSpec, train

#: Small enough to train in a few seconds; it does not learn much, which these tests do not need.
TINY_SPEC = VersionSpec(
    version=3,
    summary="Tiny test model.",
    train_studies=160,
    epochs=1,
    calibration_studies=200,
    validation_studies=200,
    test_studies=120,
    exclude_scanners=("SimRay Medical SR-250 Mobile",),
)
TINY_SEED = 11


@pytest.fixture(scope="session")
def tiny_trained() -> TrainedModel:
    """TINY_SPEC trained once per session."""
    return train(TINY_SPEC, TINY_SEED)


@pytest.fixture(scope="session")
def tiny_export(tiny_trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported into a temporary model repository; returns the version folder."""
    return export(tiny_trained, tmp_path_factory.mktemp("model_repo"))
