"""``radguard stack``: bring the local real stack (Kafka, PostgreSQL, Triton) up and down."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from stack.manager import Stack

# The stack's manager imports its components (PostgreSQL, Kafka and service clients): only when a command runs.

app = typer.Typer(
    help="Run the local stack: Kafka (KRaft), PostgreSQL and Triton on loopback, and radguard's supervised processes.",
    no_args_is_help=True,
)
_out = Console()


def _stack() -> Stack:
    from stack.manager import Stack
    from stack.settings import load_stack_settings

    return Stack(load_stack_settings())


def _progress(component: str, message: str) -> None:
    _out.print(f"[cyan]{component:>8}[/] {message}", highlight=False)


@app.command()
def up() -> None:
    """Start what is not running and wait until every component is ready (idempotent)."""
    stack = _stack()
    t0 = time.monotonic()
    with _out.status("bringing the stack up…", spinner="dots"):
        result = stack.up(progress=_progress)
    if result.started:
        _out.print(f"started: {', '.join(result.started)}")
    if result.already_running:
        _out.print(f"already running: {', '.join(result.already_running)}")
    _out.print(f"stack ready in {time.monotonic() - t0:.1f}s; endpoints in {stack.settings.state_dir / 'stack.env'}")
    _out.print(
        "gateway and feedback authenticate callers (bearer tokens with roles, kept in "
        f'{stack.settings.state_dir / "auth"}): eval "$(radguard stack env)" exports RADGUARD_GATEWAY_TOKEN, '
        "RADGUARD_FEEDBACK_TOKEN and RADGUARD_OPERATOR_TOKEN",
        highlight=False,
    )
    _out.print(f"the board's dashboard: {stack.settings.dashboard_url}", highlight=False)
    _print_status(stack)


@app.command()
def down() -> None:
    """Stop the components this stack started (by recorded pid)."""
    stack = _stack()
    stopped = stack.down(progress=_progress)
    _out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


@app.command()
def status() -> None:
    """Each component's state, pid, ports, version and restarts by the supervisor; exit 1 unless all are ready."""
    stack = _stack()
    states = _print_status(stack)
    if any(s != "ready" for s in states):
        raise typer.Exit(1)


@app.command()
def logs(
    component: Annotated[str, typer.Argument(help="a component (see `stack status`) or supervisor")],
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="how many lines")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
) -> None:
    """Print the end of a component's log."""
    stack = _stack()
    for line in stack.logs(component, lines):
        typer.echo(line)
    if follow:
        path = stack.layout.log(component)
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    chunk = fh.readline()
                    if chunk:
                        typer.echo(chunk.decode(errors="replace").rstrip("\n"))
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return


@app.command()
def env() -> None:
    """Print the endpoints as shell exports: eval "$(radguard stack env)".

    RADGUARD_POSTGRES_DSN is the administrator's (migrations, tests); RADGUARD_POSTGRES_<SERVICE>_DSN each
    service's own least-privileged role.
    """
    for key, value in _stack().endpoints().items():
        typer.echo(f"export {key}={value}")


def _print_status(stack: Stack) -> list[str]:
    table = Table(title=f"radguard stack ({stack.settings.state_dir})")
    for col in ("component", "state", "pid", "ports", "version", "restarts", "last exit", "restarted", "detail"):
        table.add_column(col)
    colours = {"ready": "green", "starting": "yellow", "dead": "red", "stopped": "dim"}
    rows = stack.status()
    for s in rows:
        ports = ", ".join(str(p) for p in s.ports.values())
        table.add_row(
            s.name,
            f"[{colours.get(s.state, 'white')}]{s.state}[/]",
            str(s.pid or "-"),
            ports,
            s.version,
            str(s.restarts) if s.supervised else "",
            s.last_exit,
            s.last_restart,
            s.detail,
        )
    Console(width=200).print(table)
    return [s.state for s in rows]
