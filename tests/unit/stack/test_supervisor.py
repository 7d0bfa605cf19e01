"""The supervisor's restart rules, driven step by step over real (tiny) processes with a controlled clock.

The processes are real children (``python -c``) so exit codes, SIGKILL and pid records behave as in the
stack; the supervisor's clock (``poll_once(now)``) is the test's, so backoff delays are checked exactly
without sleeping through them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from stack.components.base import Component, Layout
from stack.processes import ProcessRecord, is_ours, spawn, stop_process
from stack.settings import StackSettings
from stack.supervisor import RestartPolicy, Supervisor, describe_exit, read_report

# Sleeps until killed, or exits at once with the code written in the ``crash`` file beside it.
_SCRIPT = """
import pathlib, sys, time
crash = pathlib.Path(sys.argv[1])
if crash.exists():
    sys.exit(int(crash.read_text()))
time.sleep(600)
"""


class Sleeper(Component):
    """A process that runs until killed, or crashes at once while its ``crash`` file exists."""

    name = "sleeper"
    supervised = True

    @property
    def crash_file(self) -> Path:
        return self.home / "crash"

    def ports(self) -> dict[str, int]:
        return {}

    def check_prerequisites(self) -> None:
        return None

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def start(self) -> ProcessRecord:
        marker = f"radguard_stack={self.home}"
        argv = [sys.executable, "-X", marker, "-c", _SCRIPT, str(self.crash_file)]
        return spawn(self.name, argv, log_path=self.layout.log(self.name), marker=marker)

    def is_ready(self) -> bool:
        return True

    def version(self) -> str:
        return "test"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Supervisor, Sleeper]:
    settings = StackSettings(
        state_dir=tmp_path,
        restart_backoff_initial_s=0.2,
        restart_backoff_factor=2.0,
        restart_backoff_max_s=1.0,
        restart_stable_after_s=10.0,
        crash_loop_restarts=3,
        crash_loop_window_s=60.0,
    )
    layout = Layout(tmp_path)
    layout.pids.mkdir(parents=True)
    sleeper = Sleeper(settings, layout)
    supervisor = Supervisor(settings, [sleeper])
    yield supervisor, sleeper
    rec = ProcessRecord.load(layout.pid(sleeper.name))
    if rec is not None:
        stop_process(rec, timeout_s=5)


def current(sleeper: Sleeper) -> ProcessRecord:
    rec = ProcessRecord.load(sleeper.layout.pid(sleeper.name))
    assert rec is not None
    return rec


def wait_gone(rec: ProcessRecord) -> None:
    deadline = time.monotonic() + 20
    while is_ours(rec):
        assert time.monotonic() < deadline, "process did not exit"
        time.sleep(0.02)


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(0.5, 2.0, 30.0, 30.0, 5, 120.0)
    assert [policy.delay(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.crash_looping([1.0, 2.0, 3.0, 4.0], 10.0) is False
    assert policy.crash_looping([1.0, 2.0, 3.0, 4.0, 5.0], 10.0) is True
    assert policy.crash_looping([1.0, 2.0, 3.0, 4.0, 5.0], 122.0) is False  # the first fell out of the window


def test_describe_exit() -> None:
    assert describe_exit(-9) == "SIGKILL"
    assert describe_exit(1) == "exit 1"
    assert describe_exit(None) == "unknown"


def test_sigkilled_process_is_restarted_after_the_first_delay_and_reported(setup: tuple[Supervisor, Sleeper]) -> None:
    supervisor, sleeper = setup
    supervisor.poll_once(0.0)
    first = current(sleeper)
    assert is_ours(first)
    assert read_report(supervisor.layout)["sleeper"]["restarts"] == 0  # a first start is not a restart

    os.kill(first.pid, signal.SIGKILL)
    wait_gone(first)
    supervisor.poll_once(1.0)  # the exit is seen; the restart waits 0.2 s
    assert current(sleeper).pid == first.pid
    report = read_report(supervisor.layout)["sleeper"]
    assert report["last_exit_code"] == -signal.SIGKILL and report["restarts"] == 0
    supervisor.poll_once(1.19)
    assert current(sleeper).pid == first.pid
    supervisor.poll_once(1.2)
    second = current(sleeper)
    assert second.pid != first.pid and is_ours(second)
    report = read_report(supervisor.layout)["sleeper"]
    assert report["restarts"] == 1 and report["crash_loop"] is False
    assert abs(report["last_restart_at"] - time.time()) < 30
    log = sleeper.layout.log("sleeper").read_text()
    assert "sleeper exited (SIGKILL), restart in 0.2s" in log


def test_crash_loop_backs_off_exponentially_is_reported_and_clears_once_stable(
    setup: tuple[Supervisor, Sleeper],
) -> None:
    supervisor, sleeper = setup
    supervisor.poll_once(0.0)
    sleeper.crash_file.write_text("3")
    os.kill(current(sleeper).pid, signal.SIGKILL)
    now, delays = 0.0, []
    for _ in range(4):
        wait_gone(current(sleeper))
        now += 1.0
        supervisor.poll_once(now)  # sees the exit
        watch = supervisor.watches["sleeper"]
        assert watch.next_attempt is not None
        delays.append(round(watch.next_attempt - now, 3))
        now = watch.next_attempt
        supervisor.poll_once(now)  # restarts it (and it crashes again with exit 3)
    assert delays == [0.2, 0.4, 0.8, 1.0]  # doubling, capped at restart_backoff_max_s
    report = read_report(supervisor.layout)["sleeper"]
    assert report["restarts"] == 4 and report["last_exit_code"] == 3 and report["crash_loop"] is True

    # Fixed: the next run stays up for restart_stable_after_s, which clears the loop and the backoff.
    sleeper.crash_file.unlink()
    last = current(sleeper)
    if is_ours(last):  # it may have started after the unlink and be sleeping now
        os.kill(last.pid, signal.SIGKILL)
    wait_gone(last)
    now += 1.0
    supervisor.poll_once(now)
    now = supervisor.watches["sleeper"].next_attempt or now
    supervisor.poll_once(now)
    assert is_ours(current(sleeper))
    supervisor.poll_once(now + 10.5)
    assert supervisor.watches["sleeper"].failures == 0
    assert read_report(supervisor.layout)["sleeper"]["crash_loop"] is False


def test_kick_retries_at_once_and_counts_survive_a_new_supervisor(setup: tuple[Supervisor, Sleeper]) -> None:
    supervisor, sleeper = setup
    supervisor.poll_once(0.0)
    supervisor.watches["sleeper"].failures = 10  # a long backoff is pending
    first = current(sleeper)
    os.kill(first.pid, signal.SIGKILL)
    wait_gone(first)
    supervisor.poll_once(1.0)
    assert supervisor.watches["sleeper"].next_attempt == pytest.approx(2.0)  # capped at 1 s
    supervisor.kick()
    supervisor.poll_once(1.01)
    assert current(sleeper).pid != first.pid

    again = Supervisor(supervisor.settings, [sleeper])
    assert again.watches["sleeper"].restarts == 1
    data = json.loads((supervisor.layout.home("supervisor") / "restarts.json").read_text())
    assert data["components"]["sleeper"]["last_exit_code"] == -signal.SIGKILL
