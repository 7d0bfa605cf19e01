"""The one list of "PostgreSQL is down for now" errors every adapter retries or maps to UNAVAILABLE."""

from __future__ import annotations

import asyncpg
import pytest

from services.runtime.postgres import DATABASE_DOWN


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        asyncpg.exceptions.InterfaceError("closed"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.AdminShutdownError("shutting down"),
        asyncpg.exceptions.TooManyConnectionsError("full"),
        asyncpg.exceptions.DiskFullError("disk"),
        asyncpg.exceptions.InternalClientError("unexpected end of the protocol stream"),
    ],
)
def test_outages_count_as_database_down(error: BaseException) -> None:
    assert isinstance(error, DATABASE_DOWN)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UndefinedTableError("no table"),
        asyncpg.exceptions.UniqueViolationError("duplicate"),
        asyncpg.exceptions.DataError("bad value"),
        ValueError("bug"),
    ],
)
def test_bad_queries_and_bugs_do_not(error: BaseException) -> None:
    assert not isinstance(error, DATABASE_DOWN)
