"""The domain error → gRPC status table."""

from __future__ import annotations

import inspect

import grpc
import pytest

from services.runtime import errors
from services.runtime.errors import (
    STATUS_BY_ERROR,
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    internal_error_message,
    status_for,
)


def _domain_error_classes() -> list[type[DomainError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, DomainError) and cls.__module__ == errors.__name__
    ]


def test_every_domain_error_class_is_in_the_table() -> None:
    classes = _domain_error_classes()
    assert len(classes) == 11
    assert set(classes) == set(STATUS_BY_ERROR)


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            InvalidArgument("study.study_instance_uid", "must not be empty"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "study.study_instance_uid: must not be empty",
        ),
        (NotFound("model 'chest' version 3"), grpc.StatusCode.NOT_FOUND, "model 'chest' version 3 not found"),
        (AlreadyExists("version 3"), grpc.StatusCode.ALREADY_EXISTS, "version 3 already exists"),
        (Conflict("route table changed meanwhile"), grpc.StatusCode.ABORTED, "route table changed meanwhile"),
        (
            FailedPrecondition("canary needs 200 reads, has 41"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "canary needs 200 reads, has 41",
        ),
        (PermissionDenied(), grpc.StatusCode.PERMISSION_DENIED, "permission denied"),
        (Unauthenticated(), grpc.StatusCode.UNAUTHENTICATED, "authentication required"),
        (Unavailable("triton"), grpc.StatusCode.UNAVAILABLE, "triton is unavailable"),
        (
            Unavailable("kafka", "no broker answered"),
            grpc.StatusCode.UNAVAILABLE,
            "kafka is unavailable: no broker answered",
        ),
        (
            DeadlineExceeded("inference took longer than 2s"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "inference took longer than 2s",
        ),
        (ResourceExhausted("event spool is full"), grpc.StatusCode.RESOURCE_EXHAUSTED, "event spool is full"),
    ],
)
def test_status_and_message(error: DomainError, code: grpc.StatusCode, message: str) -> None:
    assert status_for(error) == code
    assert error.message == message
    assert str(error) == message


def test_invalid_argument_keeps_the_field() -> None:
    error = InvalidArgument("image.tensor.shape", "must have 2 or 3 dimensions, got 4")
    assert error.field == "image.tensor.shape"
    assert error.message.startswith("image.tensor.shape: ")


def test_subclasses_map_like_their_nearest_listed_base() -> None:
    class ModelVersionNotFound(NotFound):
        pass

    class GateNotMet(FailedPrecondition):
        pass

    assert status_for(ModelVersionNotFound("version 9")) == grpc.StatusCode.NOT_FOUND
    assert status_for(GateNotMet("ECE above 0.05")) == grpc.StatusCode.FAILED_PRECONDITION


def test_bare_domain_error_is_not_hidden_as_internal() -> None:
    assert status_for(DomainError("state does not allow it")) == grpc.StatusCode.FAILED_PRECONDITION


def test_internal_message_carries_only_the_request_id() -> None:
    assert internal_error_message("abc123") == "internal error (request id abc123)"
    assert internal_error_message(None) == "internal error"


def test_caller_messages_are_bounded_and_printable() -> None:
    from services.runtime.errors import MAX_STATUS_MESSAGE_CHARS, bounded_message

    assert bounded_message("field: must not be empty") == "field: must not be empty"
    long = bounded_message("shape: " + "9," * 100_000)
    assert len(long) == MAX_STATUS_MESSAGE_CHARS
    assert long.endswith("…")
    assert bounded_message("a\x00b\nc") == "a?b?c"
