"""Entry point of the ``radguard`` command: one typer app with a sub-app per area."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from modeling.cli import app as model_app
from services.cli.deadletter_commands import app as deadletter_app
from services.cli.governance_commands import register as register_governance_commands
from services.cli.ledger_commands import app as ledger_app
from services.cli.monitor_commands import register as register_monitor_commands
from services.cli.predict_commands import predict
from services.cli.report_commands import app as report_app
from services.cli.routes_commands import app as routes_app
from services.cli.stack_commands import app as stack_app
from stack.processes import StackError
from stack.settings import StackConfigError

app = typer.Typer(
    name="radguard",
    help="radguard: keeps radiology AI models honest in clinical use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack_app, name="stack")
app.add_typer(routes_app, name="routes")
app.add_typer(model_app, name="model")
app.add_typer(ledger_app, name="ledger")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(report_app, name="report")
app.command("predict")(predict)
register_monitor_commands(app)
register_governance_commands(app)

_err = Console(stderr=True)


def main() -> None:
    """Run the CLI; expected failures print one line naming the problem and exit 1."""
    try:
        app()
    except (StackError, StackConfigError) as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
