"""Fixtures for the governance store's integration tests: a fresh database per test on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from governance.adapters.postgres import PostgresGovernanceStore
from services.runtime.migrate import FOUNDATION_MIGRATIONS
from stack.settings import REPO_ROOT
from tests.integration.conftest import StackEndpoints, scratch_database
from tests.unit.governance.builders import World

MIGRATION_DIRS = [
    FOUNDATION_MIGRATIONS,
    REPO_ROOT / "governance" / "migrations",
    REPO_ROOT / "services" / "monitors" / "migrations",
]


@pytest_asyncio.fixture(loop_scope="session")
async def gov_dsn(stack: StackEndpoints) -> AsyncIterator[str]:
    """A new database with the foundation, governance and monitors schema, dropped after the test."""
    async with scratch_database(stack.postgres_dsn, "gov_test", MIGRATION_DIRS) as dsn:
        yield dsn


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
