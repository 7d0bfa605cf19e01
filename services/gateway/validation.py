"""Checks on what callers send, before anything reaches Triton. Every failure names the field."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from services.runtime.errors import InvalidArgument

#: Longest accepted value of each radiology context field, in characters. Both APIs (radguard.inference.v1
#: and the Open Inference Protocol's request parameters) check their fields against this one table, so a
#: value refused on one door is refused on the other too, and every prediction event stays small.
CONTEXT_LIMITS: dict[str, int] = {
    "model_name": 128,
    "model_version": 32,
    "request_id": 128,
    "study_instance_uid": 64,
    "series_instance_uid": 64,
    "accession_number": 64,
    "patient_id": 64,
    "issuer": 64,
    "site_id": 128,
    "modality": 128,
    "body_part": 128,
    "manufacturer": 128,
    "manufacturer_model": 128,
    "protocol_name": 128,
    "sex": 16,
}
#: Fields that must be present (besides the image).
REQUIRED_CONTEXT = frozenset({"model_name", "request_id", "study_instance_uid"})
#: Longest echo of a caller's value inside an error message.
ECHO_CHARS = 64
#: Largest accepted age in years.
MAX_AGE_YEARS = 130


def brief(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr``-like text of a caller's value for an error message, cut to ``limit`` characters.

    Error messages travel in gRPC trailers, whose size the client limits: echoing an unbounded value (a
    100,000-dimension shape, a megabyte of text) would turn an INVALID_ARGUMENT into a transport error.
    """
    if isinstance(value, list | tuple) and len(value) > 8:
        head = ", ".join(str(v)[:16] for v in value[:4])
        return f"[{head}, ... ({len(value)} items)]"
    text = repr(value) if isinstance(value, str | bytes) else str(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def context_text(name: str, value: str, field: str) -> str:
    """Check one radiology context string against :data:`CONTEXT_LIMITS` (the one rule of both APIs).

    Args:
        name: The field's name in :data:`CONTEXT_LIMITS`, e.g. ``"accession_number"``.
        value: What the caller sent.
        field: The field path named in errors, e.g. ``"study.accession_number"`` or
            ``"parameters.accession_number"``.

    Raises:
        InvalidArgument: Missing when required, too long, or containing control characters.
    """
    limit = CONTEXT_LIMITS[name]
    if name in REQUIRED_CONTEXT:
        return required(value, field, limit)
    return bounded(value, field, limit)


#: Wire dtypes the gateway accepts for tensors, by name.
DTYPES: dict[str, np.dtype[np.generic]] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT16": np.dtype("<f2"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "FLOAT64": np.dtype("<f8"),
}


def tensor_image(
    data: bytes,
    shape: tuple[int, ...],
    dtype_name: str,
    expected: tuple[int, ...],
    max_bytes: int,
    field: str = "tensor",
) -> npt.NDArray[np.float32]:
    """Decode a tensor payload into a float32 image of shape ``expected``.

    Args:
        data: raw little-endian element bytes.
        shape: declared shape (with or without a leading batch axis of 1).
        dtype_name: wire dtype name (see ``DTYPES``).
        expected: the model's input shape without the batch axis.
        max_bytes: largest accepted payload.
        field: field path used in error messages.
    """
    if not data:
        raise InvalidArgument(f"{field}.data", "is empty")
    if len(data) > max_bytes:
        raise InvalidArgument(f"{field}.data", f"is {len(data)} bytes; the limit is {max_bytes}")
    dtype = DTYPES.get(dtype_name)
    if dtype is None:
        raise InvalidArgument(f"{field}.dtype", f"{brief(dtype_name)} is not supported; use one of {', '.join(DTYPES)}")
    if any(d <= 0 for d in shape):
        raise InvalidArgument(f"{field}.shape", f"{brief(list(shape))} has a non-positive dimension")
    if shape[:1] == (1,) and tuple(shape[1:]) == expected:
        shape = shape[1:]
    if tuple(shape) != expected:
        raise InvalidArgument(f"{field}.shape", f"{brief(list(shape))} does not match the model input {list(expected)}")
    count = math.prod(expected)
    if len(data) != count * dtype.itemsize:
        raise InvalidArgument(
            f"{field}.data",
            f"holds {len(data)} bytes but shape {list(expected)} of {dtype_name} needs {count * dtype.itemsize}",
        )
    array = np.frombuffer(data, dtype=dtype).reshape(expected)
    image: npt.NDArray[np.float32] = array.astype(np.float32, copy=False)
    return check_finite(image, f"{field}.data")


def check_finite(image: npt.NDArray[np.float32], field: str) -> npt.NDArray[np.float32]:
    """Reject NaN and infinite pixels."""
    # min/max propagate NaN and reach ±inf: two reductions instead of a boolean copy of the image.
    if not (np.isfinite(image.min()) and np.isfinite(image.max())):
        raise InvalidArgument(field, "contains NaN or infinite values")
    return image


def required(value: str, field: str, max_len: int = 256) -> str:
    """A required, bounded, printable string."""
    if not value:
        raise InvalidArgument(field, "is required")
    return bounded(value, field, max_len)


def bounded(value: str, field: str, max_len: int = 256) -> str:
    """An optional string that must stay short and printable."""
    if len(value) > max_len:
        raise InvalidArgument(field, f"is longer than {max_len} characters")
    if not value.isprintable():
        raise InvalidArgument(field, "contains control characters")
    return value


def age(value: float, present: bool, field: str = "patient_context.age_years") -> int | None:
    """A plausible age in whole years, or None when absent (NaN, infinities and fractions' range checked)."""
    if not present:
        return None
    if not (math.isfinite(value) and 0 <= value <= MAX_AGE_YEARS):
        raise InvalidArgument(field, f"must be a number within 0..{MAX_AGE_YEARS}, got {brief(value)}")
    return int(value)


def pixel_spacing(row: float, col: float, field: str = "acquisition.pixel_spacing") -> tuple[float, float]:
    """Pixel spacing in mm: both zero (unknown) or both positive and finite."""
    if row == 0 and col == 0:
        return 0.0, 0.0
    for name, v in (("row_mm", row), ("col_mm", col)):
        if not (np.isfinite(v) and 0 < v < 10):
            raise InvalidArgument(f"{field}.{name}", f"must be a positive spacing below 10 mm, got {brief(v)}")
    return row, col
