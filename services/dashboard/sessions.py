"""Server-side sessions: the browser holds only a random id (HttpOnly, SameSite=Strict cookie); the bearer
token, the identity governance confirmed for it and the session's CSRF token stay on the server."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "rg_session"


@dataclass
class Session:
    """One signed-in person."""

    token: str
    principal: str
    role: str
    expires_at: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def csrf_ok(self, given: str) -> bool:
        """Whether a form's CSRF token is this session's (constant-time comparison)."""
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionStore:
    """Sessions in the dashboard process's memory, expiring after ``ttl_s`` without use."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, token: str, principal: str, role: str) -> tuple[str, Session]:
        """A new session id and its session."""
        self._sweep()
        session_id = secrets.token_urlsafe(32)
        session = Session(token, principal, role, self._clock() + self._ttl)
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of an id (its lifetime renewed), or None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if session.expires_at <= now:
            del self._sessions[session_id]
            return None
        session.expires_at = now + self._ttl
        return session

    def drop(self, session_id: str | None) -> None:
        """Sign out."""
        if session_id:
            self._sessions.pop(session_id, None)

    def expire_all(self) -> None:
        """End every session at once (e.g. after rotating tokens)."""
        self._sessions.clear()

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
