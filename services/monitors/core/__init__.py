"""Shared domain of the monitors' statistics: windows, findings, specs, and the estimators several monitors use.

Pure code: no gRPC, Kafka, database or generated contracts. The adapter that reads ledger windows and
publishes findings translates to and from these types.
"""

from kernel.intervals import newcombe_interval, proportion_decrease_pvalue, wilson_interval
from kernel.ranks import AurocEstimate, ShiftTest, auroc_delong, midranks, score_shift_test
from services.monitors.core.classification import (
    METRICS,
    Degradation,
    Estimate,
    GroupPerformance,
    degradation,
    group_performance,
    metric_statistics,
    scores_by_label,
)
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.reference import load_reference_profile
from services.monitors.core.specs import MonitorSpec
from services.monitors.core.window import AGE_BANDS, LabelMaturity, Window, age_bands

__all__ = [
    "AGE_BANDS",
    "METRICS",
    "AurocEstimate",
    "Degradation",
    "Estimate",
    "Finding",
    "GroupPerformance",
    "LabelMaturity",
    "MonitorKind",
    "MonitorSpec",
    "Severity",
    "ShiftTest",
    "Statistic",
    "Window",
    "age_bands",
    "auroc_delong",
    "degradation",
    "group_performance",
    "load_reference_profile",
    "metric_statistics",
    "midranks",
    "newcombe_interval",
    "proportion_decrease_pvalue",
    "score_shift_test",
    "scores_by_label",
    "wilson_interval",
]
