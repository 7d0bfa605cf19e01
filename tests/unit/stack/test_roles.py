"""The services' PostgreSQL roles: every table a migration creates is covered, and the audit table stays append-only.

The grant rules are prefix patterns, applied after every migration run by ``radguard stack up``; a table
under a new prefix is granted to nobody, and this test names it, so a new area adds its rule in the
same change as its migration.
"""

from __future__ import annotations

import re

import pytest

from stack.migrations import MIGRATION_DIRS
from stack.roles import OUTBOX_TABLES, OWNER_ONLY, OWNER_ROLE, SERVICE_ROLES, TableGrant, service_role

_CREATE = re.compile(r"create\s+(?:table|view|materialized\s+view)\s+(?:if\s+not\s+exists\s+)?([a-z_][a-z0-9_]*)", re.I)


def migrated_relations() -> set[str]:
    found: set[str] = set()
    for folder in MIGRATION_DIRS:
        for path in folder.glob("*.sql"):
            sql = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
            found.update(m.lower() for m in _CREATE.findall(sql))
    return found


def test_the_migrations_create_the_tables_this_test_knows() -> None:
    tables = migrated_relations()
    assert {"gov_audit", "gov_audit_head", "ledger_predictions", "feedback_outbox", "monitor_findings"} <= tables
    assert "radguard_meta" in tables


def test_every_migrated_table_is_granted_to_some_service_or_kept_for_the_owner() -> None:
    uncovered = {
        table
        for table in migrated_relations()
        if table not in OWNER_ONLY and not any(role.privileges_on(table) for role in SERVICE_ROLES)
    }
    assert uncovered == set(), f"add a TableGrant in stack/roles.py (or OWNER_ONLY) for {sorted(uncovered)}"


def test_governance_may_only_append_to_and_read_the_audit_table() -> None:
    governance = service_role("governance")
    assert governance is not None
    assert governance.privileges_on("gov_audit") == ("SELECT", "INSERT")
    # The head moves with each append; the other governance tables are its working state.
    assert governance.privileges_on("gov_audit_head") == ("SELECT", "INSERT", "UPDATE")
    assert governance.privileges_on("ledger_predictions") == ("SELECT",)
    assert governance.privileges_on("feedback_reads") == ()


@pytest.mark.parametrize("table", sorted(migrated_relations()))
def test_no_service_may_delete_or_truncate_anything_but_its_published_outbox_rows(table: str) -> None:
    for role in SERVICE_ROLES:
        granted = set(role.privileges_on(table))
        allowed = {"SELECT", "INSERT", "UPDATE"} | ({"DELETE"} if table in OUTBOX_TABLES else set())
        assert granted <= allowed, (role.name, table, granted)


def test_each_outbox_is_pruned_by_its_own_service_only() -> None:
    assert set(OUTBOX_TABLES) == {t for t in migrated_relations() if t.endswith("_outbox")}
    pruners = {t: [r.component for r in SERVICE_ROLES if "DELETE" in r.privileges_on(t)] for t in OUTBOX_TABLES}
    assert pruners == {
        "feedback_outbox": ["feedback"],
        "monitor_findings_outbox": ["monitor"],
        "gov_outbox": ["governance"],
    }


def test_each_service_has_its_own_role_and_the_gateway_none() -> None:
    assert service_role("gateway") is None
    names = {c: service_role(c) for c in ("feedback", "ledger", "monitor", "governance")}
    assert {c: r.name if r else None for c, r in names.items()} == {
        "feedback": "radguard_feedback",
        "ledger": "radguard_ledger",
        "monitor": "radguard_monitor",
        "governance": "radguard_governance",
    }
    assert OWNER_ROLE not in {r.name for r in SERVICE_ROLES}
    assert [r.component for r in SERVICE_ROLES if r.temporary] == ["ledger"]


def test_feedback_reads_predictions_but_writes_only_its_own_tables() -> None:
    feedback = service_role("feedback")
    assert feedback is not None
    assert feedback.privileges_on("feedback_reads") == ("SELECT", "INSERT", "UPDATE")
    assert feedback.privileges_on("ledger_predictions") == ("SELECT",)
    assert feedback.privileges_on("ledger_reads") == ()
    assert feedback.privileges_on("gov_audit") == ()


@pytest.mark.parametrize(
    ("pattern", "table", "expected"),
    [
        ("gov_%", "gov_audit", True),
        ("gov_%", "gov_", True),
        ("gov_%", "govx", False),
        ("gov_%", "ledger_gov_x", False),
        ("gov_audit", "gov_audit_head", False),
        ("gov_audit", "gov_audit", True),
        ("%_outbox", "feedback_outbox", True),
        ("%_outbox", "feedback_outboxes", False),
    ],
)
def test_patterns_match_like_sql_like_with_only_percent(pattern: str, table: str, expected: bool) -> None:
    assert TableGrant(pattern, ("SELECT",)).matches(table) is expected
