"""Drift reports on local disk (Evidently's HTML and JSON); reference profiles where routes say, else the model repo."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from kernel.digest import sha256_file
from services.monitors.core.reference import load_reference_profile
from services.monitors.core.window import Window
from services.monitors.drift.evidently_report import write_evidently_report
from services.monitors.drift.spec import DriftSpec
from services.monitors.runner.ports import MonitorTarget, ReferenceUnusable

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
    """ReferenceSource reading the profile a target's route names, else the model repository's.

    With a ``served`` entry carrying a ``reference_uri`` (a ``file://`` URI or a path; a relative path is
    taken from the working directory), that file, checked against ``reference_sha256`` when given. Otherwise
    ``<root>/<triton model>/<triton version>/reference_profile.npz`` of the Triton version serving the target,
    or ``<root>/<model>/<version>/reference_profile.npz`` when the route says nothing.
    """

    def __init__(self, root: Path) -> None:
        """Create the adapter.

        Args:
            root: The model repository.
        """
        self._root = root

    def path(self, target: MonitorTarget) -> Path:
        """Where ``target``'s reference profile should be.

        Raises:
            ReferenceUnusable: The route names a URI this adapter cannot read (not ``file://`` or a path).
        """
        served = target.served
        if served is not None and served.reference_uri:
            return reference_path(served.reference_uri)
        if served is not None:
            return self._root / served.triton_model / str(served.triton_version) / PROFILE_FILE
        return self._root / target.model_name / target.model_version / PROFILE_FILE

    def reference(self, target: MonitorTarget) -> Window:
        path = self.path(target)
        if not path.is_file():
            raise FileNotFoundError(f"no reference profile at {path}")
        expected = target.served.reference_sha256 if target.served is not None else ""
        if expected:
            actual = sha256_file(path)
            if actual != expected.lower():
                raise ReferenceUnusable(
                    f"reference profile {path} of {target}: sha256 is {actual}, the route table records {expected}"
                )
        try:
            return load_reference_profile(path, model_name=target.model_name, model_version=target.model_version)
        except (OSError, ValueError, KeyError) as error:
            raise ReferenceUnusable(f"reference profile {path} of {target} cannot be read: {error}") from error


def reference_path(uri: str) -> Path:
    """The local file a reference URI names: ``file://`` URIs and plain paths.

    Raises:
        ReferenceUnusable: Another scheme (the runner reads local files only).
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ReferenceUnusable(f"reference_uri {uri!r}: a file:// URI on another host cannot be read")
        return Path(url2pathname(unquote(parsed.path)))
    if parsed.scheme:
        raise ReferenceUnusable(f"reference_uri {uri!r}: only file:// URIs and local paths are supported")
    return Path(uri)
