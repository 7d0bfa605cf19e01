"""bench/cli: how long each ``radguard`` command takes as a whole process, from exec to exit.

Every command runs ``--repeat`` times in a fresh interpreter (``python -m services.cli.main ...``, the same
code path as the ``radguard`` script); printed are the median and the fastest wall time, against the issue's
targets: help ≤ 0.5 s, a command making one call to a server ≤ 1.5 s. The commands that call a server need
the local stack (``radguard stack up``); ``models list`` and ``audit verify`` run as a governance operator
token this benchmark adds to the stack's tokens file once.

Also checked: nothing but the command's own output on standard output (no library log line).

Run: ``.venv/bin/python -m bench.cli [--repeat 5] [--root PATH] [--python PATH] [--json FILE]``; ``--root``
and ``--python`` time another checkout (e.g. main's, for a before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HELP_TARGET_S = 0.5
CALL_TARGET_S = 1.5
HELP_COMMANDS: list[list[str]] = [
    ["--help"],
    ["routes", "--help"],
    ["models", "--help"],
    ["audit", "--help"],
    ["monitor", "--help"],
    ["simulate", "--help"],
]
CALL_COMMANDS: list[list[str]] = [
    ["routes", "show"],
    ["findings", "--limit", "5"],
    ["models", "list"],
    ["audit", "verify"],
]


def governance_token(root: Path, python: str) -> str:
    """A fresh operator token in the local stack's governance tokens file."""
    code = (
        "from services.governance_api.auth import add_token\n"
        "from stack.settings import load_stack_settings\n"
        "import time\n"
        "path = load_stack_settings().state_dir / 'governance' / 'tokens.json'\n"
        "print(add_token(path, f'bench-cli-{time.time_ns()}', 'operator'))\n"
    )
    done = subprocess.run([python, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def time_command(root: Path, python: str, args: list[str], env: dict[str, str], repeat: int) -> dict[str, object]:
    """Median and fastest wall time of ``radguard ARGS``, its exit code and any stray log line on stdout."""
    walls: list[float] = []
    status = 0
    stray: list[str] = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [python, "-m", "services.cli.main", *args], cwd=root, capture_output=True, text=True, env=env, check=False
        )
        walls.append(time.perf_counter() - started)
        status = done.returncode
        stray = [line for line in done.stdout.splitlines() if "[info" in line or "[debug" in line or " INFO " in line]
    return {
        "command": " ".join(args),
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "exit": status,
        "stray_log_lines": len(stray),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to time")
    parser.add_argument("--python", default=sys.executable, help="interpreter of that checkout's environment")
    parser.add_argument("--no-stack", action="store_true", help="only the help commands")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    env = dict(os.environ, COLUMNS="120")
    commands = [(args, HELP_TARGET_S) for args in HELP_COMMANDS]
    if not options.no_stack:
        env["RADGUARD_TOKEN"] = governance_token(options.root, options.python)
        commands += [(args, CALL_TARGET_S) for args in CALL_COMMANDS]
    rows = []
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'target':>7}  exit  stray log lines", flush=True)
    for args, target in commands:
        row = time_command(options.root, options.python, args, env, options.repeat)
        row["target_s"] = target
        row["met"] = float(str(row["median_s"])) <= target
        rows.append(row)
        mark = "ok" if row["met"] else "MISSED"
        print(
            f"{row['command']:<28} {row['median_s']:>9} {row['min_s']:>7} {target:>7}  {row['exit']:>4}  "
            f"{row['stray_log_lines']}  {mark}",
            flush=True,
        )
    if options.json is not None:
        options.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
