"""The monitor runner's settings (``RADGUARD_*`` environment variables), on top of the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.monitors.core.findings import MonitorKind
from services.runtime.config import ServiceSettings

FINDINGS_TOPIC = "radguard.findings.v1"


class MonitorRunnerSettings(ServiceSettings):
    """Everything the monitor runner is configured with.

    Targets are every combination of ``monitor_model``, ``monitor_versions`` and ``monitor_arms``; each
    version's reference profile is read from ``<monitor_model_repo>/<model>/<version>/reference_profile.npz``.
    """

    service_name: str = "monitor-runner"
    grpc_port: int = Field(default=19072, ge=0, le=65535, description="health endpoint")
    metrics_port: int = Field(default=19472, ge=0, le=65535)
    monitor_model: str = Field(default="chest_nodule", min_length=1, description="model whose versions to watch")
    monitor_versions: tuple[str, ...] = Field(default=("1",), min_length=1, description="versions to watch")
    monitor_arms: tuple[str, ...] = Field(default=("stable", "canary"), min_length=1, description="arms to watch")
    monitor_kinds: tuple[MonitorKind, ...] = Field(
        default=(MonitorKind.DRIFT, MonitorKind.CALIBRATION, MonitorKind.BIAS, MonitorKind.PERFORMANCE),
        min_length=1,
    )
    monitor_model_repo: Path = Field(default=Path("model_repo"), description="where reference profiles live")
    monitor_specs_dir: Path | None = Field(
        default=None, description="folder of <kind>.yaml specs; defaults are used for kinds without a file"
    )
    monitor_reports_dir: Path = Field(default=Path("reports"), description="where Evidently reports go")
    monitor_window_size: int = Field(default=1000, ge=2, description="latest predictions per window")
    monitor_window_hours: float | None = Field(
        default=None, gt=0, description="also bound windows by time: predictions of the last N hours only"
    )
    monitor_interval_s: float = Field(default=300.0, gt=0, description="time between runs")
    monitor_skip_unchanged: bool = Field(
        default=True, description="issue nothing for a window that has not changed since the previous pass"
    )
    monitor_status_file: Path | None = Field(
        default=None, description="JSON file rewritten after every pass (time, findings, breaches)"
    )
    findings_topic: str = Field(default=FINDINGS_TOPIC, min_length=1)
    postgres_pool_max_size: int = Field(default=2, ge=1)
