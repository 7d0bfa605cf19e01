"""Alerting policy of the monitors: info / warning / breach, and how false alarms are kept rare.

See :mod:`services.monitors.alerting.policy` for the rule and its guarantee: per window, the tests of one
monitor form a family whose p-values are adjusted together (Holm by default), so with no change a window
breaches with probability at most ``alpha_breach`` (default 0.001) and warns with probability at most
``alpha_warning`` (default 0.01), however many columns or subgroups are tested.
"""

from kernel.multiple_testing import Correction, adjust, benjamini_hochberg, holm
from services.monitors.alerting.policy import AlertPolicy, Hypothesis, judge, limit_severity

__all__ = [
    "AlertPolicy",
    "Correction",
    "Hypothesis",
    "adjust",
    "benjamini_hochberg",
    "holm",
    "judge",
    "limit_severity",
]
