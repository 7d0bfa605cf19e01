"""Drift reports on local disk (Evidently's HTML and JSON) and reference profiles from the model repository."""

from __future__ import annotations

from pathlib import Path

from services.monitors.core.reference import load_reference_profile
from services.monitors.core.window import Window
from services.monitors.drift.evidently_report import write_evidently_report
from services.monitors.drift.spec import DriftSpec

PROFILE_FILE = "reference_profile.npz"


class EvidentlyReportFolder:
    """DriftReportWriter writing into one folder; the URI is the HTML file's absolute path."""

    def __init__(self, directory: Path) -> None:
        """Create the adapter (the folder is created on the first report)."""
        self._directory = directory

    def write(self, reference: Window, current: Window, spec: DriftSpec, stem: str) -> str:
        report = write_evidently_report(reference, current, spec, self._directory, stem)
        return str(report.html_path.resolve())


class ModelRepoReferences:
    """ReferenceSource reading ``<root>/<model>/<version>/reference_profile.npz``."""

    def __init__(self, root: Path) -> None:
        """Create the adapter.

        Args:
            root: The model repository.
        """
        self._root = root

    def reference(self, model_name: str, model_version: str) -> Window:
        path = self._root / model_name / model_version / PROFILE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no reference profile at {path}")
        return load_reference_profile(path, model_name=model_name, model_version=model_version)
