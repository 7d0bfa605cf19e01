"""asyncpg connection pools: creation with clear errors, tracing, and a readiness probe."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg

from services.runtime.config import ServiceSettings
from services.runtime.errors import Unavailable
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)

# Failures that mean "the server cannot be used right now", as opposed to a bad query.
_CONNECT_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)


#: The connection to PostgreSQL broke under a running query (the server died, the socket was reset, the
#: protocol stream ended): the request did not fail because of what it asked.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)

#: PostgreSQL could not be reached or refused service for now: a later attempt may succeed (as opposed to
#: "the query or batch is wrong"). Adapters map these to Unavailable("postgres") and retry.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


class _Instrumentation:
    lock = threading.Lock()
    done = False


def instrument_asyncpg() -> None:
    """Trace asyncpg queries with OpenTelemetry; later calls do nothing."""
    with _Instrumentation.lock:
        if _Instrumentation.done:
            return
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        _Instrumentation.done = True


def _describe(error: BaseException) -> str:
    # asyncpg messages name host, port, user or database, never the password.
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float = 10.0,
    connect_timeout: float = 5.0,
    instrument: bool = True,
    **connect_kwargs: Any,
) -> asyncpg.Pool:
    """Open a connection pool, failing fast and clearly when the server cannot be used.

    Args:
        dsn: ``postgresql://user[:password]@host:port/database``.
        min_size: Connections opened up front (and kept).
        max_size: Upper bound of open connections.
        command_timeout: Default time one statement may take, in seconds.
        connect_timeout: Time one connection attempt may take, in seconds.
        instrument: Trace queries with OpenTelemetry (enabled once per process).
        **connect_kwargs: Passed on to ``asyncpg.create_pool`` (e.g. ``init``, ``server_settings``).

    Returns:
        The open pool; close it with ``await pool.close()`` (a shutdown hook).

    Raises:
        Unavailable: The server is unreachable, refuses the credentials or lacks the database.
    """
    if instrument:
        instrument_asyncpg()
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            timeout=connect_timeout,
            **connect_kwargs,
        )
    except _CONNECT_FAILURES as error:
        raise Unavailable("postgres", _describe(error)) from error
    if pool is None:  # only when the pool is created without awaiting, which is not the case here
        raise Unavailable("postgres", "pool creation returned nothing")
    return pool


async def create_pool_from_settings(settings: ServiceSettings, **connect_kwargs: Any) -> asyncpg.Pool:
    """Open the process's pool from its settings (DSN, pool sizes, timeouts).

    Args:
        settings: The process settings.
        **connect_kwargs: Passed on to ``asyncpg.create_pool``.
    """
    return await create_pool(
        settings.postgres_dsn.get_secret_value(),
        min_size=settings.postgres_pool_min_size,
        max_size=settings.postgres_pool_max_size,
        command_timeout=settings.postgres_command_timeout_s,
        connect_timeout=settings.postgres_connect_timeout_s,
        **connect_kwargs,
    )


async def ping(pool: asyncpg.Pool, timeout_s: float = 2.0) -> None:
    """Run ``select 1`` on a pooled connection.

    Args:
        pool: The pool to probe.
        timeout_s: Time to get a connection and run the query.

    Raises:
        Unavailable: The query did not succeed in time.
    """
    try:
        async with asyncio.timeout(timeout_s):
            async with pool.acquire() as connection:
                value = await connection.fetchval("select 1")
    except (*_CONNECT_FAILURES, asyncpg.PostgresError) as error:
        raise Unavailable("postgres", _describe(error)) from error
    if value != 1:
        raise Unavailable("postgres", f"select 1 returned {value!r}")


async def is_ready(pool: asyncpg.Pool, timeout_s: float = 2.0) -> bool:
    """Readiness probe for :meth:`RadguardServer.add_readiness_check`: True when ``select 1`` works.

    Args:
        pool: The pool to probe.
        timeout_s: Time to get a connection and run the query.
    """
    try:
        await ping(pool, timeout_s)
    except Unavailable as error:
        _log.warning("postgres.not_ready", reason=error.message)
        return False
    return True
