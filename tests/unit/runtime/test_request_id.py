"""Request id validation and its context variable."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.request_id import (
    bind_request_id,
    current_request_id,
    is_valid_request_id,
    new_request_id,
    reset_request_id,
)


@pytest.mark.parametrize("value", ["a", "req-42", "3f2a.b_c:d-e", "A" * 128])
def test_safe_ids_are_adopted(value: str) -> None:
    assert is_valid_request_id(value)


@pytest.mark.parametrize("value", ["", "-dash-first", "has space", "tab\there", "x" * 129, "new\nline", "é"])
def test_unsafe_ids_are_replaced(value: str) -> None:
    assert not is_valid_request_id(value)


@given(st.text(max_size=200))
def test_adopted_ids_are_short_and_printable(value: str) -> None:
    if is_valid_request_id(value):
        assert 1 <= len(value) <= 128
        assert value.isascii() and value.isprintable() and " " not in value


def test_generated_ids_are_valid_and_distinct() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_valid_request_id(value) and len(value) == 32 for value in ids)


@pytest.mark.asyncio
async def test_binding_is_per_task() -> None:
    async def handle(request_id: str) -> str | None:
        token = bind_request_id(request_id)
        try:
            await asyncio.sleep(0.01)
            return current_request_id()
        finally:
            reset_request_id(token)

    assert list(await asyncio.gather(handle("one"), handle("two"))) == ["one", "two"]
    assert current_request_id() is None
