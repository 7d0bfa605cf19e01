"""The monitor runner's settings (``RADGUARD_*`` environment variables), on top of the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kernel.topics import FINDINGS_TOPIC, ROUTES_TOPIC
from services.monitors.core.findings import MonitorKind
from services.runtime.config import ServiceSettings


class MonitorRunnerSettings(ServiceSettings):
    """Everything the monitor runner is configured with.

    With ``monitor_follow_routes`` (the default) the targets are every version on any arm of every model on
    the routes topic, kept current while running; otherwise every combination of ``monitor_model``,
    ``monitor_versions`` and ``monitor_arms``. Each version's reference profile is read from
    ``<monitor_model_repo>/<model>/<version>/reference_profile.npz``. The CUSUM threshold follows from the
    false-alarm budget: ``monitor_false_alarm_days`` expected to a false breach per target at
    ``monitor_studies_per_day``, with blocks of ``monitor_block_size`` predictions.
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
    monitor_follow_routes: bool = Field(default=True, description="monitor what the routes topic says is served")
    routes_topic: str = Field(default=ROUTES_TOPIC, min_length=1)
    routes_poll_s: float = Field(default=0.5, gt=0, description="longest wait of one routes poll")
    monitor_block_size: int = Field(default=500, ge=10, description="predictions per block (one CUSUM step)")
    monitor_max_blocks_per_pass: int = Field(default=8, ge=1, description="blocks judged per target and pass")
    monitor_block_settle_s: float = Field(
        default=0.0, ge=0, description="judge a block only once its newest prediction is this old (reads arrive)"
    )
    monitor_false_alarm_days: float = Field(default=30.0, gt=0, description="expected days to a false breach")
    monitor_studies_per_day: float = Field(default=1000.0, gt=0, description="traffic the budget is stated for")
    monitor_cusum_k: float = Field(default=0.5, gt=0, description="CUSUM allowance on the probit scale")
    monitor_interval_s: float = Field(default=300.0, gt=0, description="time between runs")
    outbox_batch: int = Field(default=200, ge=1, description="findings published per relay round")
    outbox_poll_s: float = Field(default=0.5, gt=0, description="relay wait between rounds when idle")
    outbox_retry_max_s: float = Field(default=5.0, gt=0, description="longest relay back-off while Kafka is down")
    outbox_drain_timeout_s: float = Field(default=5.0, ge=0, description="publishing what is pending at stop")
    monitor_status_file: Path | None = Field(
        default=None, description="JSON file rewritten after every pass (time, findings, breaches)"
    )
    findings_topic: str = Field(default=FINDINGS_TOPIC, min_length=1)
    postgres_pool_max_size: int = Field(default=2, ge=1)
