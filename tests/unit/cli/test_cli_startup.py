"""The CLI answers at once: help lists every command without importing them, and bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services.cli.main import COMMANDS
from stack.settings import REPO_ROOT

HEAVY = ("torch", "scipy", "evidently", "kafka", "pandas", "sim", "modeling")


def imported_after(args: list[str]) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter with ``args``; the exit code and which heavy modules were imported."""
    code = (
        "import json, sys\n"
        "from services.cli.main import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit as exc:\n"
        "    status = exc.code or 0\n"
        f"print(json.dumps([status, sorted(m for m in {HEAVY!r} if m in sys.modules)]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    status, heavy = json.loads(done.stderr.strip().splitlines()[-1])
    return int(status), list(heavy)


def test_top_level_help_imports_no_heavy_library() -> None:
    assert imported_after(["--help"]) == (0, [])


@pytest.mark.parametrize("group", ["routes", "models", "audit", "rollout", "findings", "simulate", "read", "demo"])
def test_a_groups_help_imports_no_heavy_library(group: str) -> None:
    status, heavy = imported_after([group, "--help"])
    assert status == 0
    assert not {"torch", "scipy", "evidently", "pandas"} & set(heavy), heavy


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
