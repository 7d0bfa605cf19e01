"""False alarms controlled over time: a CUSUM over the evidence of consecutive, non-overlapping blocks.

Judging a sliding window every pass at a per-window level alpha raises a false alarm every ~1/alpha passes,
and overlapping windows repeat the same chance result pass after pass. Instead, each monitor of each target
turns every new block of traffic (data not seen by any earlier block) into one p-value for "nothing changed"
and feeds its probit score ``z = Phi^-1(1 - p)`` into a one-sided CUSUM::

    S_0 = 0,   S_t = max(0, S_{t-1} + z_t - k),   alarm when S_t > h (then S restarts at 0).

With no change a valid p-value is uniform (or stochastically larger), so ``z`` is standard normal (or
stochastically smaller) and the run length to a false alarm is that of the textbook normal CUSUM: Siegmund's
approximation gives its mean (ARL0) as a function of ``k`` and ``h``, and :func:`threshold_for_arl0` inverts
it. A change that moves the mean of ``z`` to ``delta > k`` is found after about ``(h + 1.166) / (delta - k)``
blocks; a change whose single block already gives ``z > h + k`` is found at once.

This module is pure: the runner keeps the state (:class:`CusumState`) in PostgreSQL so restarts keep it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from scipy.special import ndtri

#: Probit scores are clipped to this range: a p-value of exactly 0 or 1 must not be infinite evidence.
Z_MIN = -4.0
Z_MAX = 8.0
#: Siegmund's correction for the overshoot of a normal random walk over a boundary (rho = 0.583, twice).
SIEGMUND_SHIFT = 1.166


@dataclass(frozen=True)
class CusumParameters:
    """Reference value and decision threshold of a CUSUM on standard-normal evidence.

    Attributes:
        k: Allowance subtracted from every step (half the shift in ``z`` the chart is tuned for).
        h: Decision threshold.
    """

    k: float = 0.5
    h: float = 5.0

    def __post_init__(self) -> None:
        if not self.k > 0.0:
            raise ValueError(f"k must be positive, got {self.k}")
        if not self.h > 0.0:
            raise ValueError(f"h must be positive, got {self.h}")


@dataclass(frozen=True)
class CusumState:
    """Where one monitor's chart of one target stands.

    Attributes:
        statistic: Current CUSUM value ``S_t`` (0 after an alarm).
        steps: Blocks judged since the chart started.
        alarms: Alarms raised since the chart started.
        since_alarm: Blocks judged since the last alarm (or the start).
    """

    statistic: float = 0.0
    steps: int = 0
    alarms: int = 0
    since_alarm: int = 0


@dataclass(frozen=True)
class CusumStep:
    """The outcome of one block.

    Attributes:
        state: The state after the block.
        z: The block's (clipped) probit score.
        peak: ``S_t`` before any restart (the value compared with ``h``).
        alarm: Whether this block raised an alarm.
    """

    state: CusumState
    z: float
    peak: float
    alarm: bool


def probit_evidence(p_value: float) -> float:
    """The standard-normal score of a p-value, ``Phi^-1(1 - p)``, clipped to ``[Z_MIN, Z_MAX]``.

    Raises:
        ValueError: ``p_value`` is NaN or outside [0, 1].
    """
    if math.isnan(p_value) or not 0.0 <= p_value <= 1.0:
        raise ValueError(f"a p-value lies in [0, 1], got {p_value}")
    # ndtri(1 - p) loses precision for tiny p; -ndtri(p) is the same value computed from the small side.
    z = float(-ndtri(p_value)) if p_value > 0.0 else Z_MAX
    return min(max(z, Z_MIN), Z_MAX)


def bonferroni_global(p_values: Iterable[float]) -> float | None:
    """A p-value for "no test of the family is off": ``min(1, m * min p)`` over the finite p-values.

    Valid under any dependence between the tests; None when there is no finite p-value (no evidence, so
    the block must not move the chart).
    """
    finite = [p for p in p_values if not math.isnan(p)]
    if not finite:
        return None
    return min(1.0, len(finite) * min(finite))


def step(state: CusumState, p_value: float, parameters: CusumParameters) -> CusumStep:
    """Feed one block's p-value into the chart.

    Args:
        state: The chart before the block.
        p_value: The block's p-value for "nothing changed".
        parameters: ``k`` and ``h``.

    Returns:
        The new state; on an alarm the statistic restarts at 0 (the next false alarm is again ARL0 away).
    """
    z = probit_evidence(p_value)
    peak = max(0.0, state.statistic + z - parameters.k)
    alarm = peak > parameters.h
    updated = replace(
        state,
        statistic=0.0 if alarm else peak,
        steps=state.steps + 1,
        alarms=state.alarms + int(alarm),
        since_alarm=0 if alarm else state.since_alarm + 1,
    )
    return CusumStep(updated, z, peak, alarm)


def siegmund_arl(mean: float, parameters: CusumParameters) -> float:
    """Siegmund's approximation of the average run length of the chart when ``z ~ N(mean, 1)``.

    ``ARL = (exp(-2 d b) + 2 d b - 1) / (2 d^2)`` with ``d = mean - k`` and ``b = h + 1.166``; ``b^2`` when
    ``d = 0``.
    """
    d = mean - parameters.k
    b = parameters.h + SIEGMUND_SHIFT
    if abs(d) < 1e-12:
        return b * b
    return (math.exp(-2.0 * d * b) + 2.0 * d * b - 1.0) / (2.0 * d * d)


def threshold_for_arl0(arl0: float, k: float = 0.5) -> float:
    """The smallest ``h`` whose in-control average run length (Siegmund) is at least ``arl0`` blocks.

    Raises:
        ValueError: ``arl0`` is not above 1.
    """
    if not arl0 > 1.0:
        raise ValueError(f"an in-control run length is more than one block, got {arl0}")
    low, high = 1e-6, 1.0
    while siegmund_arl(0.0, CusumParameters(k, high)) < arl0:
        high *= 2.0
    for _ in range(200):  # bisection; the run length grows monotonically with h
        middle = (low + high) / 2.0
        if siegmund_arl(0.0, CusumParameters(k, middle)) < arl0:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class FalseAlarmBudget:
    """How rarely a chart may alarm with no change, in the terms operators use.

    Attributes:
        days: Expected days to a false breach for one target, all its monitors together.
        studies_per_day: Traffic the budget is stated for.
        block_size: Predictions per block (one chart step each).
        monitors: Charts per target sharing the budget (each gets ``days * monitors`` on its own).
    """

    days: float = 30.0
    studies_per_day: float = 1000.0
    block_size: int = 250
    monitors: int = 4

    @property
    def blocks_per_day(self) -> float:
        """Chart steps per day at the stated traffic."""
        return self.studies_per_day / self.block_size

    @property
    def arl0_per_chart(self) -> float:
        """In-control run length each chart needs, in blocks (a union bound over the target's charts)."""
        return self.days * self.blocks_per_day * self.monitors

    def parameters(self, k: float = 0.5) -> CusumParameters:
        """The chart meeting the budget with allowance ``k``."""
        return CusumParameters(k, threshold_for_arl0(self.arl0_per_chart, k))
