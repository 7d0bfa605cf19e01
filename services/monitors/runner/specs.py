"""Which monitors run and with what spec: ``<kind>.yaml`` files from a folder, defaults otherwise."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from services.monitors.bias.spec import BiasSpec
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.findings import MonitorKind
from services.monitors.core.specs import MonitorSpec
from services.monitors.drift.spec import DriftSpec
from services.monitors.performance.spec import PerformanceSpec

SPEC_TYPES: dict[MonitorKind, type[MonitorSpec]] = {
    MonitorKind.DRIFT: DriftSpec,
    MonitorKind.CALIBRATION: CalibrationSpec,
    MonitorKind.BIAS: BiasSpec,
    MonitorKind.PERFORMANCE: PerformanceSpec,
}


def load_specs(
    kinds: Iterable[MonitorKind], model_name: str, directory: Path | None = None
) -> dict[MonitorKind, MonitorSpec]:
    """The spec of each monitor kind to run.

    Args:
        kinds: The monitors to run.
        model_name: Names the default specs (``<model>-<kind>``).
        directory: Folder holding ``drift.yaml``, ``calibration.yaml``...; a kind without a file gets the
            default spec.

    Returns:
        Spec by kind, in the order of ``kinds``.

    Raises:
        ValueError: A spec file is not a valid spec of its kind.
    """
    specs: dict[MonitorKind, MonitorSpec] = {}
    for kind in kinds:
        spec_type = SPEC_TYPES[kind]
        path = directory / f"{kind.value}.yaml" if directory is not None else None
        if path is not None and path.is_file():
            specs[kind] = spec_type.from_yaml(path.read_text(encoding="utf-8"))
        else:
            specs[kind] = spec_type(name=f"{model_name}-{kind.value}")
    return specs
