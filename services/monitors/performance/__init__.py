"""Performance monitor: realised AUROC, sensitivity, specificity and override rate as reads arrive, with
label maturity on every finding and one-sided tests against the reference or the stable arm."""

from services.monitors.performance.calculator import PerformanceMonitor
from services.monitors.performance.spec import PerformanceSpec

__all__ = ["PerformanceMonitor", "PerformanceSpec"]
