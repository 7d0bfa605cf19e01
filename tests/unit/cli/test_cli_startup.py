"""The CLI answers at once: help and each call import only what they use, and bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services.cli.main import COMMANDS
from stack.settings import REPO_ROOT

#: The statistics, ML and simulation stacks (seconds to import): no command that does not compute needs them.
STATISTICS = ("torch", "scipy", "numpy", "evidently", "sklearn", "pandas", "sim", "modeling.train")
#: typer's rich help (rich.markdown, markdown_it): help is rendered by click's formatter instead.
RICH_HELP = ("typer.rich_utils", "rich.markdown", "markdown_it")
#: A help page imports none of these: a call's clients, settings, stubs, crypto and logging are the call's.
NOT_FOR_HELP = (
    *STATISTICS,
    *RICH_HELP,
    "kafka",
    "asyncpg",
    "grpc",
    "google.protobuf",
    "pydantic",
    "pydantic_settings",
    "cryptography",
    "structlog",
    "opentelemetry",
    "pygments",
)


def imported_after(args: list[str], *, code: str | None = None) -> tuple[int, set[str]]:
    """Run the CLI with ``args`` in a fresh interpreter (or ``code`` instead); its exit and ``sys.modules``.

    What is asserted is which modules were imported, never how long anything took (the machine is shared).
    """
    code = code or (
        "from services.cli.main import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit as exc:\n"
        "    status = exc.code or 0\n"
        "except Exception:\n"
        "    status = 1\n"
    )
    code = (
        "import json, sys\nstatus = 0\n"
        + code
        + "\nprint(json.dumps([status, sorted(sys.modules)]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    status, modules = json.loads(done.stderr.strip().splitlines()[-1])
    return int(status), set(modules)


def present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name in modules)


def test_top_level_help_imports_nothing_a_call_needs() -> None:
    status, modules = imported_after(["--help"])
    assert status == 0
    assert present(modules, NOT_FOR_HELP) == []


@pytest.mark.parametrize("group", list(COMMANDS))
def test_a_groups_help_imports_nothing_a_call_needs(group: str) -> None:
    status, modules = imported_after([group, "--help"])
    assert status == 0
    assert present(modules, NOT_FOR_HELP) == []


#: Besides the statistics and rich help, what each call command must not import: a governance call needs
#: grpc and the stubs only, ``findings`` asyncpg only.
CALL_PATHS = {
    "models list": (["models", "list", "--target", "127.0.0.1:1", "--token", "t"], ("kafka", "asyncpg", "structlog")),
    "audit verify (stored chain)": (
        ["audit", "verify", "--database-only", "--target", "127.0.0.1:1", "--token", "t"],
        ("kafka", "asyncpg", "structlog"),
    ),
    "findings": (["findings", "--dsn", "postgresql://nobody@127.0.0.1:1/none"], ("kafka",)),
}


@pytest.mark.parametrize("name", list(CALL_PATHS))
def test_a_call_command_imports_only_what_its_call_needs(name: str) -> None:
    args, also_not = CALL_PATHS[name]
    status, modules = imported_after(args)  # nothing listens on port 1: the call fails, the imports are done
    assert status == 1
    assert present(modules, (*STATISTICS, *RICH_HELP, *also_not)) == [], name


def test_routes_show_imports_only_the_kafka_client_and_the_routes_reader() -> None:
    code = "import services.cli.routes_commands, services.gateway.adapters.routes\n"
    _, modules = imported_after([], code=code)
    assert present(modules, (*STATISTICS, *RICH_HELP, "asyncpg")) == []


def test_audit_verify_with_witnesses_imports_no_statistics() -> None:
    code = (
        "import services.cli.governance_commands\n"
        "import services.governance_api.adapters.audit_topic, services.governance_api.adapters.checkpoint_file\n"
        "import governance.domain.witness\n"
    )
    _, modules = imported_after([], code=code)
    assert present(modules, (*STATISTICS, *RICH_HELP, "asyncpg")) == []


def test_structlog_is_configured_when_first_imported_and_logs_to_stderr() -> None:
    """Own process, no -v: structlog (imported later, by a service module) is filtered at warning, on stderr."""
    code = (
        "from services.cli import main\n"
        "main._PROCESS['own'] = True\n"
        "main._root(0)\n"
        "assert 'structlog' not in sys.modules\n"
        "from services.runtime.telemetry import get_logger\n"
        "log = get_logger('probe')\n"
        "log.info('quiet.info')\n"
        "log.warning('loud.warning')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "loud.warning" in done.stderr and "quiet.info" not in done.stderr


def test_when_imported_runs_once_now_or_after_the_import() -> None:
    code = (
        "from services.cli.main import when_imported\n"
        "calls = []\n"
        "when_imported('sys', lambda: calls.append('sys'))\n"
        "when_imported('colorsys', lambda: calls.append('colorsys'))\n"
        "assert calls == ['sys'], calls\n"
        "import colorsys\n"
        "import colorsys\n"
        "assert calls == ['sys', 'colorsys'], calls\n"
        "assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_constants_copied_for_help_pages_equal_their_sources() -> None:
    from services.cli import governance_commands
    from services.governance_api.auth import ROLES

    assert governance_commands.ROLES == ROLES


def test_help_is_plain_text_listing_every_command() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: ")
    assert "╭" not in done.stdout  # no rich panels
    commands = done.stdout.split("\nCommands:\n")[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line[2] != " "}
    assert set(COMMANDS) <= listed


@pytest.mark.parametrize(("args", "listed"), [([], "routes"), (["routes"], "show"), (["governance", "tokens"], "add")])
def test_a_group_without_a_command_prints_its_help_and_exits_2(args: list[str], listed: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout.startswith("Usage: ")
    assert f"\n  {listed} " in done.stdout
    assert done.stderr == ""


def test_a_usage_error_names_the_missing_option_on_stderr() -> None:
    done = run_cli("routes", "set", "chest_nodule")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Missing option '--stable'" in done.stderr


@pytest.mark.parametrize(("flags", "level"), [([], "WARNING"), (["-v"], "INFO"), (["-vv"], "DEBUG")])
def test_verbose_is_counted(flags: list[str], level: str) -> None:
    code = (
        "import logging\n"
        "from services.cli.main import app\n"
        "try:\n"
        f"    app({[*flags, 'routes', '--help']!r})\n"
        "except SystemExit as exc:\n"
        "    status = exc.code or 0\n"
        f"assert logging.getLogger().level == logging.{level}, logging.getLogger().level\n"
    )
    status, _ = imported_after([], code=code)
    assert status == 0


def test_each_listed_help_line_is_the_commands_own() -> None:
    """``radguard --help`` shows COMMANDS' one-liners: each must be the loaded command's first help line."""
    for name, lazy in COMMANDS.items():
        loaded = lazy.load(name)
        first = (loaded.help or "").strip().splitlines()[0]
        assert first == lazy.help, f"{name}: listed {lazy.help!r}, the command says {first!r}"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_an_unknown_scenario_is_one_line_listing_the_shipped_ones() -> None:
    done = run_cli("simulate", "--scenario", "no_such_place", "--studies", "1")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "unknown scenario 'no_such_place'" in lines[0]
    assert "baseline" in lines[0] and "cr90_protocol_change" in lines[0]
    assert done.stdout == ""


def test_no_stack_is_one_line_saying_how_to_start_it(tmp_path: object) -> None:
    env = {"RADGUARD_GATEWAY_URL": "127.0.0.1:9", "RADGUARD_STACK_STATE_DIR": str(tmp_path)}
    done = run_cli("simulate", "--studies", "1", env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no gateway answering at 127.0.0.1:9" in lines[0] and "radguard stack up" in lines[0]


def test_simulate_needs_a_bound() -> None:
    done = run_cli("simulate")
    assert done.returncode == 1
    assert "--studies" in done.stderr and "--duration" in done.stderr
