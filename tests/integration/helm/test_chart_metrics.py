"""Every metric the chart's alerts and Grafana dashboard use is one radguard's processes export.

Each service's /metrics on the real stack (its metrics port, as ``radguard stack status`` lists them) is read
once; a metric family counts as exported when the endpoint declares it (``# TYPE`` line), which holds for
labelled metrics before their first sample too.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import pytest

from tests.helm.chart import dashboard_exprs, metric_names, rule_exprs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

#: The stack component (the chart's job label) → the StackSettings field with its metrics port.
METRICS_PORTS = {
    "gateway": "gateway_metrics_port",
    "feedback": "feedback_metrics_port",
    "ledger": "ledger_metrics_port",
    "monitor": "monitor_metrics_port",
    "governance": "governance_metrics_port",
}
_TYPE = re.compile(r"^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$", re.MULTILINE)


@pytest.fixture(scope="module")
def exported(real_stack: Any) -> dict[str, set[str]]:
    """Metric families each component declares on its /metrics endpoint."""
    settings = real_stack.settings
    families: dict[str, set[str]] = {}
    for component, field in METRICS_PORTS.items():
        url = f"http://{settings.host}:{getattr(settings, field)}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        families[component] = {name for name, _ in _TYPE.findall(text)}
    return families


def _jobs(expr: str) -> set[str]:
    return set(re.findall(r'job="([a-z]+)"', expr))


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_used_is_exported_by_the_component_it_is_selected_from(
    source: str, exported: dict[str, set[str]]
) -> None:
    exprs = rule_exprs() if source == "alerts" else dashboard_exprs()
    everywhere = set().union(*exported.values())
    used = set()
    for expr in exprs:
        names = metric_names(expr)
        used |= names
        for name in names:
            assert name in everywhere, f"{source}: {name} is not exported by any radguard process ({expr})"
        for job in _jobs(expr):
            missing = names - exported[job]
            assert not missing, f"{source}: {sorted(missing)} not exported by {job} ({expr})"
    assert len(used) >= 10


def test_the_alerts_cover_what_operators_are_paged_for(exported: dict[str, set[str]]) -> None:
    used = set().union(*(metric_names(expr) for expr in rule_exprs()))
    assert {
        "radguard_grpc_server_handled_total",  # gateway error rate
        "radguard_grpc_server_handling_seconds",  # gateway latency
        "radguard_gateway_spool_pending_bytes",  # spool backlog
        "radguard_ledger_lag_records",  # ledger lag
        "radguard_monitor_last_pass_timestamp_seconds",  # monitor pass age
        "radguard_monitor_findings_total",  # a breach finding
        "radguard_governance_rollouts_aborted_total",  # rollout aborted
    } <= used
    assert "radguard_monitor_last_pass_timestamp_seconds" in exported["monitor"]
