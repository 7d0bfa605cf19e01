"""DICOM Part-10 writing and reading for simulated chest radiographs.

``to_dicom`` stores the float image as 16-bit unsigned integers with RescaleSlope/RescaleIntercept chosen so
the image round-trips within half a quantisation step. ``from_dicom`` reads uncompressed little-endian
monochrome instances back, and turns every problem with the input into a ``ValueError`` that says what is
wrong, so a service can answer "invalid argument" with a useful message.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import format_number_as_ds

from sim.study import Study

#: SOP class per modality.
SOP_CLASS_BY_MODALITY = {"DX": DigitalXRayImageStorageForPresentation, "CR": ComputedRadiographyImageStorage}
#: Transfer syntaxes ``from_dicom`` can decode (uncompressed little endian).
SUPPORTED_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
#: Inputs larger than this are refused before parsing.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Largest Rows or Columns ``from_dicom`` accepts.
MAX_DIMENSION = 8192
_PREAMBLE = 128
_MAGIC = b"DICM"
_LEVELS = 65535
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0, "Y": 365.25}


@dataclass(frozen=True)
class DicomMetadata:
    """The attributes ``from_dicom`` extracts; optional ones are None when the instance lacks them.

    Attributes:
        sop_class_uid: SOPClassUID.
        sop_uid: SOPInstanceUID.
        study_uid: StudyInstanceUID.
        series_uid: SeriesInstanceUID.
        transfer_syntax_uid: The file's transfer syntax.
        modality: Modality, e.g. ``DX``.
        accession: AccessionNumber.
        patient_id: PatientID.
        patient_sex: PatientSex (``F``, ``M``, ``O``).
        patient_age_years: PatientAge converted to whole years.
        institution: InstitutionName (the simulator writes the site id here).
        manufacturer: Manufacturer.
        model: ManufacturerModelName.
        body_part: BodyPartExamined.
        protocol: ProtocolName.
        pixel_spacing: (row, column) spacing in mm, from PixelSpacing or ImagerPixelSpacing.
        acquired_at: AcquisitionDate/Time (else ContentDate/Time, else StudyDate/Time); timezone-aware
            when TimezoneOffsetFromUTC is present.
        rows: Rows.
        columns: Columns.
        rescale_slope: RescaleSlope (1 when absent).
        rescale_intercept: RescaleIntercept (0 when absent).
    """

    sop_class_uid: str
    sop_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    modality: str | None
    accession: str | None
    patient_id: str | None
    patient_sex: str | None
    patient_age_years: int | None
    institution: str | None
    manufacturer: str | None
    model: str | None
    body_part: str | None
    protocol: str | None
    pixel_spacing: tuple[float, float] | None
    acquired_at: datetime | None
    rows: int
    columns: int
    rescale_slope: float
    rescale_intercept: float


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _quantisation(image: NDArray[np.float32]) -> tuple[str, str]:
    """RescaleSlope and RescaleIntercept as DS strings covering the image's range in 65,535 steps."""
    low, high = float(image.min()), float(image.max())
    slope = (high - low) / _LEVELS if high > low else 1.0
    return _ds(slope), _ds(low)


def to_dicom(study: Study) -> bytes:
    """Encode a study as a DICOM Part-10 instance (explicit VR little endian).

    The SOP class is Digital X-Ray Image Storage - For Presentation for DX studies and Computed
    Radiography Image Storage for CR. The image is stored as uint16 with RescaleSlope/Intercept; decoding
    gives the float image back within ``RescaleSlope / 2``. The label and lesion ground truth are not
    written: the file is what a model would see.

    Args:
        study: A simulated study with an image of shape (1, H, W).

    Returns:
        The encoded instance.

    Raises:
        ValueError: If the image is not (1, H, W) and finite, or the modality is not DX or CR.
    """
    image = np.asarray(study.image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != 1 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"study.image must have shape (1, H, W), got {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("study.image contains NaN or infinite values")
    if study.modality not in SOP_CLASS_BY_MODALITY:
        known = sorted(SOP_CLASS_BY_MODALITY)
        raise ValueError(f"study.modality must be one of {known}, got {study.modality!r}")
    ds = Dataset()
    sop_class = SOP_CLASS_BY_MODALITY[study.modality]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = UID(study.sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = study.sop_uid
    _write_study(ds, study)
    _write_pixels(ds, image[0], study)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _write_study(ds: Dataset, study: Study) -> None:
    """Patient, study, series and equipment attributes."""
    acquired = study.acquired_at.astimezone(UTC)
    date, time = acquired.strftime("%Y%m%d"), acquired.strftime("%H%M%S.%f")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.AccessionNumber = study.accession
    ds.Modality = study.modality
    ds.Manufacturer = study.manufacturer
    ds.InstitutionName = study.site_id
    ds.StudyDescription = "XR CHEST"
    ds.SeriesDescription = study.protocol
    ds.ManufacturerModelName = study.model
    ds.PatientName = "SIMULATED^PATIENT"
    ds.PatientID = study.patient_id
    ds.PatientSex = study.sex
    ds.PatientAge = f"{min(study.age, 999):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ProtocolName = study.protocol
    ds.ViewPosition = "AP" if study.protocol.endswith("AP") else "PA"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = study.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    # Images are displayed as if facing the patient: patient's left on the image right, feet down.
    ds.PatientOrientation = ["L", "F"]
    ds.BurnedInAnnotation = "NO"


def _write_pixels(ds: Dataset, pixels: NDArray[np.float32], study: Study) -> None:
    """Image pixel module: uint16 values with the rescale that maps them back to the float image."""
    slope_text, intercept_text = _quantisation(pixels)
    # Quantise with the values as they will be read back from the DS strings, not the unrounded ones.
    slope, intercept = float(slope_text), float(intercept_text)
    stored = np.clip(np.rint((pixels.astype(np.float64) - intercept) / slope), 0, _LEVELS).astype("<u2")
    spacing = [_ds(study.pixel_spacing[0]), _ds(study.pixel_spacing[1])]
    if study.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = spacing
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = spacing
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = intercept_text
    ds.RescaleSlope = slope_text
    ds.RescaleType = "US"
    low, high = float(pixels.min()), float(pixels.max())
    ds.WindowCenter = _ds((low + high) / 2.0)
    ds.WindowWidth = _ds(max(high - low, 1e-6))
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"


def from_dicom(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[NDArray[np.float32], DicomMetadata]:
    """Decode a single-frame monochrome DICOM Part-10 instance.

    Args:
        data: The instance, including the 128-byte preamble and ``DICM`` marker.
        max_bytes: Inputs larger than this are refused.

    Returns:
        The image as float32 of shape (1, Rows, Columns) with the modality rescale applied, and the
        metadata.

    Raises:
        ValueError: If the input is not DICOM Part-10, is truncated or malformed, or uses something this
            reader does not support (compressed or big-endian transfer syntax, colour, multi-frame,
            other than 16 bits allocated, MONOCHROME1). The message names the problem.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ValueError(f"DICOM input is {len(data)} bytes, above the {max_bytes}-byte limit")
    if len(data) < _PREAMBLE + len(_MAGIC) or bytes(data[_PREAMBLE : _PREAMBLE + len(_MAGIC)]) != _MAGIC:
        raise ValueError("not a DICOM Part-10 file: no 'DICM' marker after the 128-byte preamble")
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(data)))
    except Exception as exc:
        # pydicom signals corrupt input with many exception types (struct.error, EOFError, KeyError...);
        # callers only need to know the bytes are not a readable instance.
        raise ValueError(f"unparseable DICOM: {type(exc).__name__}: {exc}") from None
    try:
        return _decode(ds)
    except ValueError:
        raise
    except Exception as exc:
        # Element values are converted lazily, so malformed values surface only here.
        raise ValueError(f"malformed DICOM attribute: {type(exc).__name__}: {exc}") from None


def _decode(ds: Dataset) -> tuple[NDArray[np.float32], DicomMetadata]:
    transfer_syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "") or ""))
    if not transfer_syntax:
        raise ValueError("missing TransferSyntaxUID in the file meta information")
    if transfer_syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        raise ValueError(
            f"unsupported transfer syntax {transfer_syntax} ({transfer_syntax.name}); "
            "only uncompressed little endian (explicit or implicit VR) is supported"
        )
    rows, columns, bits_stored, signed = _pixel_format(ds)
    stored = _stored_values(ds, rows, columns, bits_stored, signed)
    slope = _optional_float(ds, "RescaleSlope")
    intercept = _optional_float(ds, "RescaleIntercept")
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if slope == 0.0:
        raise ValueError("RescaleSlope must not be 0")
    image = (stored * slope + intercept).astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("rescaled pixel values are not finite (check RescaleSlope/RescaleIntercept)")

    metadata = DicomMetadata(
        sop_class_uid=_required_uid(ds, "SOPClassUID"),
        sop_uid=_required_uid(ds, "SOPInstanceUID"),
        study_uid=_required_uid(ds, "StudyInstanceUID"),
        series_uid=_required_uid(ds, "SeriesInstanceUID"),
        transfer_syntax_uid=str(transfer_syntax),
        modality=_optional_str(ds, "Modality"),
        accession=_optional_str(ds, "AccessionNumber"),
        patient_id=_optional_str(ds, "PatientID"),
        patient_sex=_optional_str(ds, "PatientSex"),
        patient_age_years=_age_years(_optional_str(ds, "PatientAge")),
        institution=_optional_str(ds, "InstitutionName"),
        manufacturer=_optional_str(ds, "Manufacturer"),
        model=_optional_str(ds, "ManufacturerModelName"),
        body_part=_optional_str(ds, "BodyPartExamined"),
        protocol=_optional_str(ds, "ProtocolName"),
        pixel_spacing=_spacing(ds),
        acquired_at=_acquired_at(ds),
        rows=rows,
        columns=columns,
        rescale_slope=slope,
        rescale_intercept=intercept,
    )
    return image[None, :, :], metadata


def _pixel_format(ds: Dataset) -> tuple[int, int, int, bool]:
    """Rows, columns, bits stored and signedness, after checking the format is one this reader decodes."""
    rows = _required_int(ds, "Rows", 1, MAX_DIMENSION)
    columns = _required_int(ds, "Columns", 1, MAX_DIMENSION)
    if _required_int(ds, "SamplesPerPixel", 1, 4) != 1:
        raise ValueError("unsupported SamplesPerPixel: only single-sample (monochrome) images are supported")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if photometric != "MONOCHROME2":
        raise ValueError(f"unsupported PhotometricInterpretation {photometric!r}: only MONOCHROME2 is")
    bits_allocated = _required_int(ds, "BitsAllocated", 1, 64)
    if bits_allocated != 16:
        raise ValueError(f"unsupported BitsAllocated {bits_allocated}: only 16 is supported")
    bits_stored = _optional_int(ds, "BitsStored") or 16
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"BitsStored must be between 1 and 16, got {bits_stored}")
    representation = _optional_int(ds, "PixelRepresentation") or 0
    if representation not in (0, 1):
        raise ValueError(f"PixelRepresentation must be 0 or 1, got {representation}")
    frames = _optional_int(ds, "NumberOfFrames")
    if frames is not None and frames != 1:
        raise ValueError(f"unsupported NumberOfFrames {frames}: only single-frame images are supported")
    return rows, columns, bits_stored, representation == 1


def _stored_values(
    ds: Dataset,
    rows: int,
    columns: int,
    bits_stored: int,
    signed: bool,
) -> NDArray[np.float64]:
    """The stored pixel values (before rescale), as float64 of shape (rows, columns)."""
    if "PixelData" not in ds:
        raise ValueError("missing PixelData")
    raw = ds.PixelData
    if not isinstance(raw, bytes):
        raise ValueError("PixelData is not a byte string")
    expected = rows * columns * 2
    # Odd-length values are padded to even length, so one trailing byte is tolerated.
    if len(raw) not in (expected, expected + 1):
        raise ValueError(f"PixelData has {len(raw)} bytes, expected {rows} x {columns} x 2 = {expected}")
    values = np.frombuffer(raw[:expected], dtype="<u2").reshape(rows, columns)
    if not signed:
        result: NDArray[np.float64] = (values & np.uint16((1 << bits_stored) - 1)).astype(np.float64)
        return result
    # Sign-extend from BitsStored: move the sign bit to bit 15, then shift back arithmetically.
    shift = 16 - bits_stored
    extended = (values.astype(np.int32) << shift).astype(np.uint16).view(np.int16) >> shift
    result = extended.astype(np.float64)
    return result


def _value(ds: Dataset, keyword: str) -> Any:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return value


def _optional_str(ds: Dataset, keyword: str) -> str | None:
    value = _value(ds, keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _optional_int(ds: Dataset, keyword: str) -> int | None:
    value = _value(ds, keyword)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{keyword} is not an integer: {value!r}") from None


def _required_int(ds: Dataset, keyword: str, low: int, high: int) -> int:
    value = _optional_int(ds, keyword)
    if value is None:
        raise ValueError(f"missing required attribute {keyword}")
    if not low <= value <= high:
        raise ValueError(f"{keyword} must be between {low} and {high}, got {value}")
    return value


def _optional_float(ds: Dataset, keyword: str) -> float | None:
    value = _value(ds, keyword)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{keyword} is not a number: {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{keyword} is not finite: {value!r}")
    return number


def _required_uid(ds: Dataset, keyword: str) -> str:
    value = _optional_str(ds, keyword)
    if value is None:
        raise ValueError(f"missing required attribute {keyword}")
    return value


def _age_years(text: str | None) -> int | None:
    if text is None:
        return None
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"PatientAge {text!r} is not in the nnnD/nnnW/nnnM/nnnY format")
    return int(int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)] // 365.25)


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _value(ds, keyword)
        if value is None:
            continue
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{keyword} must be two numbers (row\\column), got {value!r}") from None
        if not (row > 0.0 and column > 0.0 and np.isfinite(row) and np.isfinite(column)):
            raise ValueError(f"{keyword} must be positive and finite, got {value!r}")
        return row, column
    return None


def _acquired_at(ds: Dataset) -> datetime | None:
    for date_keyword, time_keyword in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
        ("StudyDate", "StudyTime"),
    ):
        date = _optional_str(ds, date_keyword)
        if date is None:
            continue
        time = _optional_str(ds, time_keyword) or "000000"
        try:
            moment = datetime.strptime(date, "%Y%m%d")
            moment += _time_of_day(time)
        except ValueError:
            problem = f"{date_keyword}/{time_keyword} {date!r} {time!r} is not a valid DICOM DA/TM"
            raise ValueError(problem) from None
        offset = _optional_str(ds, "TimezoneOffsetFromUTC")
        if offset is not None:
            moment = moment.replace(tzinfo=_utc_offset(offset))
        return moment
    return None


def _time_of_day(text: str) -> timedelta:
    """Parse a DICOM TM value (HH, HHMM, HHMMSS or HHMMSS.ffffff)."""
    main, _, fraction = text.partition(".")
    bad_main = len(main) not in (2, 4, 6) or not main.isdigit()
    if bad_main or (fraction and not fraction.isdigit()) or len(fraction) > 6:
        raise ValueError(text)
    hours, minutes, seconds = int(main[0:2]), int(main[2:4] or 0), int(main[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValueError(text)
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=micro)


def _utc_offset(text: str) -> timezone:
    match = re.fullmatch(r"([+-])(\d{2})(\d{2})", text)
    if match is None or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        raise ValueError(f"TimezoneOffsetFromUTC {text!r} is not in the +HHMM/-HHMM format")
    sign = 1 if match.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
