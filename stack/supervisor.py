"""The stack's supervisor: a small detached process that keeps radguard's own processes running.

``radguard stack up`` starts it (pid in ``pids/supervisor.json``, log in ``logs/supervisor.log``) once the
servers are ready; from then on it is the one that starts the gateway, feedback, ledger writer, monitor
runner and governance service, and restarts any of them that exits — crashed, SIGKILLed, OOM-killed —
after an exponential backoff. A process that stays up for ``restart_stable_after_s`` starts the next
backoff from the beginning; one restarted ``crash_loop_restarts`` times within ``crash_loop_window_s``
is reported as crash-looping (and still retried, at the capped delay). What it did is kept in
``supervisor/restarts.json`` for ``radguard stack status``. ``stack down`` stops it before anything
else, so it never brings back what ``down`` stops.

SIGUSR1 makes it retry every stopped process at once (``stack up`` sends it so an operator never waits
out a long backoff); SIGTERM stops it, leaving the processes it started running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stack.components.base import Component, Layout
from stack.processes import ProcessRecord, StackError, exit_code, is_ours
from stack.settings import StackSettings

#: Module run as the supervisor process.
MODULE = "stack.supervisor"
NAME = "supervisor"


@dataclass(frozen=True)
class RestartPolicy:
    """How long to wait before the n-th consecutive restart, and when restarts count as a crash loop."""

    initial_s: float
    factor: float
    max_s: float
    stable_after_s: float
    crash_loop_restarts: int
    crash_loop_window_s: float

    @classmethod
    def from_settings(cls, s: StackSettings) -> RestartPolicy:
        return cls(
            initial_s=s.restart_backoff_initial_s,
            factor=s.restart_backoff_factor,
            max_s=s.restart_backoff_max_s,
            stable_after_s=s.restart_stable_after_s,
            crash_loop_restarts=s.crash_loop_restarts,
            crash_loop_window_s=s.crash_loop_window_s,
        )

    def delay(self, failures: int) -> float:
        """Seconds to wait before restarting after ``failures`` consecutive restarts that did not last."""
        return float(min(self.max_s, self.initial_s * self.factor ** max(0, failures)))

    def crash_looping(self, restart_times: list[float], now: float) -> bool:
        """True when at least ``crash_loop_restarts`` restarts fall within the window ending ``now``."""
        recent = [t for t in restart_times if now - t <= self.crash_loop_window_s]
        return len(recent) >= self.crash_loop_restarts


@dataclass
class Watch:
    """What the supervisor knows about one process (``*_at`` fields are wall-clock epoch seconds)."""

    restarts: int = 0
    last_exit_code: int | None = None
    last_exit_at: float | None = None
    last_restart_at: float | None = None
    crash_loop: bool = False
    next_attempt_at: float | None = None
    # Not reported: monotonic bookkeeping.
    pid: int | None = field(default=None, repr=False)
    up_since: float | None = field(default=None, repr=False)
    failures: int = field(default=0, repr=False)
    next_attempt: float | None = field(default=None, repr=False)
    restart_times: deque[float] = field(default_factory=lambda: deque(maxlen=64), repr=False)

    def report(self) -> dict[str, Any]:
        keys = ("restarts", "last_exit_code", "last_exit_at", "last_restart_at", "crash_loop", "next_attempt_at")
        return {k: v for k, v in asdict(self).items() if k in keys}


def describe_exit(code: int | None) -> str:
    """An exit status as people read it: ``SIGKILL``, ``exit 1``, or ``unknown``."""
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def status_file(layout: Layout) -> Path:
    """Where the supervisor reports restarts."""
    return layout.home(NAME) / "restarts.json"


def settings_file(layout: Layout) -> Path:
    """The stack settings the supervisor runs with (written by ``stack up``)."""
    return layout.home(NAME) / "settings.json"


def read_report(layout: Layout) -> dict[str, dict[str, Any]]:
    """The supervisor's last report per component name (empty when there is none)."""
    try:
        data = json.loads(status_file(layout).read_text())
        components = data["components"]
        return {str(k): dict(v) for k, v in components.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _log(event: str, **fields: object) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    parts = " ".join(f"{k}={v}" for k, v in fields.items())
    print(
        f"{stamp} level={'warning' if event in ('exited', 'crash_loop', 'start_failed') else 'info'} "
        f"event={event} {parts}".rstrip(),
        flush=True,
    )


class Supervisor:
    """Keeps ``components`` running; every state change is logged and written to the report file."""

    def __init__(self, settings: StackSettings, components: list[Component]) -> None:
        self.settings = settings
        self.layout = Layout(settings.state_dir)
        self.components = components
        self.policy = RestartPolicy.from_settings(settings)
        self.watches = {c.name: Watch() for c in components}
        previous = read_report(self.layout)
        for name, watch in self.watches.items():
            # Counts survive a restart of the supervisor itself (``down`` clears them).
            watch.restarts = int(previous.get(name, {}).get("restarts", 0) or 0)
            watch.last_exit_code = previous.get(name, {}).get("last_exit_code")
            watch.last_exit_at = previous.get(name, {}).get("last_exit_at")
            watch.last_restart_at = previous.get(name, {}).get("last_restart_at")
        self._stop = False
        self._kick = False

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def kick(self, *_: object) -> None:
        self._kick = True

    def run(self) -> None:
        """Poll until asked to stop."""
        _log("started", pid=os.getpid(), supervising=",".join(self.watches))
        self.write_report()
        while not self._stop:
            self.poll_once(time.monotonic())
            time.sleep(self.settings.supervisor_poll_s)
        _log("stopped", pid=os.getpid())

    def poll_once(self, now: float) -> None:
        """One look at every process: note exits, start what is due."""
        changed = False
        if self._kick:
            self._kick = False
            for watch in self.watches.values():
                if watch.next_attempt is not None:
                    watch.failures, watch.next_attempt = 0, now
        for comp in self.components:
            watch = self.watches[comp.name]
            record = ProcessRecord.load(self.layout.pid(comp.name))
            if record is not None and is_ours(record):
                if watch.pid != record.pid:
                    watch.pid, watch.up_since, watch.next_attempt, watch.next_attempt_at = record.pid, now, None, None
                    changed = True
                if watch.failures and watch.up_since is not None and now - watch.up_since >= self.policy.stable_after_s:
                    watch.failures = 0
                    if watch.crash_loop:
                        watch.crash_loop = False
                        changed = True
                continue
            if watch.pid is not None:
                # It was running under our watch and is gone: a crash (``down`` stops us first).
                code = exit_code(watch.pid)
                delay = self.policy.delay(watch.failures)
                watch.last_exit_code, watch.last_exit_at = code, time.time()
                watch.pid, watch.up_since = None, None
                watch.next_attempt, watch.next_attempt_at = now + delay, time.time() + delay
                _log("exited", component=comp.name, exit=describe_exit(code), restart_in_s=f"{delay:.1f}")
                self._note(comp, f"{comp.name} exited ({describe_exit(code)}), restart in {delay:.1f}s")
                changed = True
            elif watch.next_attempt is None:
                # Never seen running by this supervisor: a first start (``stack up``), not a restart.
                watch.next_attempt = now
            if now >= watch.next_attempt:
                changed |= self._start(comp, watch, now, restart=watch.last_exit_at is not None)
        if changed:
            self.write_report()

    def _start(self, comp: Component, watch: Watch, now: float, *, restart: bool) -> bool:
        try:
            comp.prepare()
            record = comp.start()
        except (StackError, OSError) as exc:
            delay = self.policy.delay(watch.failures)
            watch.failures += 1
            watch.next_attempt, watch.next_attempt_at = now + delay, time.time() + delay
            _log("start_failed", component=comp.name, error=str(exc)[:200], retry_in_s=f"{delay:.1f}")
            return True
        record.save(self.layout.pid(comp.name))
        watch.pid, watch.up_since, watch.next_attempt, watch.next_attempt_at = record.pid, now, None, None
        if restart:
            watch.restarts += 1
            watch.failures += 1
            watch.last_restart_at = time.time()
            watch.restart_times.append(now)
            _log(
                "restarted",
                component=comp.name,
                pid=record.pid,
                restarts=watch.restarts,
                after=describe_exit(watch.last_exit_code),
            )
            looping = self.policy.crash_looping(list(watch.restart_times), now)
            if looping and not watch.crash_loop:
                _log(
                    "crash_loop",
                    component=comp.name,
                    restarts_in_window=self.policy.crash_loop_restarts,
                    window_s=f"{self.policy.crash_loop_window_s:.0f}",
                    next_delay_s=f"{self.policy.delay(watch.failures):.1f}",
                )
            watch.crash_loop = looping
        else:
            _log("started_process", component=comp.name, pid=record.pid)
        return True

    def _note(self, comp: Component, line: str) -> None:
        """One line in the component's own log, so its log tells why a new run starts there."""
        try:
            with open(self.layout.log(comp.name), "a", encoding="utf-8") as fh:
                fh.write(f"\n=== radguard stack: {line} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n")
        except OSError:
            pass

    def write_report(self) -> None:
        path = status_file(self.layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        report = {"pid": os.getpid(), "components": {n: w.report() for n, w in self.watches.items()}}
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervisor process: ``python -m stack.supervisor <settings.json>``."""
    from stack.manager import Stack

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m stack.supervisor <settings.json>", file=sys.stderr)
        return 2
    settings = StackSettings.model_validate_json(Path(args[0]).read_text())
    stack = Stack(settings)
    supervisor = Supervisor(settings, stack.supervised())
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGUSR1, supervisor.kick)
    supervisor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
