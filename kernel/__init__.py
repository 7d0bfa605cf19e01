"""Shared vocabulary and statistics of radguard: subgroup labels and the estimators every part uses.

One place for what several processes must agree on: how a patient's age becomes an age band, how sex and
scanners are named, and the statistics (intervals, AUROC with DeLong's variance, calibration error,
multiple-testing corrections) that monitors and governance gates both report. Pure code over numpy, scipy
and the standard library; it imports nothing else of radguard, so the gateway, the monitors, modeling and
governance can all depend on it without depending on each other.
"""
