"""DICOM Part-10 round trip, what pydicom sees in the file, and from_dicom's errors on bad input."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from functools import cache

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
)

from sim import Hospital, Study, from_dicom, load_scenario, to_dicom


@cache
def _studies() -> tuple[Study, ...]:
    return Hospital(load_scenario("baseline"), seed=91).studies(12).studies


def _study(modality: str) -> Study:
    return next(s for s in _studies() if s.modality == modality)


@cache
def _small_instance() -> bytes:
    scenario = dataclasses.replace(load_scenario("baseline"), image_size=32)
    return to_dicom(Hospital(scenario, seed=92).studies(1).studies[0])


def _rewrite(data: bytes, edit: Callable[[pydicom.Dataset], None]) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    edit(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("modality", ["DX", "CR"])
def test_round_trip_keeps_pixels_within_quantisation_and_metadata(modality: str) -> None:
    study = _study(modality)
    data = to_dicom(study)
    image, meta = from_dicom(data)
    assert image.shape == study.image.shape == (1, 128, 128)
    assert image.dtype == np.float32
    error = np.abs(image.astype(np.float64) - study.image.astype(np.float64))
    assert float(error.max()) <= meta.rescale_slope / 2 + 1e-6
    assert meta.rescale_slope == pytest.approx((study.image.max() - study.image.min()) / 65535, rel=1e-6)
    assert meta.study_uid == study.study_uid
    assert meta.series_uid == study.series_uid
    assert meta.sop_uid == study.sop_uid
    assert meta.accession == study.accession
    assert meta.patient_id == study.patient_id
    assert meta.patient_sex == study.sex
    assert meta.patient_age_years == study.age
    assert meta.institution == study.site_id
    assert (meta.manufacturer, meta.model, meta.modality) == (study.manufacturer, study.model, modality)
    assert meta.body_part == "CHEST"
    assert meta.protocol == study.protocol
    assert meta.pixel_spacing == pytest.approx(study.pixel_spacing)
    assert meta.acquired_at == study.acquired_at
    assert (meta.rows, meta.columns) == (128, 128)
    assert meta.transfer_syntax_uid == ExplicitVRLittleEndian
    sop_classes = {"DX": DigitalXRayImageStorageForPresentation, "CR": ComputedRadiographyImageStorage}
    assert meta.sop_class_uid == sop_classes[modality]


def test_file_is_standard_part10_that_pydicom_decodes_identically() -> None:
    study = _study("DX")
    data = to_dicom(study)
    assert data[128:132] == b"DICM"
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == study.sop_uid
    assert ds.PatientAge == f"{study.age:03d}Y"
    assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 16, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.ViewPosition == study.protocol.split()[-1]
    assert "label" not in str(ds).lower()
    # pydicom's own decoder plus the modality rescale gives the same image as from_dicom.
    rescaled = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(from_dicom(data)[0][0], rescaled.astype(np.float32), rtol=0, atol=0)


def test_encoding_is_deterministic() -> None:
    study = _study("CR")
    assert to_dicom(study) == to_dicom(study)


def test_signed_and_narrow_stored_values_are_decoded() -> None:
    def to_signed_12_bit(ds: pydicom.Dataset) -> None:
        values = np.array([[-2048, -1, 0, 2047]], dtype=np.int16)
        # Only the low 12 bits are meaningful; set junk in the high bits to check masking.
        raw = (values.view(np.uint16) & 0x0FFF) | 0xF000 * (values < 0)
        ds.Rows, ds.Columns = 1, 4
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
        ds.RescaleSlope, ds.RescaleIntercept = "2", "1"
        ds.PixelData = raw.astype("<u2").tobytes()

    image, meta = from_dicom(_rewrite(_small_instance(), to_signed_12_bit))
    assert image.tolist() == [[[-4095.0, -1.0, 1.0, 4095.0]]]
    assert (meta.rows, meta.columns) == (1, 4)


def _as_jpeg2000(ds: pydicom.Dataset) -> None:
    # The payload need not be real JPEG 2000: the reader must refuse on the transfer syntax alone.
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"


@pytest.mark.filterwarnings("ignore:Invalid value:UserWarning")
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_as_jpeg2000, r"unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.90 \(JPEG 2000 .*Lossless"),
        (lambda ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME1"), "Interpretation 'MONOCHROME1'"),
        (lambda ds: setattr(ds, "BitsAllocated", 8), "unsupported BitsAllocated 8"),
        (lambda ds: setattr(ds, "SamplesPerPixel", 3), "SamplesPerPixel"),
        (lambda ds: setattr(ds, "NumberOfFrames", 2), "NumberOfFrames 2"),
        (lambda ds: delattr(ds, "PixelData"), "missing PixelData"),
        (lambda ds: delattr(ds, "Rows"), "missing required attribute Rows"),
        (lambda ds: delattr(ds, "StudyInstanceUID"), "missing required attribute StudyInstanceUID"),
        (lambda ds: setattr(ds, "Rows", 31), r"PixelData has 2048 bytes, expected 31 x 32 x 2 = 1984"),
        (lambda ds: setattr(ds, "RescaleSlope", "0"), "RescaleSlope must not be 0"),
        (lambda ds: setattr(ds, "PatientAge", "67"), "PatientAge '67'"),
        (lambda ds: setattr(ds, "AcquisitionTime", "256199"), "AcquisitionDate/AcquisitionTime"),
    ],
)
def test_unsupported_or_malformed_input_names_the_problem(
    edit: Callable[[pydicom.Dataset], None], message: str
) -> None:
    data = _rewrite(_small_instance(), edit)
    with pytest.raises(ValueError, match=message):
        from_dicom(data)


def test_non_dicom_input_is_rejected_before_parsing() -> None:
    with pytest.raises(ValueError, match="no 'DICM' marker"):
        from_dicom(b"not a dicom file")
    with pytest.raises(ValueError, match="no 'DICM' marker"):
        from_dicom(_small_instance()[132:])
    with pytest.raises(ValueError, match="above the 100-byte limit"):
        from_dicom(_small_instance(), max_bytes=100)
    truncated = _small_instance()[:400]
    with pytest.raises(ValueError):
        from_dicom(truncated)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_raise_only_value_error(data: bytes, with_marker: bool) -> None:
    if with_marker:
        # Get past the marker check so the bytes reach the parser.
        data = bytes(128) + b"DICM" + data
    with pytest.raises(ValueError):
        from_dicom(data)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(132, 1400), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(132, 4000),
)
def test_corrupted_instances_decode_or_raise_value_error(patches: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_small_instance())
    for position, value in patches:
        data[position] = value
    try:
        image, meta = from_dicom(bytes(data[:cut]))
    except ValueError as exc:
        assert str(exc)
    else:
        assert image.shape == (1, meta.rows, meta.columns)
        assert image.dtype == np.float32
