"""Plotly figure specifications (data + layout as plain dicts) built from evidence; the page draws them.

Nothing here talks to an API or to the network: inputs are plain values, outputs JSON-ready dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "height": 320,
    "template": "plotly_white",
    "legend": {"orientation": "h", "y": -0.25},
}
ARM_COLOURS = {"stable": "#1f77b4", "canary": "#ff7f0e", "shadow": "#7f7f7f"}


@dataclass(frozen=True)
class Point:
    """One window's value with its interval."""

    at: str
    value: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Interval:
    """A labelled estimate with its interval (a forest plot row)."""

    label: str
    group: str
    value: float
    low: float | None
    high: float | None


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": {"text": title, "font": {"size": 14}}, **extra}


def series_with_band(
    title: str, y_title: str, series: Mapping[str, Sequence[Point]], limit: float | None = None
) -> dict[str, Any]:
    """A metric over time per arm, each with its confidence band, and the policy limit as a line."""
    data: list[dict[str, Any]] = []
    for arm, points in series.items():
        if not points:
            continue
        colour = ARM_COLOURS.get(arm, "#2ca02c")
        xs = [p.at for p in points]
        banded = [p for p in points if p.low is not None and p.high is not None]
        if banded:
            data.append(
                {
                    "x": [p.at for p in banded] + [p.at for p in reversed(banded)],
                    "y": [p.high for p in banded] + [p.low for p in reversed(banded)],
                    "type": "scatter",
                    "fill": "toself",
                    "fillcolor": colour,
                    "opacity": 0.2,
                    "line": {"width": 0},
                    "name": f"{arm} 95% CI",
                    "hoverinfo": "skip",
                }
            )
        data.append(
            {
                "x": xs,
                "y": [p.value for p in points],
                "type": "scatter",
                "mode": "lines+markers",
                "name": arm,
                "line": {"color": colour},
            }
        )
    shapes = []
    if limit is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": limit,
                "y1": limit,
                "line": {"dash": "dash", "color": "#d62728"},
            }
        )
    return {"data": data, "layout": _layout(title, yaxis={"title": y_title}, shapes=shapes)}


def reliability_diagram(
    title: str, bins: Sequence[tuple[float, float, float | None, float | None, int]]
) -> dict[str, Any]:
    """Observed rate against mean predicted probability per bin, with intervals and the diagonal."""
    xs = [b[0] for b in bins]
    ys = [b[1] for b in bins]
    plus = [(b[3] - b[1]) if b[3] is not None else 0.0 for b in bins]
    minus = [(b[1] - b[2]) if b[2] is not None else 0.0 for b in bins]
    data = [
        {
            "x": [0, 1],
            "y": [0, 1],
            "type": "scatter",
            "mode": "lines",
            "name": "perfect calibration",
            "line": {"dash": "dot", "color": "#7f7f7f"},
        },
        {
            "x": xs,
            "y": ys,
            "type": "scatter",
            "mode": "markers+lines",
            "name": "observed",
            "text": [f"{b[4]} studies" for b in bins],
            "error_y": {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
        },
    ]
    return {
        "data": data,
        "layout": _layout(
            title,
            xaxis={"title": "mean predicted probability", "range": [0, 1]},
            yaxis={"title": "observed rate (reads)", "range": [0, 1]},
        ),
    }


def forest_plot(title: str, rows: Sequence[Interval], reference: float | None = None) -> dict[str, Any]:
    """Estimates with intervals per label, one trace per group (e.g. stable vs canary), reference line."""
    data: list[dict[str, Any]] = []
    for group in sorted({r.group for r in rows}):
        chosen = [r for r in rows if r.group == group]
        data.append(
            {
                "x": [r.value for r in chosen],
                "y": [r.label for r in chosen],
                "type": "scatter",
                "mode": "markers",
                "name": group,
                "marker": {"color": ARM_COLOURS.get(group.split()[0], "#2ca02c"), "size": 9},
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [(r.high - r.value) if r.high is not None else 0.0 for r in chosen],
                    "arrayminus": [(r.value - r.low) if r.low is not None else 0.0 for r in chosen],
                },
            }
        )
    shapes = []
    if reference is not None:
        shapes.append(
            {
                "type": "line",
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "x0": reference,
                "x1": reference,
                "line": {"dash": "dash", "color": "#d62728"},
            }
        )
    height = max(320, 28 * len({r.label for r in rows}) + 120)
    layout = _layout(title, height=height, xaxis={"range": [0, 1.05]}, yaxis={"automargin": True}, shapes=shapes)
    return {"data": data, "layout": layout}


def drift_bars(title: str, features: Sequence[tuple[str, float, bool]]) -> dict[str, Any]:
    """-log10 of each descriptor's adjusted p-value; moved descriptors in red."""
    labels = [f[0] for f in features]
    scores = [-math.log10(max(f[1], 1e-300)) for f in features]
    colours = ["#d62728" if f[2] else "#1f77b4" for f in features]
    data = [
        {"x": scores, "y": labels, "type": "bar", "orientation": "h", "marker": {"color": colours}, "name": "-log10 p"}
    ]
    height = max(320, 22 * len(labels) + 120)
    shapes = [
        {
            "type": "line",
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "x0": -math.log10(0.05),
            "x1": -math.log10(0.05),
            "line": {"dash": "dash", "color": "#7f7f7f"},
        }
    ]
    return {
        "data": data,
        "layout": _layout(
            title,
            height=height,
            xaxis={"title": "-log10 adjusted p (dashed: 0.05)"},
            yaxis={"automargin": True},
            shapes=shapes,
        ),
    }


def route_timeline(title: str, revisions: Sequence[tuple[str, dict[str, float]]]) -> dict[str, Any]:
    """Each version's traffic share after each route revision, as steps over time."""
    versions = sorted({v for _, shares in revisions for v in shares})
    data = [
        {
            "x": [at for at, _ in revisions],
            "y": [shares.get(v, 0.0) * 100 for _, shares in revisions],
            "type": "scatter",
            "mode": "lines+markers",
            "line": {"shape": "hv"},
            "name": f"version {v}",
        }
        for v in versions
    ]
    return {"data": data, "layout": _layout(title, yaxis={"title": "% of traffic", "range": [0, 105]})}
