"""How small a change a reference can detect: the power statement each reference carries.

The bias monitor compares a subgroup's read-labelled sensitivity in a window with the same subgroup of the
reference. With a one-sided two-proportion comparison at level ``alpha / tests`` (Holm's first step, the
strictest), the smallest drop detected with probability ``power`` is

    (z_{1 - alpha/tests} + z_{power}) * sqrt(p (1 - p) / n_reference + p (1 - p) / n_window)

where n are read-positives. This is the formula behind the power table of docs/MONITORING.md (16
subgroups, Holm at 0.01, windows of 600 read-positives, sensitivity 0.77).
"""

from __future__ import annotations

import math

from kernel.distributions import normal_quantile

#: The assumptions of docs/MONITORING.md's power table.
WINDOW_READ_POSITIVES = 600
SENSITIVITY = 0.77
ALPHA = 0.01
TESTS = 16
POWER = 0.8


def minimal_detectable_drop(
    reference_positives: int,
    *,
    window_positives: int = WINDOW_READ_POSITIVES,
    sensitivity: float = SENSITIVITY,
    alpha: float = ALPHA,
    tests: int = TESTS,
    power: float = POWER,
) -> float:
    """Smallest drop of read-labelled sensitivity a subgroup's comparison detects (inf without positives).

    Args:
        reference_positives: Read-positives of the subgroup in the reference.
        window_positives: Read-positives of the subgroup in the window judged.
        sensitivity: The subgroup's read-labelled sensitivity.
        alpha: Family-wise level.
        tests: Tests in the family (Bonferroni/Holm's first step).
        power: Probability of detecting the drop.

    Raises:
        ValueError: On a level, power or sensitivity outside (0, 1), or fewer than one test.
    """
    for name, value in (("alpha", alpha), ("power", power), ("sensitivity", sensitivity)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    if tests < 1:
        raise ValueError(f"tests must be >= 1, got {tests}")
    if reference_positives <= 0 or window_positives <= 0:
        return math.inf
    variance = sensitivity * (1.0 - sensitivity) * (1.0 / reference_positives + 1.0 / window_positives)
    z = normal_quantile(1.0 - alpha / tests) + normal_quantile(power)
    return z * math.sqrt(variance)
