"""Calibration monitor: do the served probabilities match how often radiologists read a finding?

ECE with a bootstrap interval, reliability bins, Brier score, calibration slope and intercept, a
resampling test of whether calibration got worse than the reference's, and recalibration proposals
(temperature scaling with torch, judged on held-out reads; torch is imported only by
:mod:`services.monitors.calibration.temperature`).
"""

from kernel.calibration import (
    BinTotals,
    EceChangeTest,
    EceInterval,
    ReliabilityBin,
    basic_bootstrap_interval,
    bin_index,
    bootstrap_ece,
    brier_score,
    ece_change_test,
    ece_interval,
    reliability_bins,
)
from kernel.calibration_line import CalibrationLine, fit_calibration_line
from services.monitors.calibration.calculator import CalibrationMonitor, CalibrationSummary
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.calibration.temperature import (
    RecalibrationProposal,
    fit_temperature,
    propose_recalibration,
)

__all__ = [
    "BinTotals",
    "CalibrationLine",
    "CalibrationMonitor",
    "CalibrationSpec",
    "CalibrationSummary",
    "EceChangeTest",
    "EceInterval",
    "RecalibrationProposal",
    "ReliabilityBin",
    "basic_bootstrap_interval",
    "bin_index",
    "bootstrap_ece",
    "brier_score",
    "ece_change_test",
    "ece_interval",
    "fit_calibration_line",
    "fit_temperature",
    "propose_recalibration",
    "reliability_bins",
]
