"""PostgreSQL roles of the local stack: one owner for the schema, one least-privileged login per service.

The schema belongs to ``radguard_owner``; migrations run as that role. Each service process logs in as
its own role, which owns nothing and holds only the table privileges its SQL needs. Grants are rules
over table-name patterns (LIKE syntax) in the ``public`` schema, applied after every migration run by
``radguard stack up``: a table a later migration adds under an existing prefix is granted on the next
``up`` without any change here; a table under a new prefix is covered by no rule, and
``tests/unit/stack/test_roles.py`` fails until a rule (or :data:`OWNER_ONLY`) names it.

The audit chain is the reason for the split: the governance role may INSERT and SELECT ``gov_audit``
but not UPDATE, DELETE or TRUNCATE it, and since it does not own the table it cannot disable the
append-only trigger either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

#: Owns the database, its ``public`` schema and every table; migrations connect as this role.
OWNER_ROLE = "radguard_owner"

#: Tables no service role gets any privilege on (the owner's own bookkeeping).
OWNER_ONLY: tuple[str, ...] = ("schema_migrations", "radguard_meta")


@dataclass(frozen=True)
class TableGrant:
    """Privileges on every table or view whose name matches ``pattern`` (SQL LIKE, ``_`` escaped)."""

    pattern: str
    privileges: tuple[str, ...]

    def matches(self, table: str) -> bool:
        """True when ``table`` matches the pattern (``%`` any run of characters; no other wildcard)."""
        if "%" not in self.pattern:
            return table == self.pattern
        head, _, tail = self.pattern.partition("%")
        return table.startswith(head) and table.endswith(tail) and len(table) >= len(head) + len(tail)


@dataclass(frozen=True)
class ServiceRole:
    """One service's login role and its grants; the first matching rule decides a table's privileges."""

    name: str
    component: str
    grants: tuple[TableGrant, ...]
    #: CREATE TEMP TABLE in the database (the ledger writer stages each batch in temporary tables).
    temporary: bool = False

    def privileges_on(self, table: str) -> tuple[str, ...]:
        """The privileges this role gets on ``table`` (empty when no rule matches)."""
        for grant in self.grants:
            if grant.matches(table):
                return grant.privileges
        return ()


_READ = ("SELECT",)
_READ_APPEND = ("SELECT", "INSERT")
#: SELECT ... FOR UPDATE (outbox claims, the audit head's lock) needs UPDATE too.
_READ_WRITE = ("SELECT", "INSERT", "UPDATE")
#: An outbox relay deletes the rows it published longer ago than its retention (the record lives on in Kafka and
#: in the table the outbox row announced); nothing else of a service's is ever deleted.
_OUTBOX = ("SELECT", "INSERT", "UPDATE", "DELETE")
#: The transactional outboxes, one per producing service; the only tables a service role may DELETE from.
OUTBOX_TABLES = ("feedback_outbox", "monitor_findings_outbox", "gov_outbox")

SERVICE_ROLES: tuple[ServiceRole, ...] = (
    ServiceRole(
        name="radguard_feedback",
        component="feedback",
        grants=(
            TableGrant("feedback_outbox", _OUTBOX),
            TableGrant("feedback_%", _READ_WRITE),
            # Checks a read against the prediction's decision (one column, read only).
            TableGrant("ledger_predictions", _READ),
        ),
    ),
    ServiceRole(
        name="radguard_ledger",
        component="ledger",
        grants=(TableGrant("ledger_%", _READ_WRITE),),
        temporary=True,
    ),
    ServiceRole(
        name="radguard_monitor",
        component="monitor",
        grants=(
            TableGrant("monitor_findings_outbox", _OUTBOX),
            TableGrant("monitor_%", _READ_WRITE),
            TableGrant("ledger_%", _READ),
        ),
    ),
    ServiceRole(
        name="radguard_governance",
        component="governance",
        grants=(
            # Append-only: entries are added and read, never changed (checked first, before gov_%).
            TableGrant("gov_audit", _READ_APPEND),
            TableGrant("gov_outbox", _OUTBOX),
            TableGrant("gov_%", _READ_WRITE),
            # Evidence for the rollout gates and the findings query.
            TableGrant("ledger_%", _READ),
            TableGrant("monitor_findings", _READ),
        ),
    ),
)


def service_role(component: str) -> ServiceRole | None:
    """The role a stack component connects as, or None when it does not use PostgreSQL."""
    return next((r for r in SERVICE_ROLES if r.component == component), None)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_roles(admin: asyncpg.Connection, database: str) -> list[str]:
    """Create the owner and service roles if missing, fix their attributes, and make the owner own ``database``.

    Runs as a superuser on any database of the cluster (roles are cluster-wide). Logins have no password:
    the local stack trusts loopback connections (see docs/ARCHITECTURE.md, "Database roles").
    """
    done: list[str] = []
    for role in (OWNER_ROLE, *(r.name for r in SERVICE_ROLES)):
        exists = await admin.fetchval("select 1 from pg_roles where rolname = $1", role)
        if not exists:
            await admin.execute(f"create role {_ident(role)} login")
            done.append(f"created role {role}")
        # Whatever an earlier run or a person changed: no superuser, no role or database creation.
        await admin.execute(
            f"alter role {_ident(role)} login nosuperuser nocreatedb nocreaterole noreplication nobypassrls"
        )
    owner = await admin.fetchval("select pg_get_userbyid(datdba) from pg_database where datname = $1", database)
    if owner != OWNER_ROLE:
        await admin.execute(f"alter database {_ident(database)} owner to {_ident(OWNER_ROLE)}")
        done.append(f"database {database} owned by {OWNER_ROLE}")
    return done


async def take_ownership(admin: asyncpg.Connection) -> list[str]:
    """Hand the ``public`` schema's tables, views, sequences and functions to the owner role.

    A database migrated before the roles existed belongs to the bootstrap superuser; the owner role
    must own everything so that later migrations (run as the owner) can alter it. Runs as a superuser
    connected to the radguard database.
    """
    rows = await admin.fetch(
        """
        select c.relname as name, c.relkind as kind
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S')
          and pg_get_userbyid(c.relowner) <> $1
          -- sequences owned by a column (identity, serial) follow their table
          and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i')
                          and d.classid = 'pg_class'::regclass and c.relkind = 'S')
        """,
        OWNER_ROLE,
    )
    done = []
    for row in rows:
        kind = {"v": "view", "m": "materialized view", "S": "sequence"}.get(row["kind"], "table")
        await admin.execute(f"alter {kind} public.{_ident(row['name'])} owner to {_ident(OWNER_ROLE)}")
        done.append(f"{row['name']} owned by {OWNER_ROLE}")
    functions = await admin.fetch(
        """
        select p.oid::regprocedure::text as signature
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and pg_get_userbyid(p.proowner) <> $1
        """,
        OWNER_ROLE,
    )
    for row in functions:
        await admin.execute(f"alter function {row['signature']} owner to {_ident(OWNER_ROLE)}")
        done.append(f"{row['signature']} owned by {OWNER_ROLE}")
    return done


async def public_tables(con: asyncpg.Connection) -> list[str]:
    """Names of the tables and views in the ``public`` schema."""
    rows = await con.fetch(
        """
        select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm') order by c.relname
        """
    )
    return [r["relname"] for r in rows]


async def _serial_sequences(con: asyncpg.Connection, table: str) -> list[str]:
    rows = await con.fetch(
        """
        select s.relname from pg_depend d
        join pg_class s on s.oid = d.objid and s.relkind = 'S'
        join pg_class t on t.oid = d.refobjid
        join pg_namespace n on n.oid = t.relnamespace
        where d.deptype = 'a' and n.nspname = 'public' and t.relname = $1
        """,
        table,
    )
    return [r["relname"] for r in rows]


async def apply_grants(
    admin: asyncpg.Connection, database: str, roles: Sequence[ServiceRole] = SERVICE_ROLES
) -> list[str]:
    """Make each service role's privileges exactly what its rules say, in one transaction.

    Revoke-then-grant inside the transaction: a running service never sees its privileges missing, and a
    rule that was narrowed takes effect. Runs as a superuser (or the owner) connected to ``database``.
    Returns one line per role with the number of tables it may touch.
    """
    done = []
    async with admin.transaction():
        tables = await public_tables(admin)
        # Only the ledger writer needs temporary tables; PostgreSQL grants them to everyone by default.
        await admin.execute(f"revoke temporary on database {_ident(database)} from public")
        await admin.execute(f"grant connect on database {_ident(database)} to {_ident(OWNER_ROLE)}")
        for role in roles:
            ident = _ident(role.name)
            await admin.execute(f"revoke all on all tables in schema public from {ident}")
            await admin.execute(f"revoke all on all sequences in schema public from {ident}")
            await admin.execute(f"grant connect on database {_ident(database)} to {ident}")
            temp = "grant" if role.temporary else "revoke"
            await admin.execute(
                f"{temp} temporary on database {_ident(database)} {'to' if role.temporary else 'from'} {ident}"
            )
            await admin.execute(f"grant usage on schema public to {ident}")
            granted = 0
            for table in tables:
                privileges = role.privileges_on(table)
                if privileges:
                    await admin.execute(f"grant {', '.join(privileges)} on public.{_ident(table)} to {ident}")
                    granted += 1
                if "INSERT" in privileges:
                    # A serial column's default calls nextval(); identity columns need no grant.
                    for seq in await _serial_sequences(admin, table):
                        await admin.execute(f"grant usage on sequence public.{_ident(seq)} to {ident}")
            done.append(f"{role.name}: privileges on {granted} tables")
    return done
