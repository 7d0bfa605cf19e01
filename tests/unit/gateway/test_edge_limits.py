"""Edge limits shared by both gateway APIs: one rule for each radiology field, bounded error messages."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from tritonclient.grpc import service_pb2

from services.gateway import validation
from services.gateway.dicom import read_dicom
from services.gateway.oip_servicer import OpenInferenceServicer
from services.gateway.pseudonym import Pseudonymiser
from services.runtime.errors import InvalidArgument
from tests.unit.gateway.test_handler import FakeCatalog

SHAPE = (1, 4, 4)


def oip() -> OpenInferenceServicer:
    nothing: Any = None  # _command touches neither Triton nor the handler
    return OpenInferenceServicer(
        nothing, nothing, FakeCatalog(), nothing, Pseudonymiser(b"unit-test-key-0123456789"), 1 << 20, 1.0
    )


def infer_request(**params: Any) -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name="m", id="r-1")
    tensor = req.inputs.add()
    tensor.name, tensor.datatype = "IMAGE", "FP32"
    tensor.shape.extend((1, *SHAPE))
    req.raw_input_contents.append(np.full(SHAPE, 0.5, dtype="<f4").tobytes())
    base: dict[str, Any] = {"study_instance_uid": "2.25.1", **params}
    for name, value in base.items():
        p = req.parameters[name]
        if isinstance(value, str):
            p.string_param = value
        elif isinstance(value, float):
            p.double_param = value
        else:
            p.int64_param = value
    return req


def oip_error(**params: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        oip().command(infer_request(**params))
    return caught.value


@pytest.mark.parametrize("name", sorted(set(validation.CONTEXT_LIMITS) - {"model_name", "model_version", "sex"}))
def test_both_apis_refuse_oversize_and_control_characters_in_each_context_field(name: str) -> None:
    limit = validation.CONTEXT_LIMITS[name]
    for bad in ("x" * (limit + 1), "ok\x00", "a\nb", "x" * 1_200_000):
        error = oip_error(**{name: bad})
        assert error.field == f"parameters.{name}"
        assert len(str(error)) < 200  # never the value itself
        with pytest.raises(InvalidArgument) as caught:
            validation.context_text(name, bad, f"study.{name}")
        assert caught.value.field == f"study.{name}"
    # the limit itself is accepted on both doors
    command = oip().command(infer_request(**{name: "7" * limit}))
    assert command.model_name == "m"


def test_the_oip_request_id_falls_back_to_the_request_id_field_and_is_checked_there_too() -> None:
    command = oip().command(infer_request())
    assert command.request_id == "r-1"
    req = infer_request()
    req.id = "r\x00"
    with pytest.raises(InvalidArgument, match=r"^id: contains control characters"):
        oip().command(req)


@pytest.mark.parametrize("age", [math.nan, math.inf, -math.inf, -1.0, 131.0, 1e300, "nan", "abc", "9" * 40])
def test_age_years_must_be_a_finite_plausible_number(age: Any) -> None:
    error = oip_error(age_years=age)
    assert error.field == "parameters.age_years"
    assert len(str(error)) < 200


def test_plausible_ages_pass_as_whole_years() -> None:
    assert oip().command(infer_request(age_years=61.9)).age_years == 61
    assert oip().command(infer_request(age_years=61)).age_years == 61
    assert oip().command(infer_request(age_years="0")).age_years == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.5, 10.0])
def test_pixel_spacing_must_be_finite_and_in_range(value: float) -> None:
    error = oip_error(pixel_spacing_row_mm=value, pixel_spacing_col_mm=0.5)
    assert error.field == "parameters.pixel_spacing.row_mm"


def test_a_huge_shape_is_not_echoed() -> None:
    req = infer_request()
    del req.inputs[0].shape[:]
    req.inputs[0].shape.extend([1] + [2] * 100_000)
    with pytest.raises(InvalidArgument) as caught:
        oip().command(req)
    assert caught.value.field == "inputs[0].shape" and len(str(caught.value)) < 300
    with pytest.raises(InvalidArgument) as caught:
        validation.tensor_image(b"\0" * 64, (3,) * 100_000, "FLOAT32", SHAPE, 1 << 20)
    assert caught.value.field == "tensor.shape" and "100000 items" in str(caught.value)
    assert len(str(caught.value)) < 300


@given(st.text(min_size=1, max_size=40))
def test_a_control_character_anywhere_is_refused(text: str) -> None:
    value = text[: len(text) // 2] + "\x00" + text[len(text) // 2 :]
    with pytest.raises(InvalidArgument, match=r"^study\.accession_number: contains control"):
        validation.context_text("accession_number", value, "study.accession_number")


def test_brief_bounds_any_value() -> None:
    assert validation.brief("x" * 10_000).endswith("...") and len(validation.brief("x" * 10_000)) == 64
    assert validation.brief([1, 2]) == "[1, 2]"
    assert validation.brief(list(range(100_000))).startswith("[0, 1, 2, 3, ... (100000 items)")


def dicom_bytes(raw: dict[bytes, bytes] | None = None, **tags: str) -> bytes:
    """A small Part-10 instance; ``raw`` swaps placeholder bytes for values pydicom would not write."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.StudyInstanceUID = generate_uid()
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    data = out.getvalue()
    for placeholder, swapped in (raw or {}).items():
        assert len(placeholder) == len(swapped) and data.count(placeholder) == 1
        data = data.replace(placeholder, swapped)
    return data


@pytest.mark.parametrize(
    ("keyword", "value", "field"),
    [
        ("RescaleSlope", b"abc ", "dicom.data.RescaleSlope"),
        ("RescaleIntercept", b"1e99", "dicom.data.RescaleIntercept"),
        ("RescaleSlope", b"nan ", "dicom.data.RescaleSlope"),
        ("RescaleSlope", b"-inf", "dicom.data.RescaleSlope"),
    ],
)
def test_a_malformed_rescale_tag_is_invalid_argument(keyword: str, value: bytes, field: str) -> None:
    data = dicom_bytes({b"7.77": value}, **{keyword: "7.77"})  # 1e99 would make the float32 image infinite
    with pytest.raises(InvalidArgument) as caught:
        read_dicom(data)
    assert caught.value.field == field


def test_rescale_tags_apply() -> None:
    image = read_dicom(dicom_bytes(RescaleSlope="2", RescaleIntercept="-1")).image
    np.testing.assert_array_equal(image.reshape(-1), np.arange(16, dtype=np.float32) * 2 - 1)
