"""The calibration monitor's spec: bins, minimum reads, intervals, the change test and its alerting."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.monitors.alerting.policy import AlertPolicy
from services.monitors.core.specs import MonitorSpec


class CalibrationSpec(MonitorSpec):
    """How the calibration monitor judges a window's probabilities against its reads.

    Attributes:
        bins: Equal-width probability bins for ECE and the reliability diagram.
        min_reads: Windows with fewer reads are reported as insufficient evidence.
        ci_level: Level of every interval.
        bootstrap_resamples: First-level resamples of the ECE interval (double bootstrap).
        inner_resamples: Second-level resamples per first-level one (calibrate the interval's level).
        null_resamples: Resamples of the ECE change test (its p-value resolution is 1 / (this + 1)).
        null_model: ``reference``: no change means the reads follow the reference's calibration (use when
            the reference is labelled like the window, e.g. by reads); ``perfect``: no change means perfect
            calibration.
        match_prevalence: The ECE change test's null is the reference reweighted to the prevalence the
            window's raw scores and reads imply (label shift, EM against the reference; each bin's read rate
            as an unchanged model would show it), so a prevalence change with the model unchanged is not
            miscalibration.
        map_tolerance: A served probability whose implied temperature differs from the reference's by more than
            this (relative) is off the calibration map.
        map_min_predictions: Predictions (with a logit away from 0) needed before the map is checked.
        min_slope_change: Relative change of the calibration slope against the reference's (read-labelled)
            slope below which a significant change is immaterial (0.25: 25% steeper or flatter). A wrong
            temperature scales the slope.
        min_ece_increase: ECE increase (over what the null predicts for this window) below which a
            significant change is immaterial.
        max_ece: Policy limit on the ECE itself; a point estimate above it is a warning. None for no limit.
        seed: Seed of the resampling, so a finding can be reproduced.
        alerting: Levels and correction.
        recalibrate_min_reads: A breached window with at least this many reads gets a recalibration proposal:
            a temperature fitted on part of its reads, with ECE before/after on the held-out part.
        recalibration_holdout: Share of the reads held out to judge the proposal.
    """

    bins: int = Field(default=10, ge=2, le=100)
    min_reads: int = Field(default=200, ge=10)
    ci_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    bootstrap_resamples: int = Field(default=200, ge=20)
    inner_resamples: int = Field(default=50, ge=10)
    null_resamples: int = Field(default=5000, ge=100)
    null_model: Literal["reference", "perfect"] = "reference"
    match_prevalence: bool = True
    map_tolerance: float = Field(default=0.01, gt=0.0)
    map_min_predictions: int = Field(default=20, ge=1)
    min_slope_change: float = Field(default=0.25, ge=0.0)
    min_ece_increase: float = Field(default=0.02, ge=0.0)
    max_ece: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int = Field(default=0, ge=0)
    alerting: AlertPolicy = AlertPolicy()
    recalibrate_min_reads: int = Field(default=300, ge=20)
    recalibration_holdout: float = Field(default=0.3, gt=0.0, lt=1.0)
