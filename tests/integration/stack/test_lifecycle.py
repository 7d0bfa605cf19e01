"""`radguard stack up|status|down` on an isolated stack: its own state folder and free ports; the supervisor.

These run the CLI as a user would (a subprocess), so they cover the exit codes and messages too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.processes import port_in_use, process_cmdline
from stack.settings import StackSettings

RADGUARD = str(Path(sys.executable).parent / "radguard")
SERVERS = ("postgres", "kafka", "triton")
SUPERVISED = ("gateway", "feedback", "ledger", "monitor", "governance", "dashboard")
COMPONENTS = SERVERS + SUPERVISED
#: Every port setting of the stack (derived, so a port added later cannot fall back to a default the suite's own
#: stack holds).
PORT_VARS = tuple(f"RADGUARD_STACK_{name.upper()}" for name in StackSettings.model_fields if name.endswith("_port"))


def free_ports(n: int) -> list[int]:
    """``n`` free ports below the kernel's ephemeral range, none of them a default of the suite's own stack.

    Not port 0: the kernel picks those from the ephemeral range, where the local end of any outgoing
    connection may take one while this stack's component is down for its restart.
    """
    taken = {f.default for name, f in StackSettings.model_fields.items() if name.endswith("_port")}
    candidates = list(range(20000, 32000))
    random.shuffle(candidates)
    ports = [p for p in candidates if p not in taken and not port_in_use("127.0.0.1", p)][:n]
    assert len(ports) == n
    return ports


def run_cli(env: dict[str, str], *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RADGUARD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def pids(state: Path) -> dict[str, int]:
    out = {}
    for comp in COMPONENTS:
        path = state / "pids" / f"{comp}.json"
        if path.exists():
            out[comp] = json.loads(path.read_text())["pid"]
    return out


def wait_status_line(env: dict[str, str], comp: str, state: str, timeout_s: float = 90) -> str:
    """``comp``'s line of ``stack status`` once it shows ``state``."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = run_cli(env, "stack", "status").stdout
        line = next(ln for ln in out.splitlines() if f" {comp} " in ln)
        if f" {state} " in line:
            return line
        assert time.monotonic() < deadline, out
        time.sleep(1)


@pytest.fixture(scope="module")
def iso_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("iso-stack") / "state"
    env = dict(os.environ)
    env.update(zip(PORT_VARS, map(str, free_ports(len(PORT_VARS))), strict=True))
    env["RADGUARD_STACK_STATE_DIR"] = str(state)
    env["RADGUARD_STACK_KAFKA_HEAP"] = "256m"
    env["COLUMNS"] = "200"
    yield env
    run_cli(env, "stack", "down")


@pytest.mark.timeout(1200)
def test_up_twice_status_kill_restart_down(iso_env: dict[str, str]) -> None:
    state = Path(iso_env["RADGUARD_STACK_STATE_DIR"])
    first = run_cli(iso_env, "stack", "up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "started: postgres, kafka, triton, gateway, feedback, ledger, monitor, governance, dashboard" in first.stdout
    started = pids(state)
    assert set(started) == set(COMPONENTS)

    second = run_cli(iso_env, "stack", "up")
    assert second.returncode == 0, second.stderr
    assert "started:" not in second.stdout
    assert "already running: postgres, kafka, triton, gateway, feedback, ledger, monitor, governance" in second.stdout
    assert pids(state) == started

    status = run_cli(iso_env, "stack", "status")
    assert status.returncode == 0, status.stdout
    for comp, port_var in (
        ("postgres", "RADGUARD_STACK_POSTGRES_PORT"),
        ("kafka", "RADGUARD_STACK_KAFKA_PORT"),
        ("triton", "RADGUARD_STACK_TRITON_GRPC_PORT"),
        ("gateway", "RADGUARD_STACK_GATEWAY_PORT"),
        ("feedback", "RADGUARD_STACK_FEEDBACK_PORT"),
        ("ledger", "RADGUARD_STACK_LEDGER_PORT"),
        ("monitor", "RADGUARD_STACK_MONITOR_PORT"),
        ("governance", "RADGUARD_STACK_GOVERNANCE_PORT"),
        ("dashboard", "RADGUARD_STACK_DASHBOARD_PORT"),
    ):
        line = next(ln for ln in status.stdout.splitlines() if f" {comp} " in ln)
        assert "ready" in line and iso_env[port_var] in line
    assert "4.1.1" in status.stdout  # Kafka, from the resolved jars
    assert "2.51.0" in status.stdout  # Triton, as the server reports it
    assert "15." in status.stdout  # PostgreSQL
    assert "radguard 0.1.0" in status.stdout  # the gateway

    # SIGKILL each server in turn: status reports it dead, up restarts only that one.
    for comp in SERVERS:
        before = pids(state)
        os.kill(before[comp], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_cmdline(before[comp]) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        dead = run_cli(iso_env, "stack", "status")
        assert dead.returncode == 1
        line = next(ln for ln in dead.stdout.splitlines() if f" {comp} " in ln)
        assert "dead" in line, dead.stdout
        again = run_cli(iso_env, "stack", "up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"started: {comp}\n" in again.stdout
        after = pids(state)
        assert after[comp] != before[comp]
        assert {k: v for k, v in after.items() if k != comp} == {k: v for k, v in before.items() if k != comp}

    # radguard's own processes come back without anyone running `up`: the supervisor restarts them (killed one
    # after another, each once the previous one has a new process; their start-ups overlap).
    before = pids(state)
    for comp in SUPERVISED:
        os.kill(before[comp], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pids(state).get(comp) == before[comp]:
            assert time.monotonic() < deadline, f"{comp} not restarted"
            time.sleep(0.1)
    after = pids(state)
    assert {k: v for k, v in after.items() if k in SERVERS} == {k: v for k, v in before.items() if k in SERVERS}
    assert all(after[comp] != before[comp] for comp in SUPERVISED)
    for comp in SUPERVISED:
        line = wait_status_line(iso_env, comp, "ready", timeout_s=240)
        assert " 1 " in line and "SIGKILL" in line, line  # one restart, after a SIGKILL

    # The supervisor itself is brought back by `up`, which leaves the running processes alone.
    supervisor = json.loads((state / "pids" / "supervisor.json").read_text())["pid"]
    before = pids(state)
    os.kill(supervisor, signal.SIGKILL)
    assert wait_status_line(iso_env, "supervisor", "dead")
    again = run_cli(iso_env, "stack", "up")
    assert again.returncode == 0 and "started:" not in again.stdout, again.stdout + again.stderr
    assert pids(state) == before
    assert json.loads((state / "pids" / "supervisor.json").read_text())["pid"] != supervisor

    final = pids(state)
    supervisor = json.loads((state / "pids" / "supervisor.json").read_text())["pid"]
    down = run_cli(iso_env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped: supervisor, dashboard, governance" in down.stdout  # the supervisor first: it restarts nothing
    assert pids(state) == {} and not (state / "pids" / "supervisor.json").exists()
    for pid in [*final.values(), supervisor]:
        assert process_cmdline(pid) is None
    for var in PORT_VARS:
        assert not port_in_use("127.0.0.1", int(iso_env[var])), var
    assert run_cli(iso_env, "stack", "status").returncode == 1


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_port_in_use_is_one_clear_error_and_starts_nothing(iso_env: dict[str, str]) -> None:
    state = Path(iso_env["RADGUARD_STACK_STATE_DIR"])
    port = int(iso_env["RADGUARD_STACK_KAFKA_PORT"])
    with socket.socket() as blocker:
        # SO_REUSEADDR: the previous test's connections may still sit in TIME_WAIT on this port.
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        proc = run_cli(iso_env, "stack", "up")
    line = _one_error_line(proc)
    assert f"port {port}" in line and "RADGUARD_STACK_KAFKA_PORT" in line
    assert pids(state) == {}


def test_unwritable_state_folder(iso_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = dict(iso_env, RADGUARD_STACK_STATE_DIR=str(blocker / "state"))
    line = _one_error_line(run_cli(env, "stack", "up"))
    assert "not writable" in line and "RADGUARD_STACK_STATE_DIR" in line


def test_missing_java_names_the_fix(iso_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(iso_env, PATH=str(Path(sys.executable).parent), RADGUARD_STACK_STATE_DIR=str(tmp_path / "s"))
    line = _one_error_line(run_cli(env, "stack", "up"))
    assert "java not found" in line and "apt-get install -y openjdk-17-jre-headless" in line
    assert not (tmp_path / "s" / "pids").exists() or not any((tmp_path / "s" / "pids").iterdir())


def test_bad_port_setting_names_the_variable(iso_env: dict[str, str]) -> None:
    env = dict(iso_env, RADGUARD_STACK_POSTGRES_PORT="seventy")
    line = _one_error_line(run_cli(env, "stack", "status"))
    assert "RADGUARD_STACK_POSTGRES_PORT" in line
