"""Bring the local stack up, report on it and take it down — only ever touching what it started."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stack.components.base import Component, Layout
from stack.components.kafka import Kafka
from stack.components.postgres import Postgres
from stack.components.services import (
    Dashboard,
    Feedback,
    Gateway,
    GovernanceService,
    LedgerWriter,
    MonitorRunner,
    client_tokens,
)
from stack.components.triton import Triton
from stack.processes import (
    ProcessRecord,
    StackError,
    ephemeral_port_range,
    exit_code,
    is_ours,
    port_in_use,
    spawn,
    stop_process,
)
from stack.roles import OWNER_ROLE, SERVICE_ROLES
from stack.settings import REPO_ROOT as _REPO_ROOT
from stack.settings import StackSettings
from stack.supervisor import MODULE as SUPERVISOR_MODULE
from stack.supervisor import NAME as SUPERVISOR
from stack.supervisor import describe_exit, read_report, settings_file, status_file

#: Called with (component name, what is happening) as the stack makes progress.
Progress = Callable[[str, str], None]


def _quiet(_component: str, _message: str) -> None:
    return None


@dataclass(frozen=True)
class ComponentStatus:
    """What ``status`` knows about one component."""

    name: str
    state: str  # ready | starting | dead | stopped
    pid: int | None
    ports: dict[str, int]
    version: str
    detail: str = ""
    #: Started and restarted by the supervisor (radguard's own processes).
    supervised: bool = False
    #: Restarts by the supervisor since ``stack up`` (radguard's own processes only).
    restarts: int = 0
    #: How its last run ended (``SIGKILL``, ``exit 1``, ``unknown``), or "" when it has not exited.
    last_exit: str = ""
    #: When the supervisor last restarted it (local time), or "".
    last_restart: str = ""


@dataclass
class UpResult:
    """What one ``up`` did."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    provisioned: list[str] = field(default_factory=list)


class Stack:
    """The servers of the local stack and radguard's processes, managed through a state folder.

    The servers (PostgreSQL, Kafka, Triton) are started by ``up`` itself; radguard's own processes by the
    supervisor (:mod:`stack.supervisor`), which ``up`` starts once the servers are ready and which restarts
    any of them that exits.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.layout = Layout(settings.state_dir)
        self.components: list[Component] = [
            Postgres(settings, self.layout),
            Kafka(settings, self.layout),
            Triton(settings, self.layout),
            Gateway(settings, self.layout),
            Feedback(settings, self.layout),
            LedgerWriter(settings, self.layout),
            MonitorRunner(settings, self.layout),
            GovernanceService(settings, self.layout),
            Dashboard(settings, self.layout),
        ]

    def component(self, name: str) -> Component:
        """A component by name, or StackError listing the valid names."""
        for comp in self.components:
            if comp.name == name:
                return comp
        raise StackError(f"unknown component '{name}': choose one of {', '.join(c.name for c in self.components)}")

    def supervised(self) -> list[Component]:
        """radguard's own processes, which the supervisor starts and restarts."""
        return [c for c in self.components if c.supervised]

    def supervisor_record(self) -> ProcessRecord | None:
        """The supervisor's record if it is alive and ours."""
        rec = ProcessRecord.load(self.layout.pid(SUPERVISOR))
        return rec if rec is not None and is_ours(rec) else None

    def record(self, comp: Component) -> ProcessRecord | None:
        return ProcessRecord.load(self.layout.pid(comp.name))

    def running(self, comp: Component) -> ProcessRecord | None:
        """The component's record if its process is alive and ours."""
        rec = self.record(comp)
        return rec if rec is not None and is_ours(rec) else None

    # ---- up -----------------------------------------------------------------------------------
    def _check_state_dir(self) -> None:
        root = self.settings.state_dir
        try:
            root.mkdir(parents=True, exist_ok=True)
            for sub in (self.layout.logs, self.layout.pids):
                sub.mkdir(exist_ok=True)
            probe = root / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise StackError(
                f"state folder {root} is not writable ({exc.strerror}): set RADGUARD_STACK_STATE_DIR "
                "to a folder you can write"
            ) from None

    def up(self, progress: Progress = _quiet) -> UpResult:
        """Start whatever is not running, wait until all are ready, provision topics and schema.

        Idempotent: running components are found and left alone. The servers are started here;
        radguard's own processes by the supervisor, which this starts if it is not running (and nudges
        to retry at once if it is). On any failure what this call started is stopped again, so nothing
        is left half-started.
        """
        result = UpResult()
        self._check_state_dir()
        to_start = []
        previous: dict[str, int | None] = {}
        for comp in self.components:
            rec = self.record(comp)
            if rec is not None and is_ours(rec):
                result.already_running.append(comp.name)
            else:
                to_start.append(comp)
                previous[comp.name] = rec.pid if rec else None
        supervisor_running = self.supervisor_record() is not None
        # A running supervisor may be restarting a process right now (its port briefly in use).
        self._preflight([c for c in to_start if not (c.supervised and supervisor_running)], progress)
        started: list[tuple[Component, ProcessRecord]] = []
        supervisor_started = False
        try:
            # Servers first (then their topics and schema), radguard's own processes after them.
            for phase in sorted({c.phase for c in self.components}):
                batch = []
                for comp in (c for c in to_start if c.phase == phase and not c.supervised):
                    progress(comp.name, "preparing")
                    comp.prepare()
                    progress(comp.name, "starting")
                    rec = comp.start()
                    rec.save(self.layout.pid(comp.name))
                    started.append((comp, rec))
                    batch.append(comp)
                self._wait_ready(batch, progress)
                if any(c.supervised and c.phase == phase for c in self.components):
                    supervised = [c for c in to_start if c.phase == phase and c.supervised]
                    supervisor_started = self.ensure_supervisor(progress, kick=bool(supervised))
                    self._wait_supervised(supervised, previous, progress)
                for comp in (c for c in self.components if c.phase == phase):
                    for line in comp.after_ready():
                        progress(comp.name, line)
                        result.provisioned.append(f"{comp.name}: {line}")
        except BaseException:
            self._undo(started, [c for c in to_start if c.supervised] if supervisor_started else [])
            raise
        result.started = [c.name for c in to_start]
        self.write_env_file()
        for comp in self.components:
            progress(comp.name, "ready")
        return result

    def _undo(self, started: list[tuple[Component, ProcessRecord]], supervised: list[Component]) -> None:
        """Stop what a failed ``up`` started: the supervisor and its processes (if it started them), the servers."""
        if supervised:
            self.stop_supervisor()
            for comp in supervised:
                rec = self.record(comp)
                if rec is not None:
                    stop_process(rec, timeout_s=self.settings.stop_timeout_s, sig=comp.stop_signal)
                    self.layout.pid(comp.name).unlink(missing_ok=True)
        for comp, rec in reversed(started):
            stop_process(rec, timeout_s=self.settings.stop_timeout_s, sig=comp.stop_signal)
            self.layout.pid(comp.name).unlink(missing_ok=True)

    def ensure_supervisor(self, progress: Progress = _quiet, *, kick: bool = False) -> bool:
        """Start the supervisor unless it runs; with ``kick``, make a running one retry stopped processes now.

        Returns True when this call started it.
        """
        rec = self.supervisor_record()
        if rec is not None:
            if kick:
                os.kill(rec.pid, signal.SIGUSR1)
            return False
        home = self.layout.home(SUPERVISOR)
        home.mkdir(parents=True, exist_ok=True)
        config = settings_file(self.layout)
        config.write_text(self.settings.model_dump_json())
        marker = f"radguard_stack={home}"
        argv = [sys.executable, "-X", marker, "-m", SUPERVISOR_MODULE, str(config)]
        progress(SUPERVISOR, "starting")
        rec = spawn(SUPERVISOR, argv, log_path=self.layout.log(SUPERVISOR), marker=marker, cwd=_REPO_ROOT)
        rec.save(self.layout.pid(SUPERVISOR))
        return True

    def stop_supervisor(self) -> bool:
        """Stop the supervisor (first, so it cannot restart what is being stopped). True if it was running."""
        rec = ProcessRecord.load(self.layout.pid(SUPERVISOR))
        if rec is None:
            return False
        stopped = stop_process(rec, timeout_s=self.settings.stop_timeout_s)
        self.layout.pid(SUPERVISOR).unlink(missing_ok=True)
        return stopped

    def _wait_supervised(self, comps: list[Component], previous: dict[str, int | None], progress: Progress) -> None:
        """Wait until the supervisor has started each of ``comps`` (a new pid) and it is ready."""
        pending = {c.name: c for c in comps}
        t0 = time.monotonic()
        deadline = t0 + self.settings.ready_timeout_s
        last_report = 0.0
        while pending:
            if self.supervisor_record() is None:
                raise StackError(f"the supervisor exited: see {self.layout.log(SUPERVISOR)}")
            for name, comp in list(pending.items()):
                rec = self.record(comp)
                if rec is None or rec.pid == previous.get(name):
                    continue  # not started yet
                if not is_ours(rec):
                    raise StackError(
                        f"{name} exited during start-up: see {self.layout.log(name)} "
                        f"(last lines: {self._tail_one_line(name)})"
                    )
                if comp.is_ready():
                    progress(name, f"ready after {time.monotonic() - t0:.1f}s")
                    del pending[name]
            if not pending:
                return
            now = time.monotonic()
            if now > deadline:
                raise StackError(
                    f"{', '.join(pending)} not ready after {self.settings.ready_timeout_s:.0f}s: "
                    f"see logs in {self.layout.logs}"
                )
            if now - last_report > 5:
                for name in pending:
                    progress(name, f"waiting for readiness ({now - t0:.0f}s)")
                last_report = now
            time.sleep(0.25)

    def _preflight(self, to_start: list[Component], progress: Progress = _quiet) -> None:
        """Check every prerequisite and port before starting anything.

        A port inside the kernel's ephemeral range is allowed but warned about: an outgoing connection
        can take it while its server is down (see :func:`ephemeral_port_range`).
        """
        for comp in to_start:
            comp.check_prerequisites()
        ephemeral = ephemeral_port_range()
        for comp in to_start:
            for var, port in comp.ports().items():
                if ephemeral is not None and ephemeral[0] <= port <= ephemeral[1]:
                    progress(
                        comp.name,
                        f"warning: {var}={port} lies in the kernel's ephemeral port range "
                        f"({ephemeral[0]}-{ephemeral[1]}); an outgoing connection may take it while "
                        f"{comp.name} is down: prefer a port below {ephemeral[0]}",
                    )
                if port_in_use(self.settings.host, port):
                    raise StackError(
                        f"{comp.name}: port {port} on {self.settings.host} is already in use by another "
                        f"process: free it or set {var} to a free port"
                    )

    def _wait_ready(self, comps: list[Component], progress: Progress) -> None:
        pending = {c.name: c for c in comps}
        t0 = time.monotonic()
        deadline = t0 + self.settings.ready_timeout_s
        last_report = 0.0
        while pending:
            for name, comp in list(pending.items()):
                rec = self.record(comp)
                if rec is None or not is_ours(rec):
                    code = exit_code(rec.pid) if rec else None
                    raise StackError(
                        f"{name} exited during start-up (exit status {code}): see {self.layout.log(name)} "
                        f"(last lines: {self._tail_one_line(name)})"
                    )
                if comp.is_ready():
                    progress(name, f"ready after {time.monotonic() - t0:.1f}s")
                    del pending[name]
            if not pending:
                return
            now = time.monotonic()
            if now > deadline:
                raise StackError(
                    f"{', '.join(pending)} not ready after {self.settings.ready_timeout_s:.0f}s: "
                    f"see logs in {self.layout.logs}"
                )
            if now - last_report > 5:
                for name in pending:
                    progress(name, f"waiting for readiness ({now - t0:.0f}s)")
                last_report = now
            time.sleep(0.25)

    def _tail_one_line(self, name: str, lines: int = 3) -> str:
        return " | ".join(self.logs(name, lines)).strip()[-400:]

    def write_env_file(self) -> Path:
        """Write ``stack.env``: the endpoints radguard processes and tests connect to."""
        path = self.settings.state_dir / "stack.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.endpoints().items()))
        path.chmod(0o600)  # it holds the client tokens
        return path

    def endpoints(self) -> dict[str, str]:
        """Connection settings for radguard processes, as environment variables."""
        s = self.settings
        return {
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
            # The administrator (the cluster's superuser): creates databases and roles; tests use it.
            "RADGUARD_POSTGRES_DSN": s.postgres_dsn,
            # The schema's owner: migrations.
            "RADGUARD_POSTGRES_OWNER_DSN": s.role_dsn(OWNER_ROLE),
            **{f"RADGUARD_POSTGRES_{r.component.upper()}_DSN": s.role_dsn(r.name) for r in SERVICE_ROLES},
            "RADGUARD_TRITON_GRPC_URL": s.triton_grpc_url,
            "RADGUARD_GATEWAY_URL": s.gateway_url,
            "RADGUARD_GATEWAY_HTTP_URL": f"{s.host}:{s.gateway_http_port}",
            "RADGUARD_FEEDBACK_URL": f"{s.host}:{s.feedback_port}",
            "RADGUARD_DASHBOARD_URL": s.dashboard_url,
            **client_tokens(self.settings.state_dir),
        }

    # ---- status / down / logs ----------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        """Each component's state, pid, ports and version (restarts for supervised ones), then the supervisor's."""
        out = []
        report = read_report(self.layout)
        supervisor = self.supervisor_record()
        for comp in self.components:
            rec = self.record(comp)
            seen = report.get(comp.name, {}) if comp.supervised else {}
            if rec is None:
                state, pid, detail = "stopped", None, ""
            elif not is_ours(rec):
                state, pid = "dead", rec.pid
                if comp.supervised and supervisor is not None:
                    loop = "crash loop; " if seen.get("crash_loop") else ""
                    when = seen.get("next_attempt_at")
                    left = f" in {max(0.0, float(when) - time.time()):.0f}s" if when else ""
                    detail = f"{loop}pid {rec.pid} is gone: the supervisor restarts it{left}"
                else:
                    detail = f"pid {rec.pid} is gone: `radguard stack up` restarts it"
            else:
                ready = comp.is_ready()
                state, pid, detail = ("ready" if ready else "starting"), rec.pid, comp.detail()
                if seen.get("crash_loop"):
                    detail = f"crash loop; {detail}" if detail else "crash loop"
            code = seen.get("last_exit_code")
            restarted = seen.get("last_restart_at")
            out.append(
                ComponentStatus(
                    comp.name,
                    state,
                    pid,
                    comp.ports(),
                    comp.version(),
                    detail,
                    supervised=comp.supervised,
                    restarts=int(seen.get("restarts", 0) or 0),
                    last_exit=describe_exit(code) if seen.get("last_exit_at") else "",
                    last_restart=time.strftime("%H:%M:%S", time.localtime(float(restarted))) if restarted else "",
                )
            )
        out.append(self._supervisor_status(supervisor, report))
        return out

    def _supervisor_status(
        self, running: ProcessRecord | None, report: dict[str, dict[str, object]]
    ) -> ComponentStatus:
        rec = ProcessRecord.load(self.layout.pid(SUPERVISOR))
        total = sum(int(str(r.get("restarts", 0) or 0)) for r in report.values())
        if rec is None:
            state, pid, detail = "stopped", None, ""
        elif running is None:
            state, pid, detail = "dead", rec.pid, f"pid {rec.pid} is gone: `radguard stack up` restarts it"
        else:
            looping = sorted(name for name, r in report.items() if r.get("crash_loop"))
            detail = f"{len(self.supervised())} processes, {total} restarts"
            if looping:
                detail += f"; crash loop: {', '.join(looping)}"
            state, pid = "ready", rec.pid
        return ComponentStatus(SUPERVISOR, state, pid, {}, "radguard", detail, restarts=0)

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Stop the supervisor, then the components this stack started (by recorded pid); returns those stopped."""
        stopped = []
        if ProcessRecord.load(self.layout.pid(SUPERVISOR)) is not None:
            progress(SUPERVISOR, "stopping")
            if self.stop_supervisor():
                stopped.append(SUPERVISOR)
                progress(SUPERVISOR, "stopped")
        status_file(self.layout).unlink(missing_ok=True)
        for comp in reversed(self.components):
            rec = self.record(comp)
            if rec is None:
                continue
            progress(comp.name, "stopping")
            if stop_process(rec, timeout_s=self.settings.stop_timeout_s, sig=comp.stop_signal):
                stopped.append(comp.name)
                progress(comp.name, "stopped")
            self.layout.pid(comp.name).unlink(missing_ok=True)
        return stopped

    def logs(self, name: str, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of a component's (or the supervisor's) log."""
        if name != SUPERVISOR:
            self.component(name)
        path = self.layout.log(name)
        if not path.exists():
            return []
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode(errors="replace")
        return data.splitlines()[-lines:]
