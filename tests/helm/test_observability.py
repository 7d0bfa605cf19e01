"""Alert rules parse (promtool), the PrometheusRule and dashboard ConfigMap carry them, the dashboard loads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helm.chart import CHART, alert_rules, dashboard_exprs, of_kind, rendered

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
EXTERNAL = CHART / "ci" / "external-tls-values.yaml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise RuntimeError("promtool not found: run scripts/setup.sh (it installs Debian's prometheus package)")
    return found


def _check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)


def test_promtool_accepts_the_alert_rules() -> None:
    result = _check_rules(ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_promtool_rejects_a_rule_whose_promql_does_not_parse(tmp_path: Path) -> None:
    """Guard: the check above would notice a broken expression."""
    rules = alert_rules()
    rules["groups"][0]["rules"][0]["expr"] = "sum(rate(radguard_grpc_server_handled_total[5m])"
    broken = tmp_path / "alerts.yaml"
    broken.write_text(yaml.safe_dump(rules))
    result = _check_rules(broken)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert '"RadguardGatewayErrorRate": could not parse expression' in output
    assert "unclosed left parenthesis" in output


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # Grafana's $namespace variable is filled in before the query reaches Prometheus; stand in a value.
    records = [
        {"record": f"radguard:dashboard_query_{i}", "expr": expr.replace("$namespace", "radiology")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = _check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(records)} rules found" in result.stdout


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    names = []
    for group in alert_rules()["groups"]:
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    assert {
        "RadguardGatewayErrorRate",
        "RadguardGatewayLatencyHigh",
        "RadguardGatewaySpoolBacklog",
        "RadguardLedgerLag",
        "RadguardMonitorPassStale",
        "RadguardBreachFinding",
        "RadguardRolloutAborted",
    } <= set(names)


def test_the_prometheus_rule_ships_the_rule_file_unchanged() -> None:
    (rule,) = of_kind(rendered(EXTERNAL), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == alert_rules()


def test_the_service_monitor_scrapes_every_metrics_port_as_its_component() -> None:
    docs = rendered(EXTERNAL)
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["relabelings"][0]["targetLabel"] == "job"
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        svc["metadata"]["labels"]["app.kubernetes.io/component"]
        for svc in of_kind(docs, "Service")
        if all(svc["metadata"]["labels"].get(k) == v for k, v in selector.items())
        and any(p["name"] == "metrics" for p in svc["spec"]["ports"])
    ]
    assert sorted(scraped) == ["dashboard", "feedback", "gateway", "governance", "ledger", "monitor", "triton"]


def test_observability_objects_are_off_unless_asked_for() -> None:
    docs = rendered(CHART / "ci" / "default-values.yaml")
    assert not of_kind(docs, "ServiceMonitor") and not of_kind(docs, "PrometheusRule")


#: What Grafana needs to import a dashboard, and the panel fields this one relies on.
DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {"type": "array", "items": {"type": "object", "required": ["name", "type"]}},
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["row", "timeseries", "stat", "gauge", "table", "text"]},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                        },
                    },
                    "targets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr"],
                            "properties": {"expr": {"type": "string", "minLength": 1}},
                        },
                    },
                },
                "if": {"properties": {"type": {"const": "timeseries"}}},
                "then": {"required": ["targets", "datasource"]},
            },
        },
    },
}


def test_the_grafana_dashboard_loads_and_matches_the_dashboard_schema() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace"}
    titles = " ".join(p["title"].lower() for p in dashboard["panels"] if p["type"] == "row")
    for area in ("gateway", "kafka", "ledger", "monitors", "rollouts"):
        assert area in titles


def test_a_dashboard_with_a_broken_panel_is_refused() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    del dashboard["panels"][1]["targets"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dashboard, DASHBOARD_SCHEMA)


def test_the_dashboard_config_map_carries_the_json_for_grafanas_sidecar() -> None:
    (config_map,) = of_kind(rendered(CHART / "ci" / "default-values.yaml"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["radguard.json"]) == json.loads(DASHBOARD.read_text())
