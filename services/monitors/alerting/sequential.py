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

A monitor's evidence is often local: one site's new scanner, one subgroup's missed nodules. Mixing every
test of a block into one Bonferroni p-value dilutes such a change by the number of tests, and a subgroup
with a handful of reads per block may never reach a block-sized test at all. So a chart runs one CUSUM per
*scope* (the finding's ``subgroup``: the whole window, ``site=site-C``, ``sex=male,age_band=50-69``), each fed
by the Bonferroni p-value of its own tests, and the monitor alarms when any scope does. The scopes share the
monitor's false-alarm budget by a union bound: with ``S`` scopes each runs at ``S`` times the monitor's
in-control run length (:func:`scoped_parameters`), which raises ``h`` only logarithmically in ``S``.

This module is pure: the runner keeps the state (:class:`CusumState`) in PostgreSQL so restarts keep it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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
        statistic: Current CUSUM value ``S_t`` (0 after an alarm); with scopes, the largest scope's value.
        steps: Blocks judged since the chart started.
        alarms: Alarms raised since the chart started.
        since_alarm: Blocks judged since the last alarm (or the start).
        scopes: Each scope's CUSUM value, sorted by scope (empty for a chart that was never scoped).
    """

    statistic: float = 0.0
    steps: int = 0
    alarms: int = 0
    since_alarm: int = 0
    scopes: tuple[tuple[str, float], ...] = ()


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


@dataclass(frozen=True)
class ScopedStep:
    """The outcome of one block on a scoped chart.

    Attributes:
        state: The state after the block.
        parameters: The per-scope ``k`` and ``h`` the block was judged with.
        z: Each judged scope's (clipped) probit score.
        peaks: Each judged scope's ``S_t`` before any restart.
        alarmed: Scopes whose chart crossed ``h`` on this block (sorted).
    """

    state: CusumState
    parameters: CusumParameters
    z: dict[str, float]
    peaks: dict[str, float]
    alarmed: tuple[str, ...]

    @property
    def alarm(self) -> bool:
        """Whether any scope alarmed."""
        return bool(self.alarmed)

    @property
    def top(self) -> str | None:
        """The judged scope with the largest peak (an alarmed one first), or None when none was judged."""
        if not self.peaks:
            return None
        return max(self.peaks, key=lambda scope: (scope in self.alarmed, self.peaks[scope], scope))


def scoped_parameters(parameters: CusumParameters, scopes: int) -> CusumParameters:
    """``k`` and ``h`` for each of ``scopes`` charts that share the in-control run length of ``parameters``.

    Union bound: a false alarm on any of ``S`` charts comes no sooner on average than ``ARL0 / S`` if each chart
    runs at ``S * ARL0`` (Siegmund's ARL0 of ``parameters``). One scope keeps ``parameters`` as they are.
    """
    if scopes <= 1:
        return parameters
    arl0 = siegmund_arl(0.0, parameters)
    return CusumParameters(parameters.k, threshold_for_arl0(arl0 * scopes, parameters.k))


def step_scopes(state: CusumState, p_values: Mapping[str, float], parameters: CusumParameters) -> ScopedStep:
    """Feed one block's p-value per scope into the scoped chart.

    Args:
        state: The chart before the block.
        p_values: Scope → the block's p-value for "nothing changed" in that scope. Scopes without evidence
            this block keep their value.
        parameters: The monitor's ``k`` and ``h`` (for one chart); each scope runs with
            :func:`scoped_parameters` over every scope the chart has seen.

    Returns:
        The new state; an alarmed scope restarts at 0, the others keep their value.
    """
    values = dict(state.scopes)
    scoped = scoped_parameters(parameters, len(set(values) | set(p_values)))
    z = {scope: probit_evidence(p) for scope, p in p_values.items()}
    peaks = {scope: max(0.0, values.get(scope, 0.0) + score - scoped.k) for scope, score in z.items()}
    alarmed = tuple(sorted(scope for scope, peak in peaks.items() if peak > scoped.h))
    for scope, peak in peaks.items():
        values[scope] = 0.0 if scope in alarmed else peak
    updated = CusumState(
        statistic=max(values.values(), default=0.0),
        steps=state.steps + 1,
        alarms=state.alarms + int(bool(alarmed)),
        since_alarm=0 if alarmed else state.since_alarm + 1,
        scopes=tuple(sorted(values.items())),
    )
    return ScopedStep(updated, scoped, z, peaks, alarmed)


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
