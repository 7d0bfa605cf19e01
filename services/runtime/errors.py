"""Typed domain errors and the one table that maps them to gRPC status codes.

Use cases raise these; the error interceptor turns them into statuses, so no servicer chooses a status
code itself. The message of a domain error is shown to the caller: it must describe the caller's
problem and never carry patient data. Anything that is not a domain error becomes ``INTERNAL`` with a
generic message and the request id, never the exception's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import grpc


class DomainError(Exception):
    """Base of every error whose message may be shown to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """The request is malformed; the message starts with the offending field."""

    def __init__(self, field: str, message: str) -> None:
        """Create the error.

        Args:
            field: Dotted path of the offending field, e.g. ``"study.study_instance_uid"``.
            message: What is wrong with it, e.g. ``"must not be empty"``.
        """
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(DomainError):
    """The thing the request names does not exist."""

    def __init__(self, what: str) -> None:
        """Create the error.

        Args:
            what: The missing thing, e.g. ``"model 'chest-xray' version 3"``.
        """
        super().__init__(f"{what} not found")
        self.what = what


class AlreadyExists(DomainError):
    """The request would create something that exists already."""

    def __init__(self, what: str) -> None:
        """Create the error.

        Args:
            what: The existing thing.
        """
        super().__init__(f"{what} already exists")
        self.what = what


class Conflict(DomainError):
    """The request raced with a concurrent change; retrying the whole operation may succeed."""


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the request (e.g. a rollout gate is not met)."""

    def __init__(self, condition: str) -> None:
        """Create the error.

        Args:
            condition: The unmet condition, e.g. ``"canary needs 200 reads, has 41"``.
        """
        super().__init__(condition)
        self.condition = condition


class PermissionDenied(DomainError):
    """The caller is known but not allowed to do this."""

    def __init__(self, message: str = "permission denied") -> None:
        super().__init__(message)


class Unauthenticated(DomainError):
    """The caller did not prove who they are."""

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(message)


class Unavailable(DomainError):
    """A dependency (Triton, Kafka, PostgreSQL ...) cannot be reached; the caller may retry."""

    def __init__(self, dependency: str, message: str = "") -> None:
        """Create the error.

        Args:
            dependency: Which dependency, e.g. ``"postgres"``.
            message: Optional detail that is safe to show (no credentials, no patient data).
        """
        text = f"{dependency} is unavailable" + (f": {message}" if message else "")
        super().__init__(text)
        self.dependency = dependency


class DeadlineExceeded(DomainError):
    """The work could not finish within the time the caller or a setting allows."""


class ResourceExhausted(DomainError):
    """A quota or a bounded resource (queue, spool, pool) is full."""


#: The one mapping from domain error to gRPC status. Subclasses map like their nearest listed base.
STATUS_BY_ERROR: Mapping[type[DomainError], grpc.StatusCode] = MappingProxyType(
    {
        InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        NotFound: grpc.StatusCode.NOT_FOUND,
        AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        Conflict: grpc.StatusCode.ABORTED,
        FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
        Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        Unavailable: grpc.StatusCode.UNAVAILABLE,
        DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
        ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
        # A DomainError raised directly still says something meant for the caller, but nothing
        # about its kind: treat it as a failed precondition rather than hide it as INTERNAL.
        DomainError: grpc.StatusCode.FAILED_PRECONDITION,
    }
)


def status_for(error: DomainError) -> grpc.StatusCode:
    """Return the gRPC status code for a domain error.

    Args:
        error: The error raised by a use case.

    Returns:
        The code of the nearest class in the error's MRO listed in :data:`STATUS_BY_ERROR`.
    """
    for cls in type(error).__mro__:
        if issubclass(cls, DomainError) and cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    # Unreachable while DomainError itself is in the table; kept so the function is total.
    return grpc.StatusCode.INTERNAL


#: Longest status message sent to a caller: a message never echoes unbounded input back.
MAX_STATUS_MESSAGE_CHARS = 300


def bounded_message(message: str, limit: int = MAX_STATUS_MESSAGE_CHARS) -> str:
    """Cut a caller-facing message to ``limit`` characters (marking the cut) and drop control characters.

    Args:
        message: The domain error's message.
        limit: Longest result.
    """
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in message)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def internal_error_message(request_id: str | None) -> str:
    """Return the generic message sent for unexpected failures.

    Args:
        request_id: The call's request id, so the caller can quote it and operators can find the log.

    Returns:
        A message that reveals nothing about the failure itself.
    """
    suffix = f" (request id {request_id})" if request_id else ""
    return f"internal error{suffix}"
