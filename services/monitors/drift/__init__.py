"""Drift monitor: input descriptors, acquisition metadata and output scores against the version's reference.

The streaming path (:class:`DriftMonitor`) is vectorised numpy: Kolmogorov–Smirnov per numeric column
(overall and per stratum), chi-square per categorical column, Holm across all tests of a window. The
Evidently report (:func:`write_evidently_report`, in its own module so Evidently is imported only there)
is the per-window document for people.
"""

from services.monitors.drift.calculator import SCORE_FEATURE, DriftMonitor, attribute_feature
from services.monitors.drift.spec import DriftSpec
from services.monitors.drift.two_sample import (
    CategoryCounts,
    ChiSquareResult,
    KsResult,
    SortedSample,
    chi_square_test,
    ks_statistic,
    ks_test,
)

__all__ = [
    "SCORE_FEATURE",
    "CategoryCounts",
    "ChiSquareResult",
    "DriftMonitor",
    "DriftSpec",
    "KsResult",
    "SortedSample",
    "attribute_feature",
    "chi_square_test",
    "ks_statistic",
    "ks_test",
]
