"""A model version's calibration: temperature scaling of the logit and the operating threshold."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Calibration:
    """Temperature and threshold of one model version."""

    temperature: float
    threshold: float

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")

    def probability(self, logit: float) -> float:
        """Calibrated probability sigmoid(logit / T), computed without overflow."""
        z = logit / self.temperature
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)

    def decide(self, probability: float) -> bool:
        """True (positive) when the probability reaches the threshold."""
        return probability >= self.threshold

    @classmethod
    def from_file(cls, path: Path) -> Calibration:
        """Read ``calibration.json`` (keys ``temperature`` and ``threshold``)."""
        data = json.loads(path.read_text())
        return cls(temperature=float(data["temperature"]), threshold=float(data["threshold"]))
