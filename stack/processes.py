"""Background processes owned by the stack: start detached, record by pid, find again, stop.

A pid file alone is not proof of ownership (pids are reused), so each record also stores a marker
string that must appear in the process's command line — the component's own config path inside the
state folder. ``down`` only ever signals processes whose record and command line both match.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


class StackError(Exception):
    """A stack operation failed; the message is one line meant for the operator."""


@dataclass(frozen=True)
class ProcessRecord:
    """What the stack remembers about a process it started."""

    name: str
    pid: int
    marker: str
    started_at: float

    def save(self, path: Path) -> None:
        """Write the record atomically."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        """Read a record, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(path.read_text())
            return cls(
                name=data["name"], pid=int(data["pid"]), marker=data["marker"], started_at=float(data["started_at"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def process_cmdline(pid: int) -> str | None:
    """The command line of a live process, or None if it is gone (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The state letter follows the parenthesised command name.
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


#: Processes started by this Python process: their liveness comes from the child handle itself.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def exit_code(pid: int) -> int | None:
    """Exit status of a child this process started, or None while it runs (or if it is not our child)."""
    child = _CHILDREN.get(pid)
    return None if child is None else child.poll()


def is_ours(record: ProcessRecord) -> bool:
    """True when the recorded pid is alive and still runs the command we started."""
    child = _CHILDREN.get(record.pid)
    if child is not None:
        return child.poll() is None
    cmdline = process_cmdline(record.pid)
    return cmdline is not None and record.marker in cmdline


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    marker: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> ProcessRecord:
    """Start ``argv`` in its own session with output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== radguard stack: starting {name} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=_primary_group(user) if user else None,
            )
        except OSError as exc:
            raise StackError(f"{name}: cannot start {argv[0]}: {exc.strerror}") from None
    _CHILDREN[proc.pid] = proc
    return ProcessRecord(name=name, pid=proc.pid, marker=marker, started_at=time.time())


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def stop_process(record: ProcessRecord, *, timeout_s: float, sig: int = signal.SIGTERM) -> bool:
    """Signal the process (only if it is still ours), wait, escalate to SIGKILL. True if it was running."""
    if not is_ours(record):
        return False
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    if wait_gone(record.pid, timeout_s):
        return True
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
    wait_gone(record.pid, 10.0)
    return True


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited (reaping it if it is our child)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            pass
        if process_cmdline(pid) is None:
            return True
        time.sleep(0.1)
    return False


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts or holds ``host:port`` (we try to bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


#: Where Linux keeps the range of local ports it hands to outgoing connections.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_port_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's ephemeral port range ``(low, high)``, or None where it cannot be read.

    A server port inside it is unsafe for a process that restarts: while the server is down, any
    outgoing connection on the machine (a Kafka client reconnecting, say) may be given that port as
    its local end, and the restarted server then cannot bind it.
    """
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
