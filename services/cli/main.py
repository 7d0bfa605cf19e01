"""Entry point of the ``radguard`` command: one typer app whose command groups load on first use.

Every command group or top-level command is one line of :data:`COMMANDS`: its name, the ``module:attribute``
that defines it (a ``typer.Typer`` sub-app or a command function) and the one-line help ``radguard --help``
lists. Nothing of a command's module is imported until that command runs (or its own ``--help`` is asked
for), so ``radguard --help`` and ``radguard <group> --help`` do not pay for torch, scipy, evidently or the
Kafka client. A command module keeps its own heavy imports inside the functions that need them when its
group holds both light and heavy commands (see docs/ARCHITECTURE.md, "The CLI").

Help is rendered by click's plain formatter (``Usage``, ``Arguments``, ``Options``, ``Commands`` sections):
typer's rich help would import ``rich.markdown``, ``markdown_it`` and ``pygments`` (a quarter of a second)
for every ``--help``. Usage errors keep typer's rich error panel (that path is not timed).

Logging goes to standard error at warning and above (``-v``: info, ``-vv``: debug), never to standard output.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer import _click as click
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec


@dataclass
class LazyCommand:
    """A command group (``typer.Typer``) or a command (function) named by ``module:attribute``."""

    target: str
    help: str
    loaded: click.Command | None = field(default=None, repr=False)

    def load(self, name: str) -> click.Command:
        """Import the module and build the click command (once)."""
        if self.loaded is None:
            module_name, _, attribute = self.target.partition(":")
            obj = getattr(importlib.import_module(module_name), attribute)
            command: click.Command
            if isinstance(obj, typer.Typer):
                command = typer.main.get_group(obj)
            else:
                single = typer.Typer(add_completion=False)
                single.command(name)(obj)
                command = typer.main.get_command(single)
            command.name = name
            self.loaded = plain_help(command)
        return self.loaded

    def placeholder(self, name: str) -> click.Command:
        """What ``radguard --help`` lists: the name and the one-line help, nothing imported."""
        return self.loaded or TyperCommand(name, help=self.help, short_help=self.help, rich_markup_mode=None)


def plain_help(command: click.Command) -> click.Command:
    """Render the help of ``command`` and of every command under it with click's formatter, not rich's."""
    if isinstance(command, TyperCommand | TyperGroup):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command


def help_for_no_args(error: NoArgsIsHelpError) -> NoReturn:
    """``radguard`` or ``radguard <group>`` alone: the help on standard output, exit 2.

    typer's rich error handler prints nothing for this error (its rich help printed itself while the
    error was built); the plain help is the error's message.
    """
    click.echo(error.format_message())
    raise typer.Exit(2)


class RootOption(TyperOption):
    """One of the root group's own options (``-v`` and ``--help``): a count or a flag, used as parsed.

    typer coerces every option value that is not already a bool through a pydantic validator, ``--help``
    when it is absent (None) included; at the root that would make ``radguard <group> --help`` import
    pydantic and build validators (about 0.2 s) for nothing.
    """

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        value = int(value or 0) if self.count else bool(value)
        if self.callback is not None:
            value = self.callback(ctx, self, value)
        return value


def root_option(param: click.Parameter) -> None:
    """Make a counting or flag option of the root a :class:`RootOption` (others stay as typer made them)."""
    if type(param) is TyperOption and (param.count or param.is_flag):
        param.__class__ = RootOption


#: name → where it is defined and its one-line help. Adding a command group is one line here.
COMMANDS: dict[str, LazyCommand] = {
    "stack": LazyCommand(
        "services.cli.stack_commands:app",
        "Run the local stack: Kafka (KRaft), PostgreSQL and Triton on loopback, and radguard's supervised processes.",
    ),
    "demo": LazyCommand(
        "services.cli.demo_commands:demo",
        "The governance story end to end on the running stack: canary, protocol change, rollback.",
    ),
    "simulate": LazyCommand(
        "services.cli.simulate_commands:simulate",
        "Drive the stack with a seeded simulated hospital: studies and radiologists' reads.",
    ),
    "predict": LazyCommand(
        "services.cli.predict_commands:predict",
        "Score one study and print the gateway's answer (simulated unless --dicom is given).",
    ),
    "read": LazyCommand(
        "services.cli.read_commands:read", "Record one radiologist's read of a prediction through the feedback service."
    ),
    "routes": LazyCommand(
        "services.cli.routes_commands:app", "Show and set model route tables (stable / canary / shadow)."
    ),
    "model": LazyCommand(
        "modeling.cli:app", "Train the chest-nodule CNN versions on simulated studies and export them for Triton."
    ),
    "models": LazyCommand(
        "services.cli.governance_commands:models_app",
        "The model registry: register, list and show versions, move them.",
    ),
    "approve": LazyCommand(
        "services.cli.governance_commands:approve", "Sign an approval of a pending transition as the token's identity."
    ),
    "rollout": LazyCommand(
        "services.cli.governance_commands:rollout_app",
        "Gated canary rollouts: start, status, pause, resume, abort, promote.",
    ),
    "rollback": LazyCommand(
        "services.cli.governance_commands:rollback", "Put a previous version back into production."
    ),
    "audit": LazyCommand(
        "services.cli.governance_commands:audit_app", "The hash-chained audit trail: verify it, read it."
    ),
    "governance": LazyCommand("services.cli.governance_commands:governance_app", "Governance administration (tokens)."),
    "monitor": LazyCommand("services.cli.monitor_commands:app", "The monitors: drift, calibration, bias, performance."),
    "findings": LazyCommand(
        "services.cli.monitor_commands:findings", "List the latest findings of the monitors, newest first."
    ),
    "ledger": LazyCommand(
        "services.cli.ledger_commands:app", "The event ledger: row counts, consumer lag, orphan reads."
    ),
    "deadletter": LazyCommand(
        "services.cli.deadletter_commands:app", "Dead letters: records Kafka refused for good, from every producer."
    ),
    "report": LazyCommand("services.cli.report_commands:app", "Reports for the governance board."),
    "reference": LazyCommand("services.cli.reference_commands:app", "Reference profiles: build, renew, list."),
}


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` without importing them, loads one when it is invoked."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for param in self.params:
            root_option(param)

    def get_help_option(self, ctx: click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None:
            root_option(option)
        return option

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's plain help (see :func:`plain_help`); the root stays rich only for usage errors' panel."""
        click.Command.format_help(self, ctx, formatter)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError as error:
            help_for_no_args(error)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError as error:
            help_for_no_args(error)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = COMMANDS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        return lazy.placeholder(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and (lazy := COMMANDS.get(args[0])) is not None:
            lazy.load(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="radguard",
    cls=LazyGroup,
    help="radguard: keeps radiology AI models honest in clinical use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


#: "own" is True in a ``radguard`` process (``main``); False when a test invokes ``app`` in its own process.
_PROCESS = {"own": False}


def configure_structlog(verbosity: int) -> None:
    """radguard's structured log lines go to standard error too, filtered like the standard library's."""
    import structlog

    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class _ThenRun:
    """A module's own loader, then ``then()`` once the module has run (an ``importlib.abc.Loader``)."""

    def __init__(self, loader: Loader, then: Callable[[], None]) -> None:
        self._loader = loader
        self._then = then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._then()


class _OnImport:
    """Finds nothing itself: hands ``name``'s spec back with its loader wrapped in :class:`_ThenRun`.

    An ``importlib.abc.MetaPathFinder``; not derived from it, as ``importlib.abc`` takes 10 ms to import.
    """

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self._name = name
        self._then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self._name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRun(spec.loader, self._then)  # type: ignore[assignment]
        return spec


def when_imported(name: str, then: Callable[[], None]) -> None:
    """Run ``then()`` now if module ``name`` is imported, else right after its first import.

    structlog is configured this way: only ``services.runtime.telemetry`` imports it, and importing it costs
    about 0.15 s (its console renderer brings rich's traceback and pygments), which a command that never
    logs through it (``models list``, ``audit show``) need not pay. Unconfigured, it would print to stdout.
    """
    if name in sys.modules:
        then()
    else:
        sys.meta_path.insert(0, _OnImport(name, then))


def configure_logging(verbosity: int) -> None:
    """Library and radguard log records go to standard error: warning and above, ``-v`` info, ``-vv`` debug."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="log info (-v) or debug (-vv) to stderr")
    ] = 0,
) -> None:
    """radguard: keeps radiology AI models honest in clinical use."""
    configure_logging(verbose)
    asking_help = any(arg in ("--help", "-h") for arg in sys.argv[1:])
    if _PROCESS["own"] and not asking_help:
        when_imported("structlog", lambda: configure_structlog(verbose))


def _expected_errors() -> tuple[type[BaseException], ...]:
    from stack.processes import StackError
    from stack.settings import StackConfigError

    return (StackError, StackConfigError)


def main() -> None:
    """Run the CLI; expected failures print one line naming the problem and exit 1."""
    _PROCESS["own"] = True
    configure_logging(0)
    try:
        app()
    except Exception as exc:
        if not isinstance(exc, _expected_errors()):
            raise
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
