"""The gateway's domain objects: a validated prediction command and what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from kernel import vocabulary
from services.gateway.routing import Arm


class Sex(Enum):
    """Patient sex as received."""

    UNSPECIFIED = "unspecified"
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


@dataclass(frozen=True)
class Acquisition:
    """Where and how the image was acquired (no patient data)."""

    site_id: str = ""
    modality: str = ""
    body_part: str = ""
    manufacturer: str = ""
    manufacturer_model: str = ""
    protocol_name: str = ""
    pixel_spacing_row_mm: float = 0.0
    pixel_spacing_col_mm: float = 0.0


@dataclass(frozen=True)
class Study:
    """The study reference."""

    study_uid: str
    series_uid: str = ""
    accession: str = ""


@dataclass(frozen=True)
class PredictCommand:
    """One validated request to score a study. The patient is already pseudonymised."""

    model_name: str
    request_id: str
    study: Study
    patient_pseudonym: str
    sex: Sex
    age_years: int | None
    acquisition: Acquisition
    image: npt.NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class ModelOutputs:
    """What the model returned for one image."""

    logit: float
    embedding: tuple[float, ...]
    descriptors: dict[str, float]


@dataclass(frozen=True)
class Prediction:
    """A scored, calibrated prediction (served or shadow)."""

    prediction_id: str
    model_name: str
    version: str
    arm: Arm
    raw_score: float
    probability: float
    positive: bool
    threshold: float
    latency_ms: float
    route_revision: int
    outputs: ModelOutputs
    served_prediction_id: str = ""


def age_band(age: int | None, edges: tuple[int, ...] = vocabulary.AGE_BAND_EDGES) -> str:
    """Age band label for ``age`` from the shared vocabulary, e.g. "<50", "50-69", "70+" ("" when unknown)."""
    return vocabulary.age_band(age, edges)
