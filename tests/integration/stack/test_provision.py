"""``python -m stack.provision`` (the Helm chart's pre-install/pre-upgrade Job) on the real stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from stack.migrations import MIGRATION_DIRS
from stack.roles import OWNER_ROLE
from stack.topics import TOPICS
from tests.integration.conftest import StackEndpoints, _with_user, scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]


def _provision(**env: str) -> subprocess.CompletedProcess[str]:
    # Only what the Job sets: no variable inherited from a developer's shell may decide the outcome.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RADGUARD_")}
    return subprocess.run(
        [sys.executable, "-m", "stack.provision"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_an_empty_database_is_migrated_once_and_the_topics_exist(stack: StackEndpoints) -> None:
    files = sorted(p.name for d in MIGRATION_DIRS for p in d.glob("*.sql"))
    async with scratch_database(stack.postgres_dsn, "provision", []) as admin_dsn:
        env = {
            "RADGUARD_POSTGRES_DSN": _with_user(admin_dsn, OWNER_ROLE),
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "RADGUARD_PROVISION_GRANTS": "true",
        }
        first = await asyncio.to_thread(_provision, **env)
        assert first.returncode == 0, first.stderr
        lines = first.stdout.splitlines()
        assert [line for line in lines if "applied migration" in line] == [
            f"provision: applied migration {name}" for name in files
        ]
        assert "provision: radguard_ledger: privileges on 6 tables" in lines
        con = await asyncpg.connect(admin_dsn)
        try:
            applied = await con.fetchval("select count(*) from schema_migrations")
        finally:
            await con.close()
        assert applied == len(files)

        second = await asyncio.to_thread(_provision, **{**env, "RADGUARD_PROVISION_GRANTS": "false"})
        assert second.returncode == 0, second.stderr
        assert second.stdout.splitlines() == ["provision: nothing to do: schema and topics are current"]

    from services.runtime.kafka import list_topics

    assert {t.name for t in TOPICS} <= set(await asyncio.to_thread(list_topics, stack.kafka_bootstrap))


async def test_bad_settings_exit_2_naming_the_variable(stack: Any) -> None:
    result = await asyncio.to_thread(
        _provision, RADGUARD_KAFKA_REPLICATION_FACTOR="three", RADGUARD_POSTGRES_DSN=stack.postgres_dsn
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "provision: RADGUARD_KAFKA_REPLICATION_FACTOR: must be an integer at least 1, got 'three'"
    )


async def test_an_unreachable_database_exits_1_with_one_line(stack: StackEndpoints) -> None:
    result = await asyncio.to_thread(
        _provision,
        RADGUARD_POSTGRES_DSN="postgresql://radguard@127.0.0.1:1/radguard",
        RADGUARD_KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        RADGUARD_POSTGRES_CONNECT_TIMEOUT_S="2",
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("provision: failed: ")
    assert "Traceback" not in result.stderr
