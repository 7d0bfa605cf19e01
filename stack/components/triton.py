"""NVIDIA Triton Inference Server, from the tritonserver binary in the nvidia-pytriton wheel.

The wheel ships the server, the python backend and one backend stub per Python version. The stack
assembles a backend folder in its state folder (links to the wheel's files plus the stub for the
running Python) instead of writing into site-packages, and runs the server in explicit model-control
mode over ``model_repo/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from stack.components.base import Component
from stack.processes import ProcessRecord, StackError, port_open, spawn

_INSTALL_HINT = "uv sync --frozen (the lock file pins nvidia-pytriton)"


def pytriton_root() -> Path:
    """Folder of the installed ``pytriton`` package."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise StackError(f"nvidia-pytriton is not installed in this environment: run `{_INSTALL_HINT}`")
    return Path(spec.origin).parent


def model_names(repo: Path) -> list[str]:
    """Models in a Triton repository: folders holding a config.pbtxt."""
    return sorted(p.parent.name for p in repo.glob("*/config.pbtxt"))


class Triton(Component):
    """tritonserver with the python backend, CPU only here."""

    name = "triton"

    @property
    def backends(self) -> Path:
        return self.home / "backends"

    def ports(self) -> dict[str, int]:
        return {
            "RADGUARD_STACK_TRITON_GRPC_PORT": self.settings.triton_grpc_port,
            "RADGUARD_STACK_TRITON_HTTP_PORT": self.settings.triton_http_port,
            "RADGUARD_STACK_TRITON_METRICS_PORT": self.settings.triton_metrics_port,
        }

    def _stub(self) -> Path:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = pytriton_root() / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise StackError(f"nvidia-pytriton has no python backend stub for Python {version}")
        return stub

    def check_prerequisites(self) -> None:
        server = pytriton_root() / "tritonserver" / "bin" / "tritonserver"
        if not server.exists():
            raise StackError(f"tritonserver binary missing from nvidia-pytriton: run `{_INSTALL_HINT}`")
        self._stub()
        if not self.settings.model_repo.is_dir() or not model_names(self.settings.model_repo):
            raise StackError(
                f"no Triton models (*/config.pbtxt) in {self.settings.model_repo}: set RADGUARD_STACK_MODEL_REPO"
            )

    def prepare(self) -> None:
        python_dir = self.backends / "python"
        if python_dir.exists():
            shutil.rmtree(python_dir)
        python_dir.mkdir(parents=True)
        shipped = pytriton_root() / "tritonserver" / "backends" / "python"
        for item in shipped.iterdir():
            (python_dir / item.name).symlink_to(item)
        # The stub is copied, not linked: Triton locates the backend's files next to it.
        shutil.copy2(self._stub(), python_dir / "triton_python_backend_stub")

    def start(self) -> ProcessRecord:
        root = pytriton_root()
        libs = root.parent / "nvidia_pytriton.libs"
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
        # The backend stub runs model.py with this environment's Python packages (numpy, torch).
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        host = self.settings.host
        argv = [
            str(root / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.settings.model_repo}",
            f"--backend-directory={self.backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in model_names(self.settings.model_repo)),
            f"--grpc-address={host}",
            f"--grpc-port={self.settings.triton_grpc_port}",
            f"--http-address={host}",
            f"--http-port={self.settings.triton_http_port}",
            f"--metrics-address={host}",
            f"--metrics-port={self.settings.triton_metrics_port}",
            "--allow-gpu-metrics=false",
            "--log-verbose=0",
        ]
        return spawn(self.name, argv, log_path=self.layout.log(self.name), marker=str(self.backends), env=env)

    def _get(self, path: str) -> tuple[int, bytes]:
        url = f"http://{self.settings.host}:{self.settings.triton_http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except (urllib.error.URLError, OSError):
            return 0, b""

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.triton_http_port):
            return False
        return self._get("/v2/health/ready")[0] == 200

    def version(self) -> str:
        status, body = self._get("/v2")
        if status == 200:
            try:
                return str(json.loads(body)["version"])
            except (ValueError, KeyError):
                pass
        return "unknown (not reachable)"
