"""What the runner monitors: every version on any arm of every routed model, as the route tables say now."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kernel.serving import ServedVersion
from services.monitors.ledger.domain import Arm
from services.monitors.runner.ports import MonitorTarget

__all__ = ["FixedTargets", "RoutedTargets", "ServedVersion", "ServedVersions"]


@dataclass(frozen=True)
class ServedVersions:
    """One model's route table as the runner needs it.

    Attributes:
        model_name: The model.
        stable_version: Answers by default.
        canary_version: Answers a share of studies, or empty.
        shadow_versions: Run silently beside the answer.
        revision: The table's revision (a newer one replaces an older one).
        served: What serves and judges each version (Triton target, reference profile); a version without an
            entry is judged against the model repository's ``<model_name>/<version>/`` profile.
    """

    model_name: str
    stable_version: str
    canary_version: str = ""
    shadow_versions: tuple[str, ...] = ()
    revision: int = 0
    served: tuple[ServedVersion, ...] = ()

    def _target(self, version: str, arm: Arm) -> MonitorTarget:
        entry = next((s for s in self.served if s.version == version), None)
        return MonitorTarget(self.model_name, version, arm.value, entry)

    def targets(self) -> list[MonitorTarget]:
        """One target per version and arm it is served on."""
        found = [self._target(self.stable_version, Arm.STABLE)]
        if self.canary_version:
            found.append(self._target(self.canary_version, Arm.CANARY))
        found.extend(self._target(version, Arm.SHADOW) for version in self.shadow_versions)
        return found


class RoutedTargets:
    """TargetSource kept current by the routes topic (a newer revision per model replaces the older)."""

    def __init__(self) -> None:
        """Start with no model routed."""
        self._tables: dict[str, ServedVersions] = {}
        self._lock = threading.Lock()

    def apply(self, table: ServedVersions) -> bool:
        """Install ``table`` if newer than the one held; True when it took effect."""
        with self._lock:
            held = self._tables.get(table.model_name)
            if held is not None and table.revision <= held.revision:
                return False
            self._tables = {**self._tables, table.model_name: table}
            return True

    def targets(self) -> list[MonitorTarget]:
        """Every served (model, version, arm), by model name."""
        tables = self._tables
        return [target for name in sorted(tables) for target in tables[name].targets()]


class FixedTargets:
    """TargetSource of a fixed list (settings without route following, tests)."""

    def __init__(self, targets: list[MonitorTarget]) -> None:
        """Hold ``targets``."""
        self._targets = list(targets)

    def targets(self) -> list[MonitorTarget]:
        """The list given."""
        return list(self._targets)
