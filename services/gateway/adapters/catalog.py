"""ModelCatalog read from a Triton model repository on disk (config.pbtxt + per-version calibration.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.gateway.calibration import Calibration
from services.runtime.errors import NotFound


@dataclass(frozen=True)
class ModelEntry:
    """One model of the repository."""

    name: str
    input_shape: tuple[int, ...]
    calibrations: dict[str, Calibration]
    #: Names of the model's outputs, as its config declares them.
    outputs: tuple[str, ...] = ()


class RepositoryCatalog:
    """What the gateway knows about each model, loaded once from ``model_repo/``."""

    def __init__(self, entries: dict[str, ModelEntry]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, repo: Path) -> RepositoryCatalog:
        """Read every ``<model>/config.pbtxt`` and ``<model>/<version>/calibration.json``."""
        entries = {}
        for config_path in sorted(repo.glob("*/config.pbtxt")):
            config = text_format.Parse(config_path.read_text(), model_config_pb2.ModelConfig())
            name = config.name or config_path.parent.name
            image = next((i for i in config.input if i.name == "IMAGE"), None)
            if image is None:
                continue
            calibrations = {
                cal.parent.name: Calibration.from_file(cal)
                for cal in sorted(config_path.parent.glob("*/calibration.json"))
                if cal.parent.name.isdigit()
            }
            outputs = tuple(o.name for o in config.output)
            entries[name] = ModelEntry(name, tuple(int(d) for d in image.dims), calibrations, outputs)
        return cls(entries)

    def names(self) -> list[str]:
        """Model names in the catalog."""
        return sorted(self._entries)

    def versions(self, model_name: str) -> list[str]:
        """Versions with a calibration, ascending."""
        return sorted(self._entry(model_name).calibrations, key=int)

    def _entry(self, model_name: str) -> ModelEntry:
        entry = self._entries.get(model_name)
        if entry is None:
            raise NotFound(f"model '{model_name}'")
        return entry

    def input_shape(self, model_name: str) -> tuple[int, ...]:
        """Shape of one image, without the batch axis."""
        return self._entry(model_name).input_shape

    def outputs(self, model_name: str) -> tuple[str, ...]:
        """Names of the model's outputs (from its config)."""
        return self._entry(model_name).outputs

    def calibration(self, model_name: str, version: str) -> Calibration:
        """Temperature and threshold of a version."""
        cal = self._entry(model_name).calibrations.get(version)
        if cal is None:
            raise NotFound(f"model '{model_name}' version {version}")
        return cal
