"""The drift monitor's spec: which columns to test, how to stratify, minimum sizes and effects, alerting."""

from __future__ import annotations

from pydantic import Field

from services.monitors.alerting.policy import AlertPolicy
from services.monitors.core.specs import MonitorSpec
from services.monitors.core.window import AGE_BAND, MANUFACTURER, MANUFACTURER_MODEL, SEX, SITE


class DriftSpec(MonitorSpec):
    """How the drift monitor compares a window with the version's reference.

    Attributes:
        numeric_features: Numeric features to test with Kolmogorov–Smirnov; None tests every feature the
            reference and the window both carry.
        include_score: Also test the output score distribution (feature ``output.score``).
        categorical_attributes: Categorical attributes to test with chi-square: acquisition metadata and the
            case mix (sex, age band) by default.
        stratify_by: Attributes whose values get their own numeric tests (e.g. per site), so a shift at one
            site is not diluted by the others.
        min_window: Windows smaller than this are reported as insufficient evidence.
        min_stratum: A stratum is tested only when both its window and reference parts reach this size.
        min_ks_statistic: KS statistic below which a significant difference is immaterial.
        min_cramers_v: Cramér's V below which a significant category shift is immaterial.
        mean_shift: Test each scope's numeric inputs together for a shift of their mean (Hotelling's T² with
            the reference's Ledoit–Wolf covariance) and feed the runner's charts with that test, the output
            score's KS test of each scope and the category tests (marked ``sequential``); False feeds the
            charts with every test, as before the mean-shift test existed.
        min_mean_shift: Mahalanobis distance (reference SD units) below which a significant mean shift is
            immaterial for the block's own severity (the chart uses the p-value).
        alerting: Levels and correction across all tests of a window.
    """

    numeric_features: tuple[str, ...] | None = None
    include_score: bool = True
    categorical_attributes: tuple[str, ...] = (SITE, MANUFACTURER, MANUFACTURER_MODEL, SEX, AGE_BAND)
    stratify_by: tuple[str, ...] = (SITE,)
    min_window: int = Field(default=100, ge=2)
    min_stratum: int = Field(default=50, ge=2)
    min_ks_statistic: float = Field(default=0.05, ge=0.0, le=1.0)
    min_cramers_v: float = Field(default=0.05, ge=0.0, le=1.0)
    mean_shift: bool = True
    min_mean_shift: float = Field(default=0.1, ge=0.0)
    alerting: AlertPolicy = AlertPolicy()
