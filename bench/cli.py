"""bench/cli: how long each ``radguard`` command takes as a whole process, from exec to exit.

Every command runs ``--repeat`` times in a fresh interpreter (``python -m services.cli.main ...``, the same
code path as the ``radguard`` script); printed are the median and the fastest wall time and the median CPU
time (user + system: on a shared machine wall time is mostly waiting for a core), against the issue's
targets: help ≤ 0.5 s, a command making one call to a server ≤ 1.5 s. The commands that call a server need
the local stack (``radguard stack up``); ``models list`` and ``audit verify`` run as a governance operator
token this benchmark adds to the stack's tokens file once.

Runs are warm by default: the interpreter's bytecode cache (``PYTHONPYCACHEPREFIX``, a temporary folder of
this run, so the checkout is not written to) is filled by one untimed run of each command first, as a
user's second run finds it. ``--cold`` runs with ``PYTHONDONTWRITEBYTECODE=1`` and no cache of its own: the
interpreter reads the ``.pyc`` files that exist next to the sources (the standard library's; those of the
few wheels that ship them) and compiles every other module on every run, as in an environment that sets
``PYTHONDONTWRITEBYTECODE=1`` over a venv synced without ``uv sync --compile-bytecode``.

Also checked: nothing but the command's own output on standard output (no library log line). ``--imports N``
adds, per command, the N slowest top-level imports of one more run under ``python -X importtime``.

Run: ``.venv/bin/python -m bench.cli [--repeat 5] [--root PATH] [--python PATH] [--cold] [--imports N]
[--no-stack] [--json FILE]``; ``--root`` and ``--python`` time another checkout (e.g. main's, for a
before/after comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
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
    ["findings", "--help"],
    ["simulate", "--help"],
]
CALL_COMMANDS: list[list[str]] = [
    ["routes", "show"],
    ["findings", "--limit", "5"],
    ["models", "list"],
    ["audit", "verify"],
]
_IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)")


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


def run_once(root: Path, python: str, args: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """One whole process: wall seconds, CPU seconds (user + system), exit code and standard output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [python, "-m", "services.cli.main", *args], cwd=root, capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode, done.stdout


def time_command(
    root: Path, python: str, args: list[str], env: dict[str, str], repeat: int, *, warm: bool
) -> dict[str, object]:
    """Median and fastest wall time and median CPU time of ``radguard ARGS``, its exit code, stray log lines."""
    if warm:
        run_once(root, python, args, env)  # fills the bytecode cache; not timed
    walls: list[float] = []
    cpus: list[float] = []
    status = 0
    stray: list[str] = []
    for _ in range(repeat):
        wall, cpu, status, stdout = run_once(root, python, args, env)
        walls.append(wall)
        cpus.append(cpu)
        stray = [line for line in stdout.splitlines() if "[info" in line or "[debug" in line or " INFO " in line]
    return {
        "command": " ".join(args),
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
        "exit": status,
        "stray_log_lines": len(stray),
    }


def slowest_imports(root: Path, python: str, args: list[str], env: dict[str, str], count: int) -> list[str]:
    """The ``count`` top-level imports of ``radguard ARGS`` with the largest cumulative time (-X importtime)."""
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "services.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    top = [
        (int(match[1]), match[3])
        for line in done.stderr.splitlines()
        if (match := _IMPORT_LINE.match(line)) and not match[2]
    ]
    return [f"{name} {micros / 1e6:.3f}s" for micros, name in sorted(top, reverse=True)[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to time")
    parser.add_argument("--python", default=sys.executable, help="interpreter of that checkout's environment")
    parser.add_argument("--cold", action="store_true", help="write no bytecode: what has none compiles every run")
    parser.add_argument("--imports", type=int, default=0, metavar="N", help="also list the N slowest imports")
    parser.add_argument("--no-stack", action="store_true", help="only the help commands")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="radguard-bench-pyc-") as cache:
        env = dict(os.environ, COLUMNS="120")
        if options.cold:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env.pop("PYTHONPYCACHEPREFIX", None)
        else:
            env["PYTHONPYCACHEPREFIX"] = cache
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = [(args, HELP_TARGET_S) for args in HELP_COMMANDS]
        if not options.no_stack:
            env["RADGUARD_TOKEN"] = governance_token(options.root, options.python)
            commands += [(args, CALL_TARGET_S) for args in CALL_COMMANDS]
        rows = []
        print(
            f"{options.root} ({'cold: no bytecode written' if options.cold else 'warm: bytecode cached'}), "
            f"load average {os.getloadavg()[0]:.1f} at the start",
            flush=True,
        )
        print(f"{'command':<24} {'median s':>9} {'min s':>7} {'cpu s':>7} {'target':>7}  exit  stray log lines")
        for args, target in commands:
            row = time_command(options.root, options.python, args, env, options.repeat, warm=not options.cold)
            row["target_s"] = target
            row["met"] = float(str(row["median_s"])) <= target
            imports = []
            if options.imports:
                imports = slowest_imports(options.root, options.python, args, env, options.imports)
            if imports:
                row["slowest_imports"] = imports
            rows.append(row)
            mark = "ok" if row["met"] else "MISSED"
            print(
                f"{row['command']:<24} {row['median_s']:>9} {row['min_s']:>7} {row['cpu_s']:>7} {target:>7}  "
                f"{row['exit']:>4}  {row['stray_log_lines']}  {mark}",
                flush=True,
            )
            if imports:
                print(f"{'':<24} slowest imports: {', '.join(imports)}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if options.json is not None:
        options.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
