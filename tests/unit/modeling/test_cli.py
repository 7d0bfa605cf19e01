"""The ``model`` typer sub-app, run on the tiny spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import modeling.cli
import modeling.train
from tests.unit.modeling.conftest import TINY_SEED, TINY_SPEC

runner = CliRunner()


@pytest.fixture
def tiny_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modeling.train, "VERSION_SPECS", {TINY_SPEC.version: TINY_SPEC})


def test_the_seed_default_is_trainings() -> None:
    assert modeling.cli.DEFAULT_SEED == modeling.train.DEFAULT_SEED


@pytest.mark.usefixtures("tiny_versions")
def test_export_trains_prints_metrics_and_writes_the_version(tmp_path: Path) -> None:
    result = runner.invoke(
        modeling.cli.app,
        ["export", "--version", str(TINY_SPEC.version), "--seed", str(TINY_SEED), "--repo", str(tmp_path)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "v3 epoch 1/1" in result.output
    assert "Held-out test split" in result.output
    assert "manufacturer_model: SR-250 Mobile" in result.output
    folder = tmp_path / "chest_nodule" / str(TINY_SPEC.version)
    assert f"wrote {folder}" in result.output.replace("\n", "")
    assert json.loads((folder / "metadata.json").read_text())["seed"] == TINY_SEED


@pytest.mark.usefixtures("tiny_versions")
def test_unknown_version_is_a_usage_error() -> None:
    result = runner.invoke(modeling.cli.app, ["train", "--version", "9"])
    assert result.exit_code == 2
    assert "unknown version" in result.output
