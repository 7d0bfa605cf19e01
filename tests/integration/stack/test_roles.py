"""Least privilege on the stack's PostgreSQL: the roles ``radguard stack up`` creates and the services use.

The governance role appends to the audit chain and reads it, and nothing else: no UPDATE, DELETE or
TRUNCATE, and (owning nothing) no way to disable the append-only trigger. Each service role holds
exactly the privileges stack/roles.py gives it, and the stack's services connect with them.
"""

from __future__ import annotations

import asyncpg
import pytest

from services.runtime.outbox import prune_statement
from stack.manager import Stack
from stack.roles import OUTBOX_TABLES, OWNER_ROLE, SERVICE_ROLES, public_tables, service_role
from tests.integration.conftest import StackEndpoints, service_dsn

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")

REFUSED = [
    ("update gov_audit set actor = 'someone else' where seq = 1", "permission denied for table gov_audit"),
    ("delete from gov_audit where seq = 1", "permission denied for table gov_audit"),
    ("truncate gov_audit", "permission denied for table gov_audit"),
    ("alter table gov_audit disable trigger gov_audit_no_update_delete", "must be owner of table gov_audit"),
    ("alter table gov_audit disable trigger all", "must be owner of table gov_audit"),
    ("drop trigger gov_audit_no_truncate on gov_audit", "must be owner of"),
    ("alter table gov_audit owner to radguard_governance", "must be owner of table gov_audit"),
    ("drop table gov_audit", "must be owner of table gov_audit"),
    (
        "create or replace function gov_audit_append_only() returns trigger language plpgsql "
        "as $$begin return null; end$$",
        "permission denied for schema public",  # not even CREATE in the schema
    ),
    ("set session_replication_role = replica", "permission denied to set parameter"),
]


@pytest.mark.parametrize(("sql", "message"), REFUSED, ids=[f"refused{n}" for n in range(len(REFUSED))])
async def test_the_governance_role_cannot_rewrite_or_unprotect_the_audit_table(
    stack: StackEndpoints, sql: str, message: str
) -> None:
    con = await asyncpg.connect(service_dsn(stack.postgres_dsn, "governance"))
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as refused:
            await con.execute(sql)
        # The trigger raises the same SQLSTATE; the message says it was the privilege check that refused.
        assert message in str(refused.value)
        assert await con.fetchval("select has_table_privilege('gov_audit', 'INSERT')") is True
        assert await con.fetchval("select has_table_privilege('gov_audit', 'SELECT')") is True
    finally:
        await con.close()


async def test_each_role_holds_exactly_its_rules_and_owns_nothing(stack: StackEndpoints) -> None:
    con = await asyncpg.connect(stack.postgres_dsn)
    try:
        tables = await public_tables(con)
        assert {"gov_audit", "ledger_predictions", "feedback_reads", "monitor_findings"} <= set(tables)
        owners = await con.fetch(
            """select c.relname, pg_get_userbyid(c.relowner) as owner from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'S')"""
        )
        assert {r["relname"]: r["owner"] for r in owners if r["owner"] != OWNER_ROLE} == {}
        for role in SERVICE_ROLES:
            attrs = await con.fetchrow(
                "select rolsuper, rolcreaterole, rolcreatedb, rolcanlogin from pg_roles where rolname = $1", role.name
            )
            assert tuple(attrs) == (False, False, False, True), role.name
            held = {}
            wanted = {}
            for table in tables:
                for privilege in PRIVILEGES:
                    held[(table, privilege)] = await con.fetchval(
                        "select has_table_privilege($1, $2, $3)", role.name, f"public.{table}", privilege
                    )
                    wanted[(table, privilege)] = privilege in role.privileges_on(table)
            assert {k for k, v in held.items() if v} == {k for k, v in wanted.items() if v}, role.name
            temp = await con.fetchval("select has_database_privilege($1, current_database(), 'TEMPORARY')", role.name)
            assert temp is role.temporary, role.name
    finally:
        await con.close()


async def test_the_stacks_services_connect_as_their_own_roles(real_stack: Stack) -> None:
    env = real_stack.endpoints()
    for role in SERVICE_ROLES:
        assert env[f"RADGUARD_POSTGRES_{role.component.upper()}_DSN"].startswith(f"postgresql://{role.name}@")
    gateway = real_stack.component("gateway")
    assert service_role(gateway.name) is None
    con = await asyncpg.connect(real_stack.settings.postgres_dsn)
    try:
        users = {
            r["usename"]
            for r in await con.fetch(
                "select distinct usename from pg_stat_activity where datname = $1", real_stack.settings.postgres_db
            )
        }
    finally:
        await con.close()
    assert {r.name for r in SERVICE_ROLES} <= users


async def test_each_outbox_relay_may_prune_its_published_rows_as_its_service_role(stack: StackEndpoints) -> None:
    """The relays' own prune statement runs under each service's role (a refusal crashed the relay's rounds)."""
    owners = {"feedback_outbox": "feedback", "monitor_findings_outbox": "monitor", "gov_outbox": "governance"}
    assert set(owners) == set(OUTBOX_TABLES)
    for table, component in owners.items():
        con = await asyncpg.connect(service_dsn(stack.postgres_dsn, component))
        try:
            # A retention no published row can be older than: the privilege is checked, nothing is deleted.
            assert await con.execute(prune_statement(table), 10.0**9) == "DELETE 0"
            for other in set(OUTBOX_TABLES) - {table}:
                with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                    await con.execute(prune_statement(other), 10.0**9)
        finally:
            await con.close()
