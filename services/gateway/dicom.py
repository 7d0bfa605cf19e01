"""Reading a DICOM instance sent to the gateway: pixels as float32 plus the acquisition tags."""

from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError

from services.runtime.errors import InvalidArgument
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)
_pydicom_log = logging.getLogger("pydicom")


@dataclass(frozen=True)
class DicomImage:
    """Pixels (float32, shape (1, rows, cols), rescaled to modality units) and acquisition tags."""

    image: npt.NDArray[np.float32]
    study_uid: str
    series_uid: str
    sop_uid: str
    accession: str
    patient_id: str
    issuer: str
    sex: str
    age_years: int | None
    modality: str
    body_part: str
    manufacturer: str
    manufacturer_model: str
    institution: str
    protocol_name: str
    pixel_spacing: tuple[float, float]


def _age(value: str) -> int | None:
    # DICOM AS: nnnD/W/M/Y; only years are meaningful for subgroups.
    if len(value) == 4 and value[:3].isdigit() and value[3] in "DWMY":
        n = int(value[:3])
        return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[value[3]]
    return None


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _decimal(ds: pydicom.Dataset, keyword: str, default: float, field: str) -> float:
    """A finite decimal-string tag (e.g. RescaleSlope), or ``default`` when absent or empty."""
    try:
        raw = getattr(ds, keyword, None)
        value = float(raw) if raw not in (None, "") else default
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument(f"{field}.{keyword}", "is not a decimal number") from None
    if not (math.isfinite(value) and abs(value) <= _FLOAT32_MAX):
        raise InvalidArgument(f"{field}.{keyword}", "must be a finite number within float32 range")
    return value or default  # a zero slope would blank the image: read it as absent, as before


def read_dicom(data: bytes, field: str = "dicom.data") -> DicomImage:
    """Parse a Part-10 instance; any problem becomes InvalidArgument naming ``field``.

    pydicom's validation warnings quote the offending values (a malformed UID, a name), so they are
    caught here and only their number is logged; no text from pydicom reaches the logs or the caller.
    """
    if not data:
        raise InvalidArgument(field, "is empty")
    # pydicom's own logger quotes element values (UIDs, names) too; what it would say is raised anyway.
    _pydicom_log.setLevel(logging.CRITICAL + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = _parse(data, field)
    if caught:
        _log.warning("gateway.dicom_validation_warnings", count=len(caught))
    return parsed


def _parse(data: bytes, field: str) -> DicomImage:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
        pixels = ds.pixel_array
    except (InvalidDicomError, EOFError) as exc:
        raise InvalidArgument(field, f"is not a readable DICOM Part-10 instance ({type(exc).__name__})") from None
    except Exception as exc:
        raise InvalidArgument(field, f"could not be decoded ({type(exc).__name__})") from None
    if pixels.ndim != 2:
        raise InvalidArgument(field, f"holds pixel data of {pixels.ndim} dimensions; one 2-D frame is expected")
    slope = _decimal(ds, "RescaleSlope", 1.0, field)
    intercept = _decimal(ds, "RescaleIntercept", 0.0, field)
    image = (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept))[np.newaxis]
    spacing = getattr(ds, "PixelSpacing", None)
    try:
        row_mm, col_mm = (float(spacing[0]), float(spacing[1])) if spacing else (0.0, 0.0)
    except (TypeError, ValueError, IndexError):
        raise InvalidArgument(f"{field}.PixelSpacing", "is malformed") from None

    def text(keyword: str) -> str:
        return str(getattr(ds, keyword, "") or "")

    return DicomImage(
        image=image,
        study_uid=text("StudyInstanceUID"),
        series_uid=text("SeriesInstanceUID"),
        sop_uid=text("SOPInstanceUID"),
        accession=text("AccessionNumber"),
        patient_id=text("PatientID"),
        issuer=text("IssuerOfPatientID"),
        sex=text("PatientSex"),
        age_years=_age(text("PatientAge")),
        modality=text("Modality"),
        body_part=text("BodyPartExamined"),
        manufacturer=text("Manufacturer"),
        manufacturer_model=text("ManufacturerModelName"),
        institution=text("InstitutionName"),
        protocol_name=text("ProtocolName"),
        pixel_spacing=(row_mm, col_mm),
    )
