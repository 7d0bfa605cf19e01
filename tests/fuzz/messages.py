"""A seeded generator of hostile protobuf messages, built from a method's request descriptor.

Every field may get a value chosen to break a careless parser or validator: empty, NUL and control
characters, non-ASCII digits, 40-digit and very long numbers in text, integer extremes, NaN and
infinities, unknown enum values, out-of-range timestamps, long repeated fields. The bytes that leave are
what any client could send; nothing here depends on a service's own validation rules.
"""

from __future__ import annotations

import math
import random
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

TEXTS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "line\nbreak\x1b[31m",
    "²",
    "٣",
    "9" * 40,
    "1" * 1000,
    "-1",
    "0",
    "\u202eevil",
    "../../etc/passwd",
    "chest_nodule",
    "x" * 5000,
    "ünïcödé",
)
INT32 = (0, 1, -1, 2**31 - 1, -(2**31))
INT64 = (0, 1, -1, 2**31, 2**63 - 1, -(2**63))
UINT32 = (0, 1, 2**32 - 1)
UINT64 = (0, 1, 2**31, 2**63, 2**64 - 1)
FLOATS = (0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e308, 5e-324)
TIMESTAMP_SECONDS = (0, -62_135_596_801, 253_402_300_800, 2**62, -(2**62), 1_700_000_000)
TIMESTAMP_NANOS = (0, -1, 999_999_999, 10**9, 2**31 - 1)

_INTS: dict[int, tuple[int, ...]] = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}

#: Raw request bodies no protobuf message can parse: a length prefix past the end, a truncated varint,
#: and an invalid wire type.
UNDECODABLE = (b"\x0a\x64abc", b"\x08\xff\xff\xff", b"\x0f\x00")


class MessageFuzzer:
    """Builds hostile messages of any type from a seeded random source."""

    def __init__(self, seed: int, *, max_depth: int = 3, long_repeated: int = 0) -> None:
        """Args:
        seed: Makes the sequence of messages reproducible.
        max_depth: Nesting depth below which sub-messages are left empty.
        long_repeated: When > 0, every repeated scalar field gets this many items.
        """
        self._random = random.Random(seed)
        self._max_depth = max_depth
        self._long_repeated = long_repeated

    def message(self, descriptor: Descriptor) -> Message:
        """One message of ``descriptor``'s type with a random subset of fields set to hostile values."""
        message: Message = GetMessageClass(descriptor)()
        self._fill(message, descriptor, 0)
        return message

    def _fill(self, message: Any, descriptor: Descriptor, depth: int) -> None:
        if descriptor.full_name == "google.protobuf.Timestamp":
            message.seconds = self._random.choice(TIMESTAMP_SECONDS)
            message.nanos = self._random.choice(TIMESTAMP_NANOS)
            return
        for field in descriptor.fields:
            if self._random.random() < 0.35:
                continue
            try:
                self._set(message, field, depth)
            except (ValueError, TypeError, OverflowError):
                continue  # a value this field's type cannot hold: leave it unset

    def _set(self, message: Any, field: FieldDescriptor, depth: int) -> None:
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            if depth >= self._max_depth:
                return
            entries = getattr(message, field.name)
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            for _ in range(self._random.randint(0, 3)):
                key = self._scalar(key_field)
                if value_field.message_type is not None:
                    self._fill(entries[key], value_field.message_type, depth + 1)
                else:
                    entries[key] = self._scalar(value_field)
            return
        if field.is_repeated:
            items = getattr(message, field.name)
            if field.message_type is not None:
                if depth < self._max_depth:
                    for _ in range(self._random.randint(0, 3)):
                        self._fill(items.add(), field.message_type, depth + 1)
                return
            count = self._long_repeated or self._random.randint(0, 4)
            items.extend(self._scalar(field) for _ in range(count))
            return
        if field.message_type is not None:
            if depth < self._max_depth:
                self._fill(getattr(message, field.name), field.message_type, depth + 1)
            return
        setattr(message, field.name, self._scalar(field))

    def _scalar(self, field: FieldDescriptor) -> Any:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self._random.choice(TEXTS)
        if kind == FieldDescriptor.TYPE_BYTES:
            return self._random.choice(
                (b"", b"\x00", b"\xff" * 64, self._random.randbytes(self._random.randint(1, 4096)))
            )
        if kind == FieldDescriptor.TYPE_BOOL:
            return self._random.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self._random.choice(FLOATS)
        if kind == FieldDescriptor.TYPE_ENUM:
            known = [value.number for value in field.enum_type.values]
            return self._random.choice([*known, 999, -7])
        return self._random.choice(_INTS[kind])


def oversized(descriptor: Descriptor, text_chars: int = 300_000) -> bytes:
    """A message whose every top-level string is ``text_chars`` long and every repeated scalar is long.

    Repeated numbers get 200,000 items, repeated strings and bytes 1,000 items of 1 KiB: a few MB in all,
    above the 4 MiB limit of feedback and governance for most messages, below the gateway's.
    """
    message: Any = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        try:
            if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
                setattr(message, field.name, "y" * text_chars)
            elif field.is_repeated and field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                sample = "z" * 1024 if field.type == FieldDescriptor.TYPE_STRING else b"z" * 1024
                getattr(message, field.name).extend([sample] * 1000)
            elif field.is_repeated and field.message_type is None:
                sample = MessageFuzzer(0)._scalar(field)
                getattr(message, field.name).extend([sample] * 200_000)
        except (ValueError, TypeError):
            continue
    return bytes(message.SerializeToString())
