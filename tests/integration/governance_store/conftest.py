"""Fixtures for the governance store's integration tests: a fresh database per test on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio

from governance.adapters.postgres import PostgresGovernanceStore
from services.runtime.migrate import FOUNDATION_MIGRATIONS, run_migrations
from stack.settings import REPO_ROOT
from tests.integration.conftest import StackEndpoints
from tests.unit.governance.builders import World

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "governance" / "migrations",
    REPO_ROOT / "services" / "monitors" / "migrations",
]


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest_asyncio.fixture(loop_scope="session")
async def gov_dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    """A new database with the foundation, governance and monitors schema, dropped after the test."""
    name = f"gov_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.postgres_dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(stack.postgres_dsn, name)
    await run_migrations(dsn, MIGRATION_DIRS)
    yield dsn
    for _ in range(10):
        try:
            admin = await asyncpg.connect(stack.postgres_dsn)
            break
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(1)
    else:
        return
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def gov_pool(gov_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database."""
    pool = await asyncpg.create_pool(gov_dsn, min_size=1, max_size=6)
    assert pool is not None
    yield pool
    await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def pg_world(gov_pool: asyncpg.Pool) -> World:
    """The governance service over the PostgreSQL store (fake Triton and evidence)."""
    return World(PostgresGovernanceStore(gov_pool))
