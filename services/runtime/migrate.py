"""Versioned SQL migrations: discover ``NNNN_name.sql`` files, apply the pending ones, record each.

Rules the files follow:

* Versions are unique across all migration folders, which share one ``schema_migrations`` table.
  Each area keeps its own range: the foundation 0001-0099, governance 0100-0199, the ledger and
  monitors 0200-0299, later areas the next free hundred.
* A file is applied in its own transaction together with its ``schema_migrations`` row, so it must
  not contain transaction control (``BEGIN``/``COMMIT``) or statements that refuse to run in a
  transaction (``CREATE INDEX CONCURRENTLY``).
* An applied file is never edited: the runner refuses to run when an applied file's SHA-256 changed.
  Fix a mistake with a new migration.
* A new file must sort after every applied one; a lower version appearing late (e.g. from a branch
  merged after a later migration ran) is refused unless ``allow_out_of_order`` is set.

Concurrent runners are safe: they serialise on a PostgreSQL advisory lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from services.runtime.errors import Unavailable
from services.runtime.telemetry import get_logger

#: The foundation's own migrations.
FOUNDATION_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

MIGRATION_TABLE = "schema_migrations"

# Fixed key of the advisory lock runners take; any constant works as long as every runner uses it.
MIGRATION_LOCK_KEY = 0x7261_6467_6D69_6772  # "radgmigr"

_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.sql")

_log = get_logger(__name__)


class MigrationError(Exception):
    """The migrations cannot be applied as they are."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file changed after it was applied."""


@dataclass(frozen=True)
class Migration:
    """One migration file.

    Attributes:
        version: The number in front of the name.
        name: The rest of the file name, without ``.sql``.
        path: Where the file is.
        sql: Its content.
        sha256: Hex SHA-256 of its bytes.
    """

    version: int
    name: str
    path: Path
    sql: str
    sha256: str

    def __str__(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class AppliedMigration:
    """A row of ``schema_migrations``."""

    version: int
    name: str
    sha256: str
    applied_at: datetime | None = None


def read_migration(path: Path) -> Migration:
    """Read one migration file.

    Args:
        path: A file named ``NNNN_name.sql`` (lowercase name, digits and underscores).

    Raises:
        MigrationError: The name does not follow the pattern.
    """
    match = _FILE_NAME.fullmatch(path.name)
    if match is None:
        raise MigrationError(f"{path}: a migration file is named NNNN_name.sql (lowercase, digits, _)")
    data = path.read_bytes()
    return Migration(
        version=int(match["version"]),
        name=match["name"],
        path=path,
        sql=data.decode("utf-8"),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def discover_migrations(directories: Iterable[Path]) -> list[Migration]:
    """Collect the ``.sql`` files of the given folders, in version order.

    Files with other extensions (e.g. a README) are ignored; every ``.sql`` file must be a migration.

    Args:
        directories: Folders holding migration files (not searched recursively).

    Returns:
        All migrations, sorted by version.

    Raises:
        MigrationError: A folder is missing, a ``.sql`` file is misnamed, or two files share a version.
    """
    by_version: dict[int, Migration] = {}
    for directory in directories:
        if not directory.is_dir():
            raise MigrationError(f"{directory}: migration folder does not exist")
        for path in sorted(directory.glob("*.sql")):
            migration = read_migration(path)
            clash = by_version.get(migration.version)
            if clash is not None:
                raise MigrationError(f"{clash.path} and {migration.path} share version {migration.version}")
            by_version[migration.version] = migration
    return [by_version[version] for version in sorted(by_version)]


def pending_migrations(
    migrations: Sequence[Migration],
    applied: Mapping[int, AppliedMigration],
    *,
    allow_out_of_order: bool = False,
) -> list[Migration]:
    """Decide which migrations still have to run, after checking the applied ones are unchanged.

    Args:
        migrations: All migrations found, in version order.
        applied: ``schema_migrations`` rows by version.
        allow_out_of_order: Accept pending versions lower than a higher applied one of the same folder.

    Returns:
        The migrations to apply, in version order.

    Raises:
        ChecksumMismatch: An applied migration's file differs from what was applied.
        MigrationError: A pending version sorts before an applied one of its own folder (unless allowed).
            Each area (foundation, governance, ledger, feedback) owns a folder and a version range, so a
            new area's first migration may well be numbered below another area's applied ones.
    """
    for migration in migrations:
        row = applied.get(migration.version)
        if row is not None and row.sha256 != migration.sha256:
            raise ChecksumMismatch(
                f"{migration.path}: changed after it was applied as version {row.version:04d} ({row.name}); "
                f"applied sha256 {row.sha256}, file sha256 {migration.sha256}. Add a new migration instead."
            )
    pending = [migration for migration in migrations if migration.version not in applied]
    if pending and applied and not allow_out_of_order:
        folder_of = {migration.version: migration.path.parent for migration in migrations}
        late = []
        for migration in pending:
            same_folder = [v for v in applied if folder_of.get(v) == migration.path.parent]
            if same_folder and max(same_folder) > migration.version:
                late.append((migration, max(same_folder)))
        if late:
            names = ", ".join(f"{m.path} (below applied {v:04d})" for m, v in late)
            raise MigrationError(f"{names}: version below one already applied from its folder; renumber it")
    return pending


_CREATE_TABLE = f"""
create table if not exists {MIGRATION_TABLE} (
    version integer primary key,
    name text not null,
    sha256 text not null,
    applied_at timestamptz not null default now()
)
"""


async def _lock(connection: asyncpg.Connection, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await connection.fetchval("select pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
        if time.monotonic() >= deadline:
            raise MigrationError(f"another migration runner held the lock for more than {timeout_s:g}s")
        await asyncio.sleep(0.1)


async def applied_migrations(connection: asyncpg.Connection) -> dict[int, AppliedMigration]:
    """Read ``schema_migrations`` (which must exist).

    Args:
        connection: An open connection.

    Returns:
        Rows by version.
    """
    rows = await connection.fetch(f"select version, name, sha256, applied_at from {MIGRATION_TABLE}")  # noqa: S608
    return {
        row["version"]: AppliedMigration(row["version"], row["name"], row["sha256"], row["applied_at"]) for row in rows
    }


async def apply_migrations(
    connection: asyncpg.Connection,
    directories: Sequence[Path],
    *,
    allow_out_of_order: bool = False,
    lock_timeout_s: float = 60.0,
) -> list[Migration]:
    """Apply pending migrations over an open connection, each in its own transaction.

    Args:
        connection: An open connection (not inside a transaction).
        directories: Migration folders.
        allow_out_of_order: See :func:`pending_migrations`.
        lock_timeout_s: Time to wait for a concurrent runner to finish.

    Returns:
        The migrations applied by this call, in order (empty when the schema is current).

    Raises:
        MigrationError: Bad files, a changed applied file, or a lock timeout.
        asyncpg.PostgresError: A migration's SQL failed; it and everything after it are not applied.
    """
    migrations = discover_migrations(directories)
    await _lock(connection, lock_timeout_s)
    try:
        await connection.execute(_CREATE_TABLE)
        pending = pending_migrations(
            migrations, await applied_migrations(connection), allow_out_of_order=allow_out_of_order
        )
        for migration in pending:
            started = time.perf_counter()
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    f"insert into {MIGRATION_TABLE} (version, name, sha256) values ($1, $2, $3)",  # noqa: S608
                    migration.version,
                    migration.name,
                    migration.sha256,
                )
            _log.info(
                "migration.applied",
                migration=str(migration),
                duration_ms=round((time.perf_counter() - started) * 1000.0, 1),
            )
        return pending
    finally:
        await connection.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def run_migrations(
    dsn: str,
    directories: Sequence[Path],
    *,
    allow_out_of_order: bool = False,
    lock_timeout_s: float = 60.0,
    connect_timeout_s: float = 10.0,
) -> list[Migration]:
    """Connect, apply pending migrations and disconnect.

    Args:
        dsn: PostgreSQL DSN.
        directories: Migration folders.
        allow_out_of_order: See :func:`pending_migrations`.
        lock_timeout_s: Time to wait for a concurrent runner to finish.
        connect_timeout_s: Time the connection attempt may take.

    Returns:
        The migrations applied by this call.

    Raises:
        Unavailable: The server cannot be reached.
        MigrationError: See :func:`apply_migrations`.
    """
    try:
        connection = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
    try:
        return await apply_migrations(
            connection, directories, allow_out_of_order=allow_out_of_order, lock_timeout_s=lock_timeout_s
        )
    finally:
        await connection.close()
