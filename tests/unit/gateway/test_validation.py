"""Tensor decoding and field checks: every bad input names its field."""

from __future__ import annotations

import numpy as np
import pytest

from services.gateway import validation
from services.runtime.errors import InvalidArgument

SHAPE = (1, 8, 8)
GOOD = np.arange(64, dtype="<f4").reshape(SHAPE)


def decode(data: bytes, shape: tuple[int, ...] = SHAPE, dtype: str = "FLOAT32", max_bytes: int = 10_000) -> None:
    validation.tensor_image(data, shape, dtype, SHAPE, max_bytes)


def test_good_tensor_round_trips_with_and_without_batch_axis() -> None:
    img = validation.tensor_image(GOOD.tobytes(), SHAPE, "FLOAT32", SHAPE, 10_000)
    np.testing.assert_array_equal(img, GOOD)
    img = validation.tensor_image(GOOD.tobytes(), (1, *SHAPE), "FLOAT32", SHAPE, 10_000)
    assert img.shape == SHAPE
    u16 = np.arange(64, dtype="<u2").reshape(SHAPE)
    img = validation.tensor_image(u16.tobytes(), SHAPE, "UINT16", SHAPE, 10_000)
    assert img.dtype == np.float32 and img[0, 7, 7] == 63.0


NAN = GOOD.copy()
NAN[0, 1, 1] = np.nan
INF = GOOD.copy()
INF[0, 2, 2] = np.inf


@pytest.mark.parametrize(
    ("data", "shape", "dtype", "field", "text"),
    [
        (b"", SHAPE, "FLOAT32", "tensor.data", "empty"),
        (b"x" * 20_000, SHAPE, "FLOAT32", "tensor.data", "limit"),
        (GOOD.tobytes(), SHAPE, "COMPLEX64", "tensor.dtype", "not supported"),
        (GOOD.tobytes(), (1, 8, 0), "FLOAT32", "tensor.shape", "non-positive"),
        (GOOD.tobytes(), (1, 4, 16), "FLOAT32", "tensor.shape", "does not match"),
        (GOOD.tobytes()[:-4], SHAPE, "FLOAT32", "tensor.data", "needs"),
        (NAN.tobytes(), SHAPE, "FLOAT32", "tensor.data", "NaN"),
        (INF.tobytes(), SHAPE, "FLOAT32", "tensor.data", "infinite"),
    ],
)
def test_bad_tensors(data: bytes, shape: tuple[int, ...], dtype: str, field: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode(data, shape, dtype)
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}: ")
    assert text in info.value.message


def test_field_checks() -> None:
    with pytest.raises(InvalidArgument, match=r"^model_name: is required"):
        validation.required("", "model_name")
    with pytest.raises(InvalidArgument, match="longer than 4"):
        validation.bounded("abcde", "x", 4)
    with pytest.raises(InvalidArgument, match="control characters"):
        validation.bounded("a\nb", "x")
    assert validation.age(0, True) == 0 and validation.age(5, False) is None
    with pytest.raises(InvalidArgument, match=r"^patient_context.age_years"):
        validation.age(131, True)
    assert validation.pixel_spacing(0, 0) == (0.0, 0.0)
    with pytest.raises(InvalidArgument, match="col_mm"):
        validation.pixel_spacing(0.2, -1)
