"""Which migration folders make up radguard's database schema, applied in version order."""

from __future__ import annotations

from pathlib import Path

from stack.settings import REPO_ROOT

#: Folders of versioned SQL files (``NNNN_name.sql``); later areas add their own folder here.
MIGRATION_DIRS: tuple[Path, ...] = (
    REPO_ROOT / "services" / "runtime" / "migrations",
    # Governance: registry, transitions, approvals, rollouts, routes, audit chain: versions 0100-0199.
    REPO_ROOT / "governance" / "migrations",
    # The event ledger (predictions, reads, consumer offsets): versions 0200-0299.
    REPO_ROOT / "services" / "monitors" / "migrations",
    # Feedback: reads by idempotency key and their outbox: versions 0300-0399.
    REPO_ROOT / "services" / "feedback" / "migrations",
)


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration; returns the names applied now."""
    from services.runtime.migrate import run_migrations

    applied = await run_migrations(dsn, list(MIGRATION_DIRS))
    return [item.path.name for item in applied]
