"""Turning a ledger window (rows of predictions with their reads) into the calculators' column window."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from services.monitors.core.reference import EMBEDDING_PREFIX
from services.monitors.core.window import AGE_BAND, MANUFACTURER, MANUFACTURER_MODEL, SEX, SITE, Window
from services.monitors.ledger.queries import LabelledPrediction, LedgerWindow, shared_features


def _optional(value: int | float | None) -> float:
    return float("nan") if value is None else float(value)


def _features(rows: tuple[LabelledPrediction, ...]) -> dict[str, list[float]]:
    names, width = shared_features(rows)
    if not names and not width:
        return {}
    columns: dict[str, list[float]] = {name: [] for name in names}
    columns.update({f"{EMBEDDING_PREFIX}{i}": [] for i in range(width)})
    for row in rows:
        descriptors = row.descriptors or {}
        for name in names:
            columns[name].append(_optional(descriptors[name]))
        embedding = row.embedding or ()
        for i in range(width):
            columns[f"{EMBEDDING_PREFIX}{i}"].append(float(embedding[i]))
    return columns


def _end(ledger_window: LedgerWindow) -> datetime | None:
    if ledger_window.spec.end is not None:
        return ledger_window.spec.end
    last = ledger_window.last_event_time
    # The end is exclusive: just after the last prediction, so a one-prediction window is not empty.
    return None if last is None else last + timedelta(microseconds=1)


def to_window(ledger_window: LedgerWindow, *, model_version: str, arm: str) -> Window:
    """The calculators' window for one version and arm of a ledger window.

    Args:
        ledger_window: Rows from the ledger (with features when drift is to run on it).
        model_version: The version the rows belong to.
        arm: The arm the rows belong to.

    Returns:
        A window whose ``start`` is the first event time and ``end`` the spec's end (or just after the last
        event time when the spec is open-ended); descriptors become features by their ledger name and embedding
        components ``embedding.<i>``; overrides are derived as label != decision; site, manufacturer,
        scanner model, sex and age band become attributes.
    """
    rows = ledger_window.rows
    return Window.from_columns(
        model_name=ledger_window.spec.model_name,
        model_version=model_version,
        arm=arm,
        score=np.array([row.raw_score for row in rows], dtype=np.float64),
        probability=np.array([row.probability for row in rows], dtype=np.float64),
        decision=np.array([_optional(row.decision) for row in rows], dtype=np.float64),
        label=np.array([_optional(row.label) for row in rows], dtype=np.float64),
        features=_features(rows),
        attributes={
            SITE: [row.site_id for row in rows],
            MANUFACTURER: [row.manufacturer for row in rows],
            MANUFACTURER_MODEL: [row.manufacturer_model for row in rows],
            SEX: [row.sex.value for row in rows],
            AGE_BAND: [row.age_band for row in rows],
        },
        start=ledger_window.first_event_time,
        end=_end(ledger_window),
    )
