"""Bias monitor: performance per patient subgroup (sex, age band, site, manufacturer, and the spec's
intersections), with intervals, gaps to the overall and to the stable version, and degradation tests
against the reference. Small subgroups are reported as insufficient evidence, never as alarms.
"""

from services.monitors.bias.calculator import BiasMonitor
from services.monitors.bias.spec import BiasSpec
from services.monitors.bias.subgroups import Subgroup, enumerate_subgroups

__all__ = ["BiasMonitor", "BiasSpec", "Subgroup", "enumerate_subgroups"]
