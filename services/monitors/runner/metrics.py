"""The monitor runner's Prometheus metrics: when the last pass finished, and the findings it issued.

``radguard_monitor_last_pass_timestamp_seconds`` (set when a pass completes, not when one is skipped) lets an
alert notice a runner that stopped judging; ``radguard_monitor_findings_total`` by model, version, kind and
severity lets one page on a breach. Labels carry model names and versions only, never patient data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from services.monitors.runner.ports import IssuedFinding
from services.runtime.metrics import Metrics


class MonitorPassMetrics:
    """Records each completed pass into a process's registry."""

    def __init__(self, metrics: Metrics) -> None:
        self.last_pass = metrics.gauge(
            "monitor_last_pass_timestamp_seconds", "Unix time the last completed monitor pass finished"
        )
        self.passes = metrics.counter("monitor_passes", "Monitor passes by outcome (completed or skipped)", ["outcome"])
        self.findings = metrics.counter(
            "monitor_findings",
            "Findings issued, by model, version, monitor kind and severity",
            ["model", "version", "kind", "severity"],
        )

    def completed(self, findings: Iterable[IssuedFinding], now: float | None = None) -> None:
        """A pass finished: count its findings and move the last-pass time."""
        for item in findings:
            finding = item.finding
            self.findings.labels(
                finding.model_name, finding.model_version, str(finding.kind.value), str(finding.severity.value)
            ).inc()
        self.passes.labels("completed").inc()
        self.last_pass.set(time.time() if now is None else now)

    def skipped(self) -> None:
        """A pass was skipped (a dependency unreachable): the last-pass time stays where it was."""
        self.passes.labels("skipped").inc()
