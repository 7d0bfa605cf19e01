"""The bias monitor's spec: which subgroups, which metrics alert, minimum evidence, limits, alerting."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from services.monitors.alerting.policy import AlertPolicy
from services.monitors.core.classification import METRICS, DegradationTest
from services.monitors.core.specs import MonitorSpec
from services.monitors.core.window import AGE_BAND, MANUFACTURER, SEX, SITE


class BiasSpec(MonitorSpec):
    """How the bias monitor compares subgroups.

    Attributes:
        attributes: Attributes whose every value is a subgroup (``sex=female``, ``site=site-B``, ...).
        intersections: Attribute combinations whose value combinations are subgroups too
            (``sex=female,age_band=70+``): harms often sit where two attributes meet.
        alert_metrics: Metrics whose degradation against the reference raises alerts (the others are
            reported with their intervals).
        breach_metrics: The pre-declared primary family: alert metrics whose degradation may breach. Their
            tests across subgroups are Holm-adjusted together at ``alerting``; the other alert metrics form
            a secondary family, adjusted on its own and reported at most as a warning.
        degradation_test: ``rank``: sensitivity/specificity degradations are tested with a one-sided
            Mann–Whitney test on the subgroup's read-positive/negative scores (more power per read);
            ``proportion``: with a two-proportion z-test.
        min_positives: A subgroup with fewer read-positives (with a decision) in the window is reported as
            insufficient evidence, not tested.
        min_negatives: The same for read-negatives.
        min_reference: The reference subgroup needs this many positives and negatives to test against.
        sequential_min_reads: A subgroup's block gives sequential evidence (for the runner's chart) from this
            many reads of the metric's class (read-positives for sensitivity).
        reference_margin_sd: The sequential evidence counts only a drop beyond this many standard errors of
            the reference's own proportion: that error is the same in every block, so a chart would add it
            up as if it were a change (see ``bias.calculator.drop_evidence``). 0 trusts the reference as exact.
        min_worsening: Worsening of an alert metric (points, e.g. 0.05 = 5 points) below which a
            significant change is immaterial.
        max_gap: Policy limits on a subgroup's gap to the overall value, by metric, in the worse
            direction (e.g. ``{"sensitivity": 0.1}``): warning when the gap's point estimate exceeds
            it, breach when its one-sided (1 - alpha_breach / subgroups) bound does.
        ci_level: Level of every reported interval.
        alerting: Levels and correction within each family (subgroups x its metrics). ``alpha_breach`` 0.01
            on the primary family keeps no-change windows with a breach at most 1% (Holm's family-wise
            bound; measured lower, as the subgroups overlap).
    """

    attributes: tuple[str, ...] = (SEX, AGE_BAND, SITE, MANUFACTURER)
    intersections: tuple[tuple[str, ...], ...] = ((SEX, AGE_BAND),)
    alert_metrics: tuple[str, ...] = ("sensitivity", "specificity")
    breach_metrics: tuple[str, ...] = ("sensitivity",)
    degradation_test: DegradationTest = "rank"
    min_positives: int = Field(default=30, ge=1)
    min_negatives: int = Field(default=30, ge=1)
    min_reference: int = Field(default=30, ge=1)
    sequential_min_reads: int = Field(default=5, ge=1)
    reference_margin_sd: float = Field(default=1.5, ge=0.0)
    min_worsening: float = Field(default=0.05, ge=0.0)
    max_gap: dict[str, float] = Field(default_factory=dict)
    ci_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    alerting: AlertPolicy = AlertPolicy(alpha_warning=0.02, alpha_breach=0.01)

    @field_validator("alert_metrics")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown} (known: {', '.join(METRICS)})")
        return value

    @model_validator(mode="after")
    def _breach_metrics_alert(self) -> BiasSpec:
        outside = sorted(set(self.breach_metrics) - set(self.alert_metrics))
        if outside:
            raise ValueError(f"breach metrics {outside} are not alert metrics {list(self.alert_metrics)}")
        return self

    @field_validator("max_gap")
    @classmethod
    def _known_limits(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown} (known: {', '.join(METRICS)})")
        if any(limit < 0 for limit in value.values()):
            raise ValueError("gap limits must be non-negative")
        return value
