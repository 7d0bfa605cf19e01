"""Who may call a data-plane service: bearer tokens and mutual-TLS identities mapped to roles.

A caller proves who it is in one of two ways:

- ``authorization: Bearer <token>`` metadata. The server keeps only each token's SHA-256, in a JSON file
  ``{"<sha256 hex>": {"principal": "...", "role": "..."}}`` re-read when it changes (so tokens can be
  added or revoked without a restart).
- a client certificate, on a server that requires and verifies one (``RADGUARD_TLS_REQUIRE_CLIENT_CERT``):
  its subject common name is looked up in a JSON file ``{"<common name>": {"principal": ..., "role": ...}}``.

A token wins over a certificate when both are present. Each protected method names the roles it admits;
a call without credentials, or with an unknown token or unmapped certificate, ends UNAUTHENTICATED, a
known caller whose role is not admitted ends PERMISSION_DENIED, and a method of a protected service that
the policy does not name admits nobody. Health and reflection stay open for probes. Every denial is
counted (``radguard_auth_denials_total`` by service, method and reason) and logged with the method,
reason and role only — never the token, the principal or anything from the request.

``RADGUARD_AUTH_MODE=insecure-dev`` turns all of this off for local development; the process then logs
a warning at start and every call runs as :data:`INSECURE_CALLER`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from services.runtime.config import ServiceSettings
from services.runtime.errors import PermissionDenied, Unauthenticated
from services.runtime.interceptors import CallInfo, ScopedInterceptor
from services.runtime.metrics import Metrics
from services.runtime.telemetry import get_logger

if TYPE_CHECKING:
    from services.runtime.interceptors import Interceptor

#: May score studies: Predict, PredictStream, ModelInfer (a PACS/RIS integration, a worklist engine).
HOSPITAL_SYSTEM = "hospital_system"
#: May record reads on behalf of the readers it names (a reading workstation's back end).
READING_SYSTEM = "reading_system"
#: A radiologist calling as themself: may record their own reads.
CLINICIAN = "clinician"
#: May look at routes, model metadata and stored reads.
OPERATOR = "operator"
#: Every role a data-plane token or certificate can carry.
ROLES: tuple[str, ...] = (HOSPITAL_SYSTEM, READING_SYSTEM, CLINICIAN, OPERATOR)

AUTHORIZATION_HEADER = "authorization"
INSECURE_DEV = "insecure-dev"
SECURE = "secure"
AuthMode = Literal["secure", "insecure-dev"]

_log = get_logger(__name__)


class CredentialsFileError(Exception):
    """A tokens or certificates file cannot be read or does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call acts as.

    Attributes:
        principal: The account (a system's name or a reader's pseudonym) its credentials stand for.
        role: One of :data:`ROLES`; empty for the insecure development caller.
        via: ``token``, ``certificate`` or ``insecure-dev``.
    """

    principal: str
    role: str
    via: str

    @property
    def insecure(self) -> bool:
        """True when authentication is off (development mode)."""
        return self.via == INSECURE_DEV


#: The caller every call runs as in insecure development mode.
INSECURE_CALLER = Caller(principal="", role="", via=INSECURE_DEV)

_caller: ContextVar[Caller | None] = ContextVar("radguard_caller", default=None)


def current_caller() -> Caller:
    """The caller of the call being handled.

    Raises:
        Unauthenticated: Outside a call that passed authentication.
    """
    caller = _caller.get()
    if caller is None:
        raise Unauthenticated()
    return caller


class CallerAuthSettings(ServiceSettings):
    """Shared settings of the services that authenticate callers (gateway, feedback)."""

    auth_mode: AuthMode = Field(
        default="secure", description="secure (tokens and/or client certificates) or insecure-dev (no checks)"
    )
    auth_tokens_file: Path | None = Field(default=None, description="JSON: sha256 of each token → principal, role")
    auth_certs_file: Path | None = Field(
        default=None, description="JSON: client certificate common name → principal, role (needs mutual TLS)"
    )
    auth_files_recheck_s: float = Field(
        default=1.0, gt=0, le=60, description="how often the tokens and certificates files are checked for changes"
    )

    @model_validator(mode="after")
    def _credentials_configured(self) -> Self:
        if self.auth_mode == INSECURE_DEV:
            return self
        if self.auth_tokens_file is None and self.auth_certs_file is None:
            raise ValueError(
                "auth_mode: secure needs RADGUARD_AUTH_TOKENS_FILE and/or RADGUARD_AUTH_CERTS_FILE "
                "(or RADGUARD_AUTH_MODE=insecure-dev for local development only)"
            )
        if self.auth_certs_file is not None and not self.tls_require_client_cert:
            raise ValueError("auth_certs_file: certificate identities need RADGUARD_TLS_REQUIRE_CLIENT_CERT=true")
        return self


def hash_token(token: str) -> str:
    """SHA-256 of a token, lowercase hex: the key it is stored under."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _entry(source: str, name: str, entry: object) -> Caller:
    if not isinstance(entry, dict):
        raise CredentialsFileError(f"{source}: {name}: must be an object with principal and role")
    principal, role = entry.get("principal"), entry.get("role")
    if not isinstance(principal, str) or not principal.strip():
        raise CredentialsFileError(f"{source}: {name}.principal: required")
    if role not in ROLES:
        raise CredentialsFileError(f"{source}: {name}.role: must be one of {', '.join(ROLES)}, got {role!r}")
    return Caller(principal.strip(), str(role), "")


def parse_tokens(data: object, source: str = "tokens file") -> dict[str, Caller]:
    """Validate a decoded tokens file; returns callers by token hash.

    Raises:
        CredentialsFileError: Naming the first bad entry and field.
    """
    if not isinstance(data, dict):
        raise CredentialsFileError(f"{source}: must be a JSON object mapping sha256 hex to {{principal, role}}")
    result: dict[str, Caller] = {}
    for digest, entry in data.items():
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise CredentialsFileError(f"{source}: a key is not a lowercase sha256 hex digest")
        caller = _entry(source, digest[:12] + "…", entry)
        result[digest] = Caller(caller.principal, caller.role, "token")
    return result


def parse_certificates(data: object, source: str = "certificates file") -> dict[str, Caller]:
    """Validate a decoded certificates file; returns callers by subject common name.

    Raises:
        CredentialsFileError: Naming the first bad entry and field.
    """
    if not isinstance(data, dict):
        raise CredentialsFileError(f"{source}: must be a JSON object mapping common name to {{principal, role}}")
    result: dict[str, Caller] = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not name:
            raise CredentialsFileError(f"{source}: a key is not a certificate common name")
        caller = _entry(source, name, entry)
        result[name] = Caller(caller.principal, caller.role, "certificate")
    return result


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise CredentialsFileError(f"{path}: cannot read: {error.strerror}") from error
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as error:
        raise CredentialsFileError(f"{path}: not JSON (line {error.lineno})") from error


def add_token(path: Path, principal: str, role: str) -> str:
    """Create a token for ``principal`` acting as ``role``, store its hash in ``path``, return the token.

    The file is created 0600 if missing and replaced atomically; the token itself is stored nowhere.

    Raises:
        CredentialsFileError: Bad principal or role, or an unreadable existing file.
    """
    if not principal.strip():
        raise CredentialsFileError("principal: required")
    if role not in ROLES:
        raise CredentialsFileError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
    existing = parse_tokens(_read_json(path), str(path))
    token = "rgd_" + secrets.token_urlsafe(32)
    data: dict[str, Any] = {d: {"principal": c.principal, "role": c.role} for d, c in existing.items()}
    data[hash_token(token)] = {"principal": principal.strip(), "role": role}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return token


class _ReloadingFile:
    """A parsed JSON file, parsed again whenever its modification time or size changes."""

    def __init__(
        self, path: Path | None, parse: Any, fixed: Mapping[str, Caller] | None = None, recheck_s: float = 1.0
    ) -> None:
        self._path = path
        self._parse = parse
        self._entries: dict[str, Caller] = dict(fixed or {})
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._recheck_s = recheck_s
        self._checked_at = -recheck_s
        if path is not None:
            self.entries()

    def entries(self) -> dict[str, Caller]:
        if self._path is None:
            return self._entries
        now = time.monotonic()
        if now - self._checked_at < self._recheck_s:
            return self._entries  # a stat per call would cost more than the rest of the check
        self._checked_at = now
        try:
            info = self._path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._entries = self._parse(_read_json(self._path), str(self._path))
                except CredentialsFileError as error:
                    # Keep the last good set: a half-written file must lock nobody out (or in).
                    _log.error("auth.credentials_file_invalid", error=str(error))
                    if self._stamp is None:
                        raise
                    return self._entries
                self._stamp = stamp
                _log.info("auth.credentials_loaded", kind=self._parse.__name__, count=len(self._entries))
        return self._entries


class Credentials:
    """The known tokens and certificate identities of one service."""

    def __init__(
        self,
        tokens_file: Path | None = None,
        certs_file: Path | None = None,
        *,
        tokens: Mapping[str, Caller] | None = None,
        certificates: Mapping[str, Caller] | None = None,
        recheck_s: float = 1.0,
    ) -> None:
        """Create the store from files or fixed mappings (tests).

        Args:
            tokens_file: The tokens file, re-read when it changes.
            certs_file: The certificates file, re-read when it changes.
            tokens: Fixed callers by token hash, when there is no file.
            certificates: Fixed callers by common name, when there is no file.
            recheck_s: How often a file is checked for changes (at most once per this many seconds).

        Raises:
            CredentialsFileError: A file is malformed at start.
        """
        self._tokens = _ReloadingFile(tokens_file, parse_tokens, tokens, recheck_s)
        self._certs = _ReloadingFile(certs_file, parse_certificates, certificates, recheck_s)

    def by_token(self, token: str) -> Caller | None:
        """The caller a token stands for, or None."""
        digest = hash_token(token)
        found = None
        for known, caller in self._tokens.entries().items():
            if hmac.compare_digest(known, digest):
                found = caller
        return found

    def by_certificate(self, common_name: str) -> Caller | None:
        """The caller a verified certificate's common name stands for, or None."""
        return self._certs.entries().get(common_name)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, or None when absent or malformed."""
    for key, value in metadata:
        if key == AUTHORIZATION_HEADER and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def certificate_name(context: Any) -> str | None:
    """The subject common name of the client certificate the TLS layer verified, or None."""
    try:
        auth = context.auth_context() or {}
    except Exception:  # a context without a transport (tests' fakes)
        return None
    names = auth.get("x509_common_name") or ()
    for name in names:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        if text:
            return text
    return None


@dataclass(frozen=True)
class AccessPolicy:
    """Which roles may call which methods of a service.

    Attributes:
        protected_prefixes: Methods under these prefixes need an authenticated caller.
        allowed: Full method name → roles admitted; a protected method not listed admits nobody.
        open_methods: Protected-prefix methods that stay open (e.g. an inference protocol's liveness call).
    """

    protected_prefixes: tuple[str, ...]
    allowed: Mapping[str, frozenset[str]]
    open_methods: frozenset[str] = frozenset()

    def protects(self, method: str) -> bool:
        """True when ``method`` needs an authenticated caller."""
        return method.startswith(self.protected_prefixes) and method not in self.open_methods

    def admits(self, method: str, role: str) -> bool:
        """True when ``role`` may call ``method``."""
        return role in self.allowed.get(method, frozenset())


class Denials:
    """Counts and logs refused calls: by service, method and reason, never with who or what was asked."""

    def __init__(self, metrics: Metrics | None) -> None:
        """Create the recorder.

        Args:
            metrics: Where ``auth_denials`` is counted; only logged when None.
        """
        self._counter = (
            metrics.counter("auth_denials", "calls refused by authentication or role", ("service", "method", "reason"))
            if metrics is not None
            else None
        )

    def record(self, method: str, reason: str, role: str = "") -> None:
        """Record one refusal of ``method`` (the full ``/service/Method`` name) for ``reason``."""
        service, _, name = method.lstrip("/").rpartition("/")
        if self._counter is not None:
            self._counter.labels(service, name, reason).inc()
        _log.warning("auth.denied", method=method, reason=reason, role=role or "none")


class CallerAuthInterceptor(ScopedInterceptor):
    """Authenticates each call to a protected method, checks its role, and makes the caller current."""

    def __init__(self, credentials: Credentials, policy: AccessPolicy, metrics: Metrics | None = None) -> None:
        """Create the interceptor.

        Args:
            credentials: Known tokens and certificate identities.
            policy: Roles per method.
            metrics: Where denials are counted; none when None.
        """
        self._credentials = credentials
        self._policy = policy
        self._deny = Denials(metrics).record

    def authenticate(self, method: str, context: Any) -> Caller | None:
        """The caller of a call, checked against the policy; None for an open method.

        Raises:
            Unauthenticated: No credentials, or credentials nobody issued.
            PermissionDenied: The caller's role may not call ``method``.
        """
        if not self._policy.protects(method):
            return None
        token = bearer_token(context.invocation_metadata() or ())
        caller: Caller | None
        if token is not None:
            caller = self._credentials.by_token(token)
            if caller is None:
                self._deny(method, "unknown_token")
                raise Unauthenticated("unknown bearer token")
        else:
            name = certificate_name(context)
            caller = self._credentials.by_certificate(name) if name is not None else None
            if caller is None:
                self._deny(method, "unmapped_certificate" if name is not None else "no_credentials")
                raise Unauthenticated(
                    "send 'authorization: Bearer <token>' metadata or a client certificate this service maps to a role"
                )
        if not self._policy.admits(method, caller.role):
            self._deny(method, "role_not_allowed", caller.role)
            raise PermissionDenied(f"the role {caller.role} may not call {method.rpartition('/')[2]}")
        return caller

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Authenticate the call (or end it) and make its caller current."""
        caller = self.authenticate(call.method, call.context)
        if caller is None:
            yield
            return
        reset = _caller.set(caller)
        try:
            yield
        finally:
            _caller.reset(reset)


class InsecureDevInterceptor(ScopedInterceptor):
    """Development mode: every call runs as :data:`INSECURE_CALLER`, nothing is checked."""

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Make the insecure caller current."""
        reset = _caller.set(INSECURE_CALLER)
        try:
            yield
        finally:
            _caller.reset(reset)


def auth_interceptors(settings: CallerAuthSettings, policy: AccessPolicy, metrics: Metrics | None) -> list[Interceptor]:
    """The interceptor a composition root installs for its settings (warns loudly in insecure-dev mode).

    Raises:
        CredentialsFileError: A credentials file is malformed.
    """
    if settings.auth_mode == INSECURE_DEV:
        _log.warning(
            "auth.insecure_dev_mode",
            message=(
                "AUTHENTICATION IS OFF (RADGUARD_AUTH_MODE=insecure-dev): anyone who reaches this port may call "
                "every method. For local development only."
            ),
        )
        return [InsecureDevInterceptor()]
    credentials = Credentials(
        settings.auth_tokens_file, settings.auth_certs_file, recheck_s=settings.auth_files_recheck_s
    )
    return [CallerAuthInterceptor(credentials, policy, metrics)]
