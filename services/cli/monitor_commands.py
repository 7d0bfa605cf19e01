"""``radguard monitor run`` (the monitors as a process) and ``radguard findings`` (what they concluded)."""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from stack.processes import StackError

if TYPE_CHECKING:
    from services.monitors.runner.ports import StoredFinding
    from services.monitors.runner.settings import MonitorRunnerSettings

# The monitors' packages import scipy, evidently and the Kafka client: they are imported inside `monitor run`.
# `findings` reads the findings table itself (the query below) and needs none of them.

app = typer.Typer(help="The monitors: drift, calibration, bias, performance.", no_args_is_help=True)
_out = Console()
_DSN, _BOOTSTRAP = "RADGUARD_POSTGRES_DSN", "RADGUARD_KAFKA_BOOTSTRAP_SERVERS"
_SEVERITY_STYLE = {"info": "green", "warning": "yellow", "breach": "bold red"}


class SeverityChoice(enum.StrEnum):
    """The ``--severity`` values (those of ``services.monitors.core.findings.Severity``)."""

    INFO = "info"
    WARNING = "warning"
    BREACH = "breach"


def register(root: typer.Typer) -> None:
    """Add ``monitor`` (sub-app) and ``findings`` (command) to the root CLI."""
    root.add_typer(app, name="monitor")
    root.command("findings")(findings)


async def run_monitor_process(settings: MonitorRunnerSettings, *, once: bool) -> int:
    """The monitor process (imported here: it brings scipy, evidently and the Kafka client)."""
    from services.monitors.runner.app import run_monitor_process as run_process

    return await run_process(settings, once=once)


@app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="run one pass over every target and exit")] = False,
    dsn: Annotated[str | None, typer.Option("--dsn", help="ledger database (default: the local stack's)")] = None,
    bootstrap: Annotated[
        str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (default: the local stack's)")
    ] = None,
) -> None:
    """Run the monitors over the ledger (settings from RADGUARD_MONITOR_* variables) once or until stopped."""
    import asyncio

    from services.monitors.runner.settings import MonitorRunnerSettings
    from services.runtime.config import ConfigError, load_settings
    from services.runtime.errors import Unavailable
    from stack.settings import load_stack_settings

    env = dict(os.environ)
    if dsn:
        env[_DSN] = dsn
    if bootstrap:
        env[_BOOTSTRAP] = bootstrap
    if _DSN not in env or _BOOTSTRAP not in env:
        stack = load_stack_settings()
        env.setdefault(_DSN, stack.postgres_dsn)
        env.setdefault(_BOOTSTRAP, stack.kafka_bootstrap)
    try:
        settings = load_settings(MonitorRunnerSettings, env)
        issued = asyncio.run(run_monitor_process(settings, once=once))
    except ConfigError as exc:
        raise StackError(str(exc)) from None
    except Unavailable as exc:
        raise StackError(f"{exc.message} (is `radguard stack up` running?)") from None
    if once:
        _out.print(f"{issued} findings issued")


@dataclass(frozen=True)
class FindingRow:
    """A row of the findings table as ``radguard findings`` lists it (``StoredFinding`` with plain-text enums)."""

    finding_id: str
    kind: str
    model_name: str
    model_version: str
    arm: str
    severity: str
    summary: str
    window_count: int
    window_labelled: int
    report_uri: str
    created_at: datetime


async def _recent(dsn: str, model: str | None, severity: SeverityChoice | None, limit: int) -> list[FindingRow]:
    from services.monitors.runner.adapters.findings_sql import RECENT_FINDINGS
    from services.runtime.errors import Unavailable
    from services.runtime.postgres import DATABASE_DOWN, create_pool

    pool = await create_pool(dsn, min_size=1, max_size=1, instrument=False)
    try:
        rows = await pool.fetch(RECENT_FINDINGS, model, severity.value if severity else None, limit)
    except DATABASE_DOWN as error:
        raise Unavailable("postgres", f"{type(error).__name__}: {error}") from error
    finally:
        await pool.close()
    return [FindingRow(**dict(row)) for row in rows]


def findings_table(rows: Sequence[FindingRow | StoredFinding]) -> Table:
    """The findings as a rich table, newest first."""
    table = Table(title=f"findings (latest {len(rows)})")
    for column in ("created", "kind", "model", "version", "arm", "severity", "window", "summary", "report"):
        table.add_column(column, justify="right" if column == "window" else "left")
    for row in rows:
        severity = str(row.severity)  # a Severity (a StrEnum) or its text
        style = _SEVERITY_STYLE[severity]
        table.add_row(
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(row.kind),
            row.model_name,
            row.model_version,
            row.arm,
            f"[{style}]{severity}[/]",
            f"{row.window_labelled}/{row.window_count}",
            row.summary,
            row.report_uri or "-",
        )
    return table


def findings(
    model: Annotated[str | None, typer.Option("--model", help="only this model")] = None,
    severity: Annotated[SeverityChoice | None, typer.Option("--severity", help="only this severity")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="most findings to list")] = 20,
    dsn: Annotated[str | None, typer.Option("--dsn", help="database (default: the local stack's)")] = None,
) -> None:
    """List the latest findings of the monitors, newest first."""
    import asyncio

    import asyncpg

    from services.runtime.errors import Unavailable
    from stack.settings import load_stack_settings

    if dsn is None:
        dsn = load_stack_settings().postgres_dsn
    try:
        rows = asyncio.run(_recent(dsn, model, severity, limit))
    except Unavailable as exc:
        raise StackError(f"{exc.message} (is `radguard stack up` running?)") from None
    except asyncpg.exceptions.UndefinedTableError:
        raise StackError("the findings table is missing: apply the migrations with `radguard stack up`") from None
    _out.print(findings_table(rows))
