"""The monitor runner's pass metrics: the last pass's time and the findings by severity."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from services.monitors.core.findings import MonitorKind, Severity
from services.monitors.runner.metrics import MonitorPassMetrics
from services.runtime.metrics import Metrics


def _issued(kind: MonitorKind, severity: Severity, version: str = "2") -> Any:
    finding = SimpleNamespace(kind=kind, severity=severity, model_name="chest_nodule", model_version=version)
    return SimpleNamespace(finding_id="f", issued_at=None, finding=finding)


def test_a_completed_pass_sets_its_time_and_counts_findings_by_severity() -> None:
    metrics = Metrics()
    recorder = MonitorPassMetrics(metrics)
    recorder.completed(
        [_issued(MonitorKind.DRIFT, Severity.BREACH), _issued(MonitorKind.DRIFT, Severity.BREACH)], now=1_700_000_000.0
    )
    recorder.completed([_issued(MonitorKind.CALIBRATION, Severity.WARNING, "1")], now=1_700_000_300.0)
    text = metrics.render().decode()
    assert "radguard_monitor_last_pass_timestamp_seconds 1.7000003e+09" in text
    assert (
        'radguard_monitor_findings_total{kind="drift",model="chest_nodule",severity="breach",version="2"} 2.0' in text
    )
    assert (
        'radguard_monitor_findings_total{kind="calibration",model="chest_nodule",severity="warning",version="1"} 1.0'
        in text
    )
    assert 'radguard_monitor_passes_total{outcome="completed"} 2.0' in text


def test_a_skipped_pass_leaves_the_last_pass_time_alone() -> None:
    metrics = Metrics()
    recorder = MonitorPassMetrics(metrics)
    recorder.completed([], now=1_700_000_000.0)
    recorder.skipped()
    text = metrics.render().decode()
    assert "radguard_monitor_last_pass_timestamp_seconds 1.7e+09" in text
    assert 'radguard_monitor_passes_total{outcome="skipped"} 1.0' in text
