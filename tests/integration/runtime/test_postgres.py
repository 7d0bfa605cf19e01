"""The asyncpg pool and the migration runner against the real PostgreSQL of the local stack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from services.runtime.migrate import (
    FOUNDATION_MIGRATIONS,
    MIGRATION_TABLE,
    ChecksumMismatch,
    discover_migrations,
    run_migrations,
)
from services.runtime.postgres import create_pool, is_ready, ping

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest_asyncio.fixture
async def fresh_dsn(stack: Any) -> AsyncIterator[str]:
    """A new, empty database on the stack's server (dropped afterwards), so tests own their schema."""
    name = f"radguard_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.postgres_dsn)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    yield _with_database(stack.postgres_dsn, name)
    admin = await asyncpg.connect(stack.postgres_dsn)
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()


def _write(directory: Path, name: str, sql: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(sql)
    return path


@pytest.fixture
def area_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "area"
    _write(directory, "0100_widgets.sql", "create table widget (id bigint primary key, name text not null);")
    _write(directory, "0101_widget_rows.sql", "insert into widget values (1, 'first'), (2, 'second');")
    return directory


@pytest.mark.asyncio
async def test_pool_round_trip_and_readiness(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=1, max_size=3, command_timeout=5)
    try:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("create table reading (id uuid primary key, score double precision)")
            rows = [(uuid.uuid4(), score) for score in (0.1, 0.7, 0.93)]
            await connection.copy_records_to_table("reading", records=rows)
        fetched = await pool.fetch("select id, score from reading order by score")
        assert [(row["id"], row["score"]) for row in fetched] == rows
        assert await pool.fetchval("select count(*) from reading where score > $1", 0.5) == 2
        await ping(pool)
        assert await is_ready(pool) is True
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_migrations_apply_in_order_once(fresh_dsn: str, area_migrations: Path) -> None:
    directories = [FOUNDATION_MIGRATIONS, area_migrations]
    applied = await run_migrations(fresh_dsn, directories)
    assert [str(migration) for migration in applied] == [
        "0001_foundation",
        "0100_widgets",
        "0101_widget_rows",
    ]
    assert await run_migrations(fresh_dsn, directories) == []  # idempotent

    connection = await asyncpg.connect(fresh_dsn)
    try:
        rows = await connection.fetch(
            f"select version, name, sha256, applied_at from {MIGRATION_TABLE} order by version"
        )
        expected = {migration.version: migration for migration in discover_migrations(directories)}
        assert [(row["version"], row["name"], row["sha256"]) for row in rows] == [
            (version, migration.name, migration.sha256) for version, migration in sorted(expected.items())
        ]
        assert all(row["applied_at"] is not None for row in rows)
        meta = await connection.fetchval("select value from radguard_meta where key = 'foundation_schema_version'")
        assert meta == "1"
        assert await connection.fetchval("select count(*) from widget") == 2
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_a_changed_applied_migration_stops_the_runner(fresh_dsn: str, area_migrations: Path) -> None:
    await run_migrations(fresh_dsn, [area_migrations])
    edited = area_migrations / "0100_widgets.sql"
    edited.write_text(edited.read_text() + "\n-- edited after it ran\n")
    _write(area_migrations, "0102_more.sql", "create table gadget (id int);")

    with pytest.raises(ChecksumMismatch) as raised:
        await run_migrations(fresh_dsn, [area_migrations])
    assert str(edited) in str(raised.value)

    connection = await asyncpg.connect(fresh_dsn)
    try:  # nothing after the check ran
        assert await connection.fetchval("select to_regclass('gadget')") is None
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_a_failing_migration_is_rolled_back_alone(fresh_dsn: str, area_migrations: Path) -> None:
    _write(area_migrations, "0102_broken.sql", "create table half (id int); select * from no_such_table;")
    with pytest.raises(asyncpg.UndefinedTableError):
        await run_migrations(fresh_dsn, [area_migrations])

    connection = await asyncpg.connect(fresh_dsn)
    try:
        rows = await connection.fetch(f"select version from {MIGRATION_TABLE} order by version")
        versions = [row["version"] for row in rows]
        assert versions == [100, 101]
        assert await connection.fetchval("select to_regclass('half')") is None
        # The advisory lock was released: another run proceeds (and fails on the same file again).
        held = await connection.fetchval(
            "select count(*) from pg_locks where locktype = 'advisory'"
            " and database = (select oid from pg_database where datname = current_database())"
        )
        assert held == 0
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_concurrent_runners_apply_each_migration_once(fresh_dsn: str, area_migrations: Path) -> None:
    directories = [FOUNDATION_MIGRATIONS, area_migrations]
    results = await asyncio.gather(*(run_migrations(fresh_dsn, directories) for _ in range(3)))
    applied = sorted(str(migration) for result in results for migration in result)
    assert applied == ["0001_foundation", "0100_widgets", "0101_widget_rows"]
