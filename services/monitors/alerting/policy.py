"""Turning test results into info / warning / breach, with the false-alarm rate under no change controlled.

A monitor's window yields a family of hypothesis tests (drift: one per column and stratum; bias: one per
subgroup and metric; ...). The policy adjusts the family's p-values (Holm by default) and then:

- breach: adjusted p <= ``alpha_breach`` and the effect is material (at least the spec's minimum);
- warning: adjusted p <= ``alpha_warning`` and the effect is material;
- info: everything else (a significant but immaterial effect is noted, not alerted).

With Holm, the probability that a window with no change raises any breach is at most ``alpha_breach``
whatever the dependence between the tests (at most ``alpha_warning`` for a warning), so over many
windows the expected share of false breaches is at most ``alpha_breach``. Benjamini–Hochberg gives the
same guarantee when nothing changed (for independent or positively dependent tests) and more power when
several things did. Policy limits (e.g. "AUROC at least 0.85") are judged separately by
:func:`limit_severity`: a warning when the point estimate is beyond the limit, a breach when the
one-sided (1 - ``alpha_breach``) confidence bound is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel.multiple_testing import Correction, adjust
from services.monitors.core.findings import Severity, Statistic


class AlertPolicy(BaseModel):
    """Significance levels and the multiple-testing correction of one monitor's findings.

    Attributes:
        alpha_warning: Family-wise level for a warning.
        alpha_breach: Family-wise level for a breach (at most ``alpha_warning``).
        correction: Correction across the tests of one window.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha_warning: float = Field(default=0.01, gt=0.0, lt=1.0)
    alpha_breach: float = Field(default=0.001, gt=0.0, lt=1.0)
    correction: Correction = "holm"

    @model_validator(mode="after")
    def _ordered(self) -> AlertPolicy:
        if self.alpha_breach > self.alpha_warning:
            raise ValueError(f"alpha_breach ({self.alpha_breach}) must not exceed alpha_warning ({self.alpha_warning})")
        return self

    def severity(self, p_adjusted: float, material: bool) -> Severity:
        """Severity of one adjusted p-value given whether its effect is material."""
        if material and p_adjusted <= self.alpha_breach:
            return Severity.BREACH
        if material and p_adjusted <= self.alpha_warning:
            return Severity.WARNING
        return Severity.INFO


@dataclass(frozen=True)
class Hypothesis:
    """A test's statistic (with its raw p-value) and whether its effect is large enough to matter.

    Attributes:
        statistic: The statistic; ``p_value`` must be set.
        material: True when the effect reaches the spec's minimum.
    """

    statistic: Statistic
    material: bool


_IMMATERIAL = "significant but below the minimum effect"


def judge(hypotheses: Sequence[Hypothesis], policy: AlertPolicy) -> list[Statistic]:
    """Adjust a family's p-values together and give each statistic its severity.

    Args:
        hypotheses: Every test of the family (one window of one monitor).
        policy: Levels and correction.

    Returns:
        The statistics, in the same order, with ``p_value_adjusted``, ``adjustment`` and ``severity`` set.

    Raises:
        ValueError: If a statistic has no p-value.
    """
    if any(h.statistic.p_value is None for h in hypotheses):
        raise ValueError("every hypothesis needs a p-value")
    raw = np.array([h.statistic.p_value for h in hypotheses], dtype=np.float64)
    adjusted = adjust(np.nan_to_num(raw, nan=1.0), policy.correction)
    adjustment = "" if policy.correction == "none" else policy.correction
    judged = []
    for hypothesis, p in zip(hypotheses, adjusted, strict=True):
        severity = policy.severity(float(p), hypothesis.material)
        note = hypothesis.statistic.note
        if not hypothesis.material and p <= policy.alpha_warning:
            note = f"{note}; {_IMMATERIAL}" if note else _IMMATERIAL
        updated = replace(hypothesis.statistic, p_value_adjusted=float(p), adjustment=adjustment, note=note)
        judged.append(replace(updated, severity=severity))
    return judged


def limit_severity(value: float, breach_bound: float, limit: float, *, higher_is_worse: bool) -> Severity:
    """Severity of a statistic against a policy limit.

    Args:
        value: Point estimate.
        breach_bound: One-sided (1 - alpha_breach) confidence bound on the favourable side (the lower bound
            when higher is worse, the upper bound otherwise).
        limit: The policy limit.
        higher_is_worse: Direction of the limit (e.g. True for "ECE at most", False for "AUROC at least").

    Returns:
        Breach when even the bound is beyond the limit, warning when the point is, info otherwise (also for
        NaN values: no evidence is not an alarm).
    """

    def beyond(x: float) -> bool:
        return bool(np.isfinite(x)) and (x > limit if higher_is_worse else x < limit)

    if beyond(breach_bound):
        return Severity.BREACH
    if beyond(value):
        return Severity.WARNING
    return Severity.INFO
