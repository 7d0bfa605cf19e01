"""The performance monitor's spec: which metrics alert, minimum reads, material changes, policy limits."""

from __future__ import annotations

from pydantic import Field, field_validator

from services.monitors.alerting.policy import AlertPolicy
from services.monitors.core.classification import METRICS, DegradationTest
from services.monitors.core.specs import MonitorSpec

_DEFAULT_WORSENING = {"sensitivity": 0.05, "specificity": 0.05, "ppv": 0.05, "auroc": 0.02, "override_rate": 0.03}


class PerformanceSpec(MonitorSpec):
    """How the performance monitor judges realised performance as reads arrive.

    Attributes:
        alert_metrics: Metrics whose degradation against the baseline raises alerts.
        degradation_test: ``proportion`` (two-proportion z-test on sensitivity/specificity) or ``rank``
            (one-sided Mann–Whitney on read-positive/negative scores); other metrics have fixed tests.
        min_reads: Windows with fewer reads are reported as insufficient evidence.
        min_worsening: Per metric, the worsening below which a significant change is immaterial.
        minimum: Policy floors (e.g. ``{"auroc": 0.85}``) for metrics where lower is worse.
        maximum: Policy ceilings (e.g. ``{"override_rate": 0.2}``) for metrics where higher is worse.
        adjust_prevalence: Judge against the reference reweighted to the window's estimated prevalence
            (label shift), so a prevalence change is reported as such and not as a loss of sensitivity.
        min_prevalence_change: Relative prevalence change (0.2 = 20%) reported as a warning.
        estimate_below_maturity: Below this share of predictions with reads, report confidence-based
            estimates (CBPE) of sensitivity, specificity and AUROC beside the realised metrics.
        seed: Seed of the estimates' sampling intervals.
        ci_level: Level of every reported interval.
        alerting: Levels and correction across the window's tests.
    """

    alert_metrics: tuple[str, ...] = ("auroc", "sensitivity", "specificity", "override_rate")
    degradation_test: DegradationTest = "proportion"
    min_reads: int = Field(default=100, ge=1)
    min_worsening: dict[str, float] = Field(default_factory=lambda: dict(_DEFAULT_WORSENING))
    minimum: dict[str, float] = Field(default_factory=dict)
    maximum: dict[str, float] = Field(default_factory=dict)
    adjust_prevalence: bool = True
    min_prevalence_change: float = Field(default=0.2, ge=0.0)
    estimate_below_maturity: float = Field(default=0.9, ge=0.0, le=1.0)
    seed: int = Field(default=0, ge=0)
    ci_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    alerting: AlertPolicy = AlertPolicy()

    @field_validator("alert_metrics")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown} (known: {', '.join(METRICS)})")
        return value

    @field_validator("min_worsening", "minimum", "maximum")
    @classmethod
    def _known_keys(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown} (known: {', '.join(METRICS)})")
        return value
