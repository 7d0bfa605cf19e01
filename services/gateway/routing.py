"""Route tables and the sticky arm assignment every gateway computes the same way."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from enum import Enum

from kernel.serving import ServedVersion

#: Canary weights are integers in basis points so every gateway agrees exactly.
BUCKETS = 10_000


class Arm(Enum):
    """Which route a request takes."""

    STABLE = "stable"
    CANARY = "canary"
    SHADOW = "shadow"


@dataclass(frozen=True)
class TritonTarget:
    """The Triton model version that answers for a registry version."""

    model: str
    #: Triton's numeric version, as the text Triton's API takes.
    version: str


@dataclass(frozen=True)
class Route:
    """A model's routing: stable version, optional canary with weight, shadow versions.

    ``served`` says which Triton model version serves each version label; a label without an entry (a table
    written by hand, or an older one) is served by the Triton model of the route's name at that version.
    """

    model_name: str
    stable_version: str
    canary_version: str = ""
    canary_weight_bp: int = 0
    shadow_versions: tuple[str, ...] = ()
    revision: int = 0
    reason: str = ""
    served: tuple[ServedVersion, ...] = ()

    def __post_init__(self) -> None:
        if not self.stable_version:
            raise ValueError(f"route for {self.model_name!r}: stable_version is required")
        if not 0 <= self.canary_weight_bp <= BUCKETS:
            raise ValueError(f"route for {self.model_name!r}: canary_weight_bp must be within 0..{BUCKETS}")
        if self.canary_weight_bp and not self.canary_version:
            raise ValueError(f"route for {self.model_name!r}: a canary weight needs a canary_version")
        for entry in self.served:
            if not entry.complete:
                raise ValueError(
                    f"route for {self.model_name!r}: served entry {entry.version!r} needs a version, a Triton model "
                    "and a Triton version >= 1"
                )
        if len({entry.version for entry in self.served}) != len(self.served):
            raise ValueError(f"route for {self.model_name!r}: a version is listed twice in served")

    def target(self, version: str) -> TritonTarget:
        """The Triton model version serving ``version`` of this route."""
        for entry in self.served:
            if entry.version == version:
                return TritonTarget(entry.triton_model, str(entry.triton_version))
        return TritonTarget(self.model_name, version)


def bucket(study_uid: str) -> int:
    """Map a study UID uniformly onto ``[0, BUCKETS)``; the same UID always lands in the same bucket."""
    digest = hashlib.sha256(study_uid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Assignment:
    """Where one request goes: the answering version and arm, plus silent shadow versions."""

    version: str
    arm: Arm
    shadows: tuple[str, ...]
    revision: int


def assign(route: Route, study_uid: str) -> Assignment:
    """The arm for a study under ``route``: canary when its bucket is below the canary weight."""
    if route.canary_version and bucket(study_uid) < route.canary_weight_bp:
        version, arm = route.canary_version, Arm.CANARY
    else:
        version, arm = route.stable_version, Arm.STABLE
    shadows = tuple(v for v in route.shadow_versions if v != version)
    return Assignment(version, arm, shadows, route.revision)


@dataclass
class RouteBook:
    """The route tables a gateway applies, one per model, swapped atomically.

    Readers take the current mapping without locking (a dict reference swap is atomic);
    writers build a new mapping under a lock. A table is applied only if its revision is newer,
    so replays of the compacted topic and out-of-order deliveries change nothing.
    """

    _routes: dict[str, Route] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: True once the whole route table was read (the routes topic to its end, once). Until then a model
    #: without a route may merely not be known *yet*: callers get UNAVAILABLE, not NOT_FOUND.
    loaded: bool = False

    def mark_loaded(self) -> None:
        """Record that the route table is complete as of now."""
        self.loaded = True

    def get(self, model_name: str) -> Route | None:
        """The current route for a model, or None when it has none."""
        return self._routes.get(model_name)

    def target(self, model_name: str, version: str) -> TritonTarget:
        """The Triton model version serving ``version`` of ``model_name`` under the current route.

        A model without a route resolves to itself, so callers keep their own errors for unknown models.
        """
        route = self._routes.get(model_name)
        return route.target(version) if route is not None else TritonTarget(model_name, version)

    def triton_model(self, model_name: str) -> str:
        """The Triton model serving ``model_name``'s stable version (``model_name`` itself without a route).

        What a request is checked against (input shape, outputs) before it is routed: every version of a route
        is expected to take the same input.
        """
        route = self._routes.get(model_name)
        return route.target(route.stable_version).model if route is not None else model_name

    def models(self) -> list[str]:
        """Model names with a route."""
        return sorted(self._routes)

    def apply(self, route: Route) -> bool:
        """Install ``route`` if it is newer than the one held; True when it took effect."""
        with self._lock:
            current = self._routes.get(route.model_name)
            if current is not None and route.revision <= current.revision:
                return False
            updated = dict(self._routes)
            updated[route.model_name] = route
            self._routes = updated
            return True
