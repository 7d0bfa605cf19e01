"""What every stack component can do; the manager drives components only through this interface."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from stack.processes import ProcessRecord, StackError
from stack.settings import StackSettings


@dataclass(frozen=True)
class Layout:
    """Folders inside the state folder."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    def home(self, component: str) -> Path:
        """A component's own folder (config, data)."""
        return self.root / component

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pid(self, component: str) -> Path:
        return self.pids / f"{component}.json"


class Component(ABC):
    """A server the stack starts, checks and stops."""

    name: str
    #: Signal that asks the server for a fast, clean shutdown.
    stop_signal: int = 15
    #: Start order: servers (0) are up and provisioned before radguard's processes (1) start.
    phase: int = 0
    #: Started and restarted by the stack's supervisor (radguard's own processes), not by ``up`` itself.
    supervised: bool = False

    def __init__(self, settings: StackSettings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout

    @property
    def home(self) -> Path:
        return self.layout.home(self.name)

    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Ports this component binds, keyed by the variable that sets each."""

    @abstractmethod
    def check_prerequisites(self) -> None:
        """Raise StackError naming the missing tool and the command that installs it."""

    @abstractmethod
    def prepare(self) -> None:
        """Write config and initialise data (idempotent); may be slow the first time."""

    @abstractmethod
    def start(self) -> ProcessRecord:
        """Start the server in the background."""

    @abstractmethod
    def is_ready(self) -> bool:
        """One quick readiness probe."""

    def after_ready(self) -> list[str]:
        """Idempotent provisioning once ready (topics, migrations); returns what it did."""
        return []

    @abstractmethod
    def version(self) -> str:
        """The server's version, as it reports it (or as shipped)."""

    def detail(self) -> str:
        """One line about what a running component has been doing, for ``radguard stack status``."""
        return ""


def require_tool(tool: str, install_hint: str) -> str:
    """Path of ``tool`` on PATH, or a StackError saying how to install it."""
    found = shutil.which(tool)
    if not found:
        raise StackError(f"{tool} not found on PATH: install it with `{install_hint}`")
    return found


def running_as_root() -> bool:
    return os.geteuid() == 0
