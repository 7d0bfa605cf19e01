"""Bring the local stack up, report on it and take it down — only ever touching what it started."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stack.components.base import Component, Layout
from stack.components.kafka import Kafka
from stack.components.postgres import Postgres
from stack.components.services import Feedback, Gateway, GovernanceService, LedgerWriter, MonitorRunner, client_tokens
from stack.components.triton import Triton
from stack.processes import (
    ProcessRecord,
    StackError,
    ephemeral_port_range,
    exit_code,
    is_ours,
    port_in_use,
    stop_process,
)
from stack.settings import StackSettings

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


@dataclass
class UpResult:
    """What one ``up`` did."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    provisioned: list[str] = field(default_factory=list)


class Stack:
    """The three servers of the local stack, managed through a state folder."""

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
        ]

    def component(self, name: str) -> Component:
        """A component by name, or StackError listing the valid names."""
        for comp in self.components:
            if comp.name == name:
                return comp
        raise StackError(f"unknown component '{name}': choose one of {', '.join(c.name for c in self.components)}")

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

        Idempotent: running components are found and left alone. On any failure the components
        this call started are stopped again, so nothing is left half-started.
        """
        result = UpResult()
        self._check_state_dir()
        to_start = []
        for comp in self.components:
            if self.running(comp):
                result.already_running.append(comp.name)
            else:
                to_start.append(comp)
        self._preflight(to_start, progress)
        started: list[tuple[Component, ProcessRecord]] = []
        try:
            # Servers first (then their topics and schema), radguard's own processes after them.
            for phase in sorted({c.phase for c in self.components}):
                batch = []
                for comp in (c for c in to_start if c.phase == phase):
                    progress(comp.name, "preparing")
                    comp.prepare()
                    progress(comp.name, "starting")
                    rec = comp.start()
                    rec.save(self.layout.pid(comp.name))
                    started.append((comp, rec))
                    batch.append(comp)
                self._wait_ready(batch, progress)
                for comp in (c for c in self.components if c.phase == phase):
                    for line in comp.after_ready():
                        progress(comp.name, line)
                        result.provisioned.append(f"{comp.name}: {line}")
        except BaseException:
            for comp, rec in reversed(started):
                stop_process(rec, timeout_s=self.settings.stop_timeout_s, sig=comp.stop_signal)
                self.layout.pid(comp.name).unlink(missing_ok=True)
            raise
        result.started = [c.name for c, _ in started]
        self.write_env_file()
        for comp in self.components:
            progress(comp.name, "ready")
        return result

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
        return {
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap,
            "RADGUARD_POSTGRES_DSN": self.settings.postgres_dsn,
            "RADGUARD_TRITON_GRPC_URL": self.settings.triton_grpc_url,
            "RADGUARD_GATEWAY_URL": self.settings.gateway_url,
            "RADGUARD_FEEDBACK_URL": f"{self.settings.host}:{self.settings.feedback_port}",
            **client_tokens(self.settings.state_dir),
        }

    # ---- status / down / logs ----------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        """Each component's state, pid, ports and version."""
        out = []
        for comp in self.components:
            rec = self.record(comp)
            if rec is None:
                state, pid, detail = "stopped", None, ""
            elif not is_ours(rec):
                state, pid, detail = "dead", rec.pid, f"pid {rec.pid} is gone: `radguard stack up` restarts it"
            else:
                ready = comp.is_ready()
                state, pid, detail = ("ready" if ready else "starting"), rec.pid, comp.detail()
            out.append(ComponentStatus(comp.name, state, pid, comp.ports(), comp.version(), detail))
        return out

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Stop the components this stack started (by recorded pid); returns those stopped."""
        stopped = []
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
        """The last ``lines`` lines of a component's log."""
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
