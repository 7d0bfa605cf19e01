"""Bearer-token authentication of governance callers, and the identity each call acts as.

A caller sends ``authorization: Bearer <token>``. The server never stores tokens, only their SHA-256:
the tokens file is JSON ``{"<sha256 hex of the token>": {"principal": "...", "role": "board"}}``. The
file is re-read when it changes, so ``radguard governance tokens add`` takes effect without a restart.
A missing or unknown token ends the call with UNAUTHENTICATED before the servicer runs; what a known
caller may do is decided by the governance service (PERMISSION_DENIED, audited).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.runtime.errors import Unauthenticated
from services.runtime.interceptors import CallInfo, ScopedInterceptor
from services.runtime.telemetry import get_logger

#: The roles a token can carry (the values of ``governance.domain.model.Role``).
ROLES: tuple[str, ...] = ("clinician", "board", "operator", "service")
#: Metadata key carrying the bearer token.
AUTHORIZATION_HEADER = "authorization"
#: Methods under this prefix require a token; health and reflection stay open for probes.
PROTECTED_PREFIX = "/radguard.governance.v1.Governance/"

_log = get_logger(__name__)


class TokenFileError(Exception):
    """The tokens file cannot be read or does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a call acts as, established from its bearer token.

    Attributes:
        principal: Account or user pseudonym.
        role: One of :data:`ROLES`.
    """

    principal: str
    role: str


_identity: ContextVar[Identity | None] = ContextVar("radguard_governance_identity", default=None)


def current_identity() -> Identity:
    """Return the authenticated identity of the call being handled.

    Raises:
        Unauthenticated: Called outside an authenticated call.
    """
    identity = _identity.get()
    if identity is None:
        raise Unauthenticated()
    return identity


def hash_token(token: str) -> str:
    """SHA-256 of a token, lowercase hex: the key it is stored under."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_tokens(data: object, source: str = "tokens file") -> dict[str, Identity]:
    """Validate the decoded tokens JSON and return identities by token hash.

    Args:
        data: The decoded JSON.
        source: Named in error messages (the file path).

    Raises:
        TokenFileError: Naming the first bad entry and field.
    """
    if not isinstance(data, dict):
        raise TokenFileError(f"{source}: must be a JSON object mapping sha256 hex to {{principal, role}}")
    result: dict[str, Identity] = {}
    for digest, entry in data.items():
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise TokenFileError(f"{source}: key {digest!r} is not a lowercase sha256 hex digest")
        if not isinstance(entry, dict):
            raise TokenFileError(f"{source}: {digest[:12]}…: must be an object with principal and role")
        principal, role = entry.get("principal"), entry.get("role")
        if not isinstance(principal, str) or not principal.strip():
            raise TokenFileError(f"{source}: {digest[:12]}….principal: required")
        if role not in ROLES:
            raise TokenFileError(f"{source}: {digest[:12]}….role: must be one of {', '.join(ROLES)}, got {role!r}")
        result[digest] = Identity(principal.strip(), str(role))
    return result


def load_tokens(path: Path) -> dict[str, Identity]:
    """Read and validate a tokens file (a missing file holds no tokens)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise TokenFileError(f"{path}: cannot read: {error.strerror}") from error
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as error:
        raise TokenFileError(f"{path}: not JSON: {error}") from error
    return parse_tokens(data, str(path))


def add_token(path: Path, principal: str, role: str) -> str:
    """Create a token for ``principal`` acting as ``role``, store its hash in ``path``, return the token.

    The file is created with mode 0600 if missing and replaced atomically. The token itself is not
    stored anywhere: the caller must hand it over now.

    Raises:
        TokenFileError: Bad principal or role, or an unreadable existing file.
    """
    if not principal.strip():
        raise TokenFileError("principal: required")
    if role not in ROLES:
        raise TokenFileError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
    existing = load_tokens(path)
    token = "rgt_" + secrets.token_urlsafe(32)
    data: dict[str, Any] = {d: {"principal": i.principal, "role": i.role} for d, i in existing.items()}
    data[hash_token(token)] = {"principal": principal.strip(), "role": role}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return token


class TokenStore:
    """Identities by token hash, from a file re-read whenever its modification time or size changes."""

    def __init__(self, path: Path | None = None, tokens: Mapping[str, Identity] | None = None) -> None:
        """Create the store.

        Args:
            path: The tokens file; None for a fixed set (tests).
            tokens: Fixed identities by token hash, used when ``path`` is None.
        """
        self._path = path
        self._tokens: dict[str, Identity] = dict(tokens or {})
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._refresh()

    def _refresh(self) -> None:
        assert self._path is not None
        try:
            info = self._path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                self._tokens = load_tokens(self._path)
            except TokenFileError as error:
                # Keep the last good set: a half-edited file must not lock everyone out (or in).
                _log.error("governance.tokens_file_invalid", error=str(error))
                if self._stamp is None:
                    raise
                return
            self._stamp = stamp
            _log.info("governance.tokens_loaded", count=len(self._tokens))

    def identify(self, token: str) -> Identity | None:
        """Return the identity a token stands for, or None when it is unknown."""
        if self._path is not None:
            self._refresh()
        digest = hash_token(token)
        for known, identity in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return identity
        return None


def bearer_token(metadata: Mapping[str, str]) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, or None when absent or malformed."""
    value = metadata.get(AUTHORIZATION_HEADER)
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class BearerAuthInterceptor(ScopedInterceptor):
    """Authenticates governance calls by bearer token and makes the caller's identity current."""

    def __init__(self, store: TokenStore, protected_prefix: str = PROTECTED_PREFIX) -> None:
        """Create the interceptor.

        Args:
            store: Known tokens.
            protected_prefix: Methods that need a token (others, e.g. health, pass through).
        """
        self._store = store
        self._prefix = protected_prefix

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Authenticate the call, or end it with UNAUTHENTICATED."""
        if not call.method.startswith(self._prefix):
            yield
            return
        pairs = call.context.invocation_metadata() or ()
        metadata = {key: value for key, value in pairs if isinstance(value, str)}
        token = bearer_token(metadata)
        if token is None:
            raise Unauthenticated("missing bearer token (metadata 'authorization: Bearer <token>')")
        identity = self._store.identify(token)
        if identity is None:
            raise Unauthenticated("unknown bearer token")
        reset = _identity.set(identity)
        try:
            yield
        finally:
            _identity.reset(reset)
