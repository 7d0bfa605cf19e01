"""Render and inspect the Helm chart in helm/radguard with the helm binary scripts/setup.sh installs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "radguard"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
#: The Kubernetes version templates are rendered for and manifests validated against.
KUBE_VERSION = "1.31.0"
#: radguard's own processes (the image's commands) → the component they are.
RADGUARD_MODULES = (
    "services.gateway",
    "services.feedback",
    "services.monitors.ledger",
    "services.monitors.runner",
    "services.governance_api",
    "services.dashboard",
    "stack.provision",
)


@cache
def helm_binary() -> str:
    """The helm binary: $RADGUARD_HELM, scripts/setup.sh's cached build, or one on PATH."""
    candidates = [os.environ.get("RADGUARD_HELM", ""), str(Path.home() / ".cache/radguard/bin/helm")]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("helm")
    if found is None:
        raise RuntimeError("helm not found: run scripts/setup.sh (it installs helm into ~/.cache/radguard/bin)")
    return found


def helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args`` (the chart path is substituted for ``{chart}``); never raises on failure."""
    argv = [helm_binary(), *(str(chart) if a == "{chart}" else a for a in args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def template(
    values: Sequence[Path] = (), sets: Sequence[str] = (), chart: Path = CHART
) -> subprocess.CompletedProcess[str]:
    """``helm template`` for the given values files and ``--set`` pairs."""
    args = ["template", "rg", "{chart}", "--namespace", "radiology", "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["-f", str(path)]
    for pair in sets:
        args += ["--set", pair]
    return helm(*args, chart=chart)


@cache
def rendered(values_file: Path) -> tuple[dict[str, Any], ...]:
    """The manifests one ci values file renders (fails the calling test if rendering fails)."""
    result = template([values_file])
    if result.returncode != 0:
        raise AssertionError(f"helm template -f {values_file.name} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: Sequence[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment, StatefulSet, DaemonSet and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def containers(spec: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    found = list(spec.get("containers", []))
    return [*found, *spec.get("initContainers", [])] if init else found


def radguard_module(container: dict[str, Any]) -> str | None:
    """The ``python -m`` module a container runs, or None for other images (Triton, copy helpers)."""
    command = [*container.get("command", []), *container.get("args", [])]
    if len(command) >= 3 and command[0] == "python" and command[1] == "-m":
        return str(command[2])
    return None


_METRIC = re.compile(r"\b(radguard_[a-z0-9_]+)\b")


def metric_names(promql: str) -> set[str]:
    """radguard metric names a PromQL expression uses (histogram series mapped to their family)."""
    names = set()
    for found in _METRIC.findall(promql):
        family = found
        for suffix in ("_bucket", "_sum", "_count"):
            if found.endswith(suffix):
                family = found.removesuffix(suffix)
                break
        names.add(family)
    return names


def alert_rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    return data


def dashboard_exprs() -> list[str]:
    import json

    dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def rule_exprs() -> list[str]:
    return [rule["expr"] for group in alert_rules()["groups"] for rule in group["rules"]]
