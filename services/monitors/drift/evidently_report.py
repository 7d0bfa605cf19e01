"""Evidently's data-drift report for a window, saved as HTML and JSON for people to open.

This is the one module that imports Evidently (slow to import, so it is imported on first use). The
streaming alerts come from :mod:`services.monitors.drift.calculator`; this report is the human-readable
companion of a window, and its per-column verdicts are summarised for cross-checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.monitors.core.window import Window
from services.monitors.drift.calculator import SCORE_FEATURE, attribute_feature
from services.monitors.drift.spec import DriftSpec

_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ColumnVerdict:
    """Evidently's verdict on one column.

    Attributes:
        column: Column name (the drift feature name).
        method: Evidently's method, e.g. ``K-S p_value``, ``Wasserstein distance (normed)``.
        value: The method's value (a p-value or a distance).
        threshold: Evidently's threshold for the method.
        drifted: Whether Evidently calls the column drifted (p-value below / distance at or above threshold).
    """

    column: str
    method: str
    value: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyReport:
    """A computed Evidently report and where it was saved.

    Attributes:
        html_path: The HTML report.
        json_path: The JSON report (Evidently's snapshot JSON).
        verdicts: Per-column verdicts, by column.
        drifted_share: Share of columns Evidently calls drifted.
    """

    html_path: Path
    json_path: Path
    verdicts: dict[str, ColumnVerdict]
    drifted_share: float


def window_frame(window: Window, spec: DriftSpec) -> pd.DataFrame:
    """The window's drift columns as a DataFrame, named as the streaming path names its features."""
    names = spec.numeric_features if spec.numeric_features is not None else tuple(sorted(window.features))
    data: dict[str, Any] = {name: window.features[name] for name in names if name in window.features}
    if spec.include_score:
        data[SCORE_FEATURE] = window.score
    for attribute in spec.categorical_attributes:
        if attribute in window.attributes:
            data[attribute_feature(attribute)] = window.attributes[attribute].astype(object)
    return pd.DataFrame(data)


def _verdicts(snapshot: dict[str, Any]) -> dict[str, ColumnVerdict]:
    verdicts = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        method, threshold, value = str(config["method"]), float(config["threshold"]), float(metric["value"])
        drifted = value < threshold if "p_value" in method else value >= threshold
        column = str(config["column"])
        verdicts[column] = ColumnVerdict(column, method, value, threshold, drifted)
    return verdicts


def write_evidently_report(
    reference: Window, current: Window, spec: DriftSpec, directory: str | Path, stem: str
) -> EvidentlyReport:
    """Run Evidently's DataDriftPreset on the window against the reference and save HTML and JSON.

    Args:
        reference: The version's reference window.
        current: The window being reported.
        spec: The drift spec (chooses the columns, as in the streaming path).
        directory: Where to write (created if missing).
        stem: File name stem, e.g. ``chest-nodule-3-canary-20250106T0800``; unsafe characters are replaced.

    Returns:
        The paths and Evidently's per-column verdicts.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference_frame, current_frame = window_frame(reference, spec), window_frame(current, spec)
    columns = [c for c in current_frame.columns if c in reference_frame.columns]
    numeric = [c for c in columns if np.issubdtype(current_frame[c].dtype, np.number)]
    categorical = [c for c in columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current_frame[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference_frame[columns], data_definition=definition),
    )
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    safe = _SAFE_STEM.sub("_", stem) or "drift"
    html_path, json_path = folder / f"{safe}.html", folder / f"{safe}.json"
    snapshot.save_html(str(html_path))
    json_path.write_text(snapshot.json(), encoding="utf-8")
    verdicts = _verdicts(json.loads(json_path.read_text(encoding="utf-8")))
    share = sum(v.drifted for v in verdicts.values()) / len(verdicts) if verdicts else 0.0
    return EvidentlyReport(html_path, json_path, verdicts, share)
