"""The Evidently report of a drift window: written as HTML and JSON, and agreeing with the streaming path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.monitors.core import Severity
from services.monitors.drift import DriftMonitor, DriftSpec
from services.monitors.drift.evidently_report import write_evidently_report
from tests.unit.monitors_stats.conftest import DRIFT_SEEDS, SHIFT_START
from tests.unit.monitors_stats.simulated import SimRows, to_window

# Evidently's own dependencies warn about their deprecations on import; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.slow
def test_report_is_written_and_agrees_on_the_shifted_site(
    tmp_path: Path, drift_reference: SimRows, drift_streams: dict[int, SimRows]
) -> None:
    spec = DriftSpec(name="chest-drift", numeric_features=("intensity.mean", "intensity.p5", "intensity.std"))
    stream = drift_streams[DRIFT_SEEDS[0]]
    reference = to_window(drift_reference, arm="reference")
    site_b = reference.attributes["site"] == "site-B"
    current = to_window(stream.take(slice(SHIFT_START, SHIFT_START + 1000)))
    current_b = current.select(current.attributes["site"] == "site-B")

    report = write_evidently_report(reference.select(site_b), current_b, spec, tmp_path, "chest-nodule/1 canary")
    assert report.html_path == tmp_path / "chest-nodule_1_canary.html"
    assert report.html_path.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    snapshot = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert "metrics" in snapshot
    assert set(report.verdicts) == {
        "intensity.mean",
        "intensity.p5",
        "intensity.std",
        "output.score",
        "acquisition.site",
        "acquisition.manufacturer",
        "acquisition.manufacturer_model",
        "patient.sex",  # case mix is watched by default
        "patient.age_band",
    }
    # The planted shift moves p5 a lot and leaves std alone: both paths must say so.
    assert report.verdicts["intensity.p5"].drifted
    assert not report.verdicts["intensity.std"].drifted
    streaming = DriftMonitor(reference, spec).evaluate(current)
    assert streaming.get("ks_statistic", subgroup="site=site-B", feature="intensity.p5").severity is Severity.BREACH
    assert streaming.get("ks_statistic", subgroup="site=site-B", feature="intensity.std").severity is Severity.INFO
