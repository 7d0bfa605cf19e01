"""Turns governance records into JSON-ready data and back.

Used for audit before/after snapshots, outbox payloads, idempotent command results and the PostgreSQL
adapter's JSON columns. Times become ISO-8601 UTC strings with microseconds and a ``Z``; bytes become
base64; enums their value; tuples lists.
"""

from __future__ import annotations

import base64
import dataclasses
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar, cast

T = TypeVar("T")


def format_time(value: datetime) -> str:
    """ISO-8601 UTC with microseconds and ``Z``, e.g. ``2025-01-02T03:04:05.000006Z``."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: governance times must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any ISO-8601 with an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def to_jsonable(value: Any) -> Any:  # noqa: PLR0911 - one return per JSON shape
    """JSON-ready form of a record, enum, time, bytes or container."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, data: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per supported type
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return _decode(args[0], data)
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        return tuple(_decode(item, v) for v in data)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_decode(item, v) for v in data]
    if origin is dict or tp is dict:
        return dict(data)
    if origin is typing.Literal or tp is Any:
        return data
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return from_jsonable(tp, data)
        if issubclass(tp, Enum):
            return tp(data)
        if tp is datetime:
            return parse_time(data)
        if tp is bytes:
            return base64.b64decode(data)
        if tp is float:
            return float(data)
        if tp is int:
            return int(data)
    return data


def from_jsonable(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a record of type ``cls`` from :func:`to_jsonable`'s output (missing defaulted fields allowed)."""
    hints = _hints(cast(Any, cls))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cast(Any, cls)):
        if f.name in data:
            kwargs[f.name] = _decode(hints[f.name], data[f.name])
    return cls(**kwargs)
