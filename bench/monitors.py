"""bench/monitors: time per window of each monitor's calculator, against Evidently's DataDriftPreset.

One window of 10,000 events with the real descriptor count of a model version (5 image intensity
statistics + 8 embedding components + pixel spacing + output score = 15 numeric columns; site,
manufacturer and scanner model as categorical columns; reads on every event), and a reference of the
same shape. Columns are synthetic with per-site offsets (the calculators' cost depends on sizes, not on
values). Measured, median over runs:

- drift: the streaming path (KS per numeric column overall and per site, chi-square per categorical column,
  Holm) — and the baseline, Evidently's ``Report([DataDriftPreset()]).run`` on the same window and columns;
  also Evidently with the HTML + JSON written, as the report path costs per window;
- calibration: ECE with its double-bootstrap interval, change test, Brier, slope/intercept, bins;
- bias: 17 subgroups (sex, age band, site, manufacturer, sex x age band) x 5 metrics with CIs, gaps, tests;
- performance: overall metrics, maturity, tests; and the torch temperature recalibration (not per window).

Printed: milliseconds per window, Evidently / streaming-drift ratio, and the targets (streaming drift at
least 10x faster than Evidently; calibration and bias at most 100 ms per window).

Run: ``.venv/bin/python -m bench.monitors [--events 10000] [--reference 10000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from services.monitors.bias import BiasMonitor, BiasSpec
from services.monitors.calibration import CalibrationMonitor, CalibrationSpec, propose_recalibration
from services.monitors.core import Window
from services.monitors.drift import DriftMonitor, DriftSpec
from services.monitors.drift.evidently_report import window_frame, write_evidently_report
from services.monitors.performance import PerformanceMonitor, PerformanceSpec

SITES = ("site-A", "site-B", "site-C")
SCANNERS = {
    "site-A": ("SimRay Medical", "SR-400 DR"),
    "site-B": ("Meridian Imaging Sim", "MX-7"),
    "site-C": ("Contoso Radiography Sim", "CR-90"),
}
INTENSITY = ("mean", "std", "p5", "p50", "p95")
EMBEDDING = 8


def synthetic_window(n: int, seed: int, arm: str) -> Window:
    """A window shaped like the real traffic of one version (values synthetic)."""
    rng = np.random.default_rng(seed)
    site = rng.choice(SITES, size=n, p=[0.45, 0.35, 0.2])
    offset = np.select([site == s for s in SITES], [0.0, 0.3, -0.2])
    features = {f"intensity.{name}": rng.normal(size=n) + offset for name in INTENSITY}
    features.update({f"embedding.{i}": rng.normal(size=n) for i in range(EMBEDDING)})
    features["acquisition.pixel_spacing"] = np.select([site == s for s in SITES], [3.0, 2.9, 3.1])
    label = (rng.random(n) < 0.2).astype(float)
    score = rng.normal(size=n) + 2.2 * label - 1.0
    probability = 1.0 / (1.0 + np.exp(-score))
    return Window.from_columns(
        model_name="chest-nodule",
        model_version="3",
        arm=arm,
        score=score,
        probability=probability,
        decision=(probability >= 0.3).astype(float),
        label=label,
        features=features,
        attributes={
            "site": site,
            "manufacturer": np.array([SCANNERS[s][0] for s in site]),
            "manufacturer_model": np.array([SCANNERS[s][1] for s in site]),
            "sex": rng.choice(["female", "male"], size=n),
            "age_band": rng.choice(["<50", "50-69", "70+"], size=n, p=[0.3, 0.45, 0.25]),
        },
    )


def median_ms(action: Callable[[], object], runs: int) -> float:
    """Median wall time of ``action`` in milliseconds (after one warm-up call)."""
    action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per window")
    parser.add_argument("--reference", type=int, default=10_000, help="reference rows")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per monitor (median reported)")
    args = parser.parse_args()

    reference = synthetic_window(args.reference, 1, "reference")
    window = synthetic_window(args.events, 2, "canary")
    drift_spec = DriftSpec(name="bench-drift")
    drift = DriftMonitor(reference, drift_spec)
    calibration = CalibrationMonitor(reference, CalibrationSpec(name="bench-calibration"))
    bias = BiasMonitor(reference, BiasSpec(name="bench-bias"))
    performance = PerformanceMonitor(reference, PerformanceSpec(name="bench-performance"))
    tests = len(drift.evaluate(window).statistics)

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference_frame, current_frame = window_frame(reference, drift_spec), window_frame(window, drift_spec)
    numeric = [c for c in current_frame.columns if not c.startswith("acquisition.") or c.endswith("pixel_spacing")]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=[c for c in current_frame.columns if c not in numeric]
    )

    def evidently_run() -> object:
        return Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(current_frame, data_definition=definition),
            reference_data=Dataset.from_pandas(reference_frame, data_definition=definition),
        )

    folder = Path(tempfile.mkdtemp(prefix="bench-monitors-"))
    evidently_runs = max(1, min(args.runs, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = {
            "drift (streaming)": median_ms(lambda: drift.evaluate(window), args.runs),
            "evidently DataDriftPreset run": median_ms(evidently_run, evidently_runs),
            "evidently run + HTML + JSON": median_ms(
                lambda: write_evidently_report(reference, window, drift_spec, folder, "bench"), evidently_runs
            ),
            "calibration": median_ms(lambda: calibration.evaluate(window), args.runs),
            "bias": median_ms(lambda: bias.evaluate(window), args.runs),
            "performance": median_ms(lambda: performance.evaluate(window), args.runs),
            "recalibration (torch, per proposal)": median_ms(lambda: propose_recalibration(window), args.runs),
        }

    columns = len(current_frame.columns)
    print(f"window: {args.events} events x {columns} columns ({tests} drift tests); reference: {args.reference} rows")
    for name, ms in results.items():
        print(f"  {name:<38} {ms:9.1f} ms")
    ratio = results["evidently DataDriftPreset run"] / results["drift (streaming)"]
    ratio_saved = results["evidently run + HTML + JSON"] / results["drift (streaming)"]
    print(f"evidently run / streaming drift:         {ratio:7.1f}x   (target >= 10x)")
    print(f"evidently run+save / streaming drift:    {ratio_saved:7.1f}x")
    for name in ("calibration", "bias"):
        verdict = "ok" if results[name] <= 100.0 else "OVER"
        print(f"{name} per window: {results[name]:.1f} ms (target <= 100 ms): {verdict}")


if __name__ == "__main__":
    main()
