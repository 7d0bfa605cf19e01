"""Migration discovery, ordering and checksum checks (the parts that need no database)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.runtime.migrate import (
    FOUNDATION_MIGRATIONS,
    AppliedMigration,
    ChecksumMismatch,
    MigrationError,
    discover_migrations,
    pending_migrations,
    read_migration,
)


def _write(directory: Path, name: str, sql: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(sql)
    return path


def _applied(path: Path, version: int, name: str) -> AppliedMigration:
    return AppliedMigration(version, name, hashlib.sha256(path.read_bytes()).hexdigest())


def test_discovery_merges_folders_in_version_order(tmp_path: Path) -> None:
    foundation, governance = tmp_path / "foundation", tmp_path / "governance"
    _write(governance, "0101_registry.sql", "create table registry (id int);")
    _write(foundation, "0002_more.sql", "select 2;")
    _write(foundation, "0001_first.sql", "select 1;")
    _write(governance, "0100_audit.sql", "create table audit (id int);")
    _write(governance, "README.md", "not a migration")

    migrations = discover_migrations([foundation, governance])
    assert [str(migration) for migration in migrations] == [
        "0001_first",
        "0002_more",
        "0100_audit",
        "0101_registry",
    ]
    first = migrations[0]
    assert first.version == 1
    assert first.name == "first"
    assert first.sql == "select 1;"
    assert first.sha256 == hashlib.sha256(b"select 1;").hexdigest()


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "abcd_x.sql", "0001_.sql"])
def test_misnamed_sql_files_are_refused(tmp_path: Path, name: str) -> None:
    _write(tmp_path, name, "select 1;")
    with pytest.raises(MigrationError, match=name.replace(".", r"\.")):
        discover_migrations([tmp_path])


def test_duplicate_versions_across_folders_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "a", "0003_one.sql", "select 1;")
    _write(tmp_path / "b", "0003_other.sql", "select 1;")
    with pytest.raises(MigrationError, match="share version 3"):
        discover_migrations([tmp_path / "a", tmp_path / "b"])


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        discover_migrations([tmp_path / "nope"])


def test_pending_skips_applied_ones(tmp_path: Path) -> None:
    first = _write(tmp_path, "0001_first.sql", "select 1;")
    _write(tmp_path, "0002_second.sql", "select 2;")
    migrations = discover_migrations([tmp_path])

    assert [m.version for m in pending_migrations(migrations, {})] == [1, 2]
    applied = {1: _applied(first, 1, "first")}
    assert [m.version for m in pending_migrations(migrations, applied)] == [2]


def test_a_changed_applied_file_is_named(tmp_path: Path) -> None:
    first = _write(tmp_path, "0001_first.sql", "select 1;")
    applied = {1: _applied(first, 1, "first")}
    first.write_text("select 1; -- edited later")
    migrations = discover_migrations([tmp_path])
    with pytest.raises(ChecksumMismatch) as raised:
        pending_migrations(migrations, applied)
    assert str(first) in str(raised.value)
    assert applied[1].sha256 in str(raised.value)


def test_late_lower_versions_are_refused_unless_allowed(tmp_path: Path) -> None:
    second = _write(tmp_path, "0002_second.sql", "select 2;")
    late = _write(tmp_path, "0001_late.sql", "select 1;")
    migrations = discover_migrations([tmp_path])
    applied = {2: _applied(second, 2, "second")}
    with pytest.raises(MigrationError, match=r"0001_late\.sql"):
        pending_migrations(migrations, applied)
    allowed = pending_migrations(migrations, applied, allow_out_of_order=True)
    assert [m.path for m in allowed] == [late]


def test_applied_versions_without_files_are_tolerated(tmp_path: Path) -> None:
    # A newer release may have applied migrations this code does not know; rolling back code is allowed.
    _write(tmp_path, "0001_first.sql", "select 1;")
    migrations = discover_migrations([tmp_path])
    applied = {
        1: AppliedMigration(1, "first", migrations[0].sha256),
        9: AppliedMigration(9, "future", "0" * 64),
    }
    assert pending_migrations(migrations, applied) == []


def test_the_foundation_migration_is_well_formed() -> None:
    (foundation,) = discover_migrations([FOUNDATION_MIGRATIONS])
    assert str(foundation) == "0001_foundation"
    assert "radguard_meta" in foundation.sql
    assert "begin" not in foundation.sql.lower().split()
    assert read_migration(foundation.path) == foundation


def test_another_folders_lower_version_is_not_late(tmp_path: Path) -> None:
    # Areas own version ranges: governance's 0100 may arrive after the ledger's 0200 was applied.
    ledger, governance = tmp_path / "ledger", tmp_path / "governance"
    ledger.mkdir()
    governance.mkdir()
    applied_file = _write(ledger, "0200_ledger.sql", "create table l (id int);")
    _write(governance, "0100_registry.sql", "create table g (id int);")
    later_ledger = _write(ledger, "0150_backfill.sql", "select 1;")
    migrations = discover_migrations([ledger, governance])
    applied = {200: _applied(applied_file, 200, "ledger")}
    with pytest.raises(MigrationError, match=r"0150_backfill\.sql"):
        pending_migrations(migrations, applied)
    later_ledger.unlink()
    pending = pending_migrations(discover_migrations([ledger, governance]), applied)
    assert [m.version for m in pending] == [100]
