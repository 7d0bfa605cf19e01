"""The request id that ties one call's logs, spans and error messages together."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

#: Metadata key a caller may set to choose the id; the server always echoes the id it used.
REQUEST_ID_HEADER = "x-request-id"

# Caller-chosen ids end up in logs and trailers, so only a conservative alphabet is accepted:
# anything else (control characters, very long strings) is replaced rather than echoed.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")

_request_id: ContextVar[str | None] = ContextVar("radguard_request_id", default=None)


def new_request_id() -> str:
    """Return a fresh random request id (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def is_valid_request_id(value: str) -> bool:
    """Tell whether a caller-supplied request id is safe to adopt and echo.

    Args:
        value: The id as received.

    Returns:
        True for 1-128 characters of letters, digits, ``.``, ``_``, ``:`` and ``-`` starting with a
        letter or digit.
    """
    return _VALID_REQUEST_ID.fullmatch(value) is not None


def current_request_id() -> str | None:
    """Return the id of the call being handled in this context, or None outside a call."""
    return _request_id.get()


def bind_request_id(request_id: str | None) -> Token[str | None]:
    """Make ``request_id`` current in this context.

    Args:
        request_id: The id to bind, or None to clear it.

    Returns:
        A token for :func:`reset_request_id`.
    """
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    """Restore the request id that was current before :func:`bind_request_id` returned ``token``."""
    _request_id.reset(token)
