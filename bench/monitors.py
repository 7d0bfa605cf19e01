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

With ``--validity PATH`` (a shipped ``reference_profile.npz``: the CNN's outputs on simulated studies with
the simulated radiologists' reads) it measures instead how often the monitors are right. The profile's rows
are split in two: the first part is the reference, the second the pool each simulated hospital's window is
drawn from (with replacement, seeded per repetition). Scenarios, each repeated ``--repeats`` times:

- no change, 1,000 reads: share of windows with a breach (calibration, performance, bias, drift);
- wrong temperature (served probability ``sigmoid(logit / 2T)``), 1,000 reads: calibration breaches;
- 10-point true-sensitivity drop in men 50-69 (detected positives' logits lowered below the threshold),
  600 read-positives in that subgroup: bias breaches naming it;
- prevalence halved (true positives kept with probability 0.5, model unchanged), 2,000 reads: performance
  breaches (must be rare) and prevalence warnings;
- reads pending: confidence-based estimates against the realised read-labelled metrics (error, coverage).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

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


def _profile(path: Path) -> dict[str, NDArray[Any]]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def profile_window(data: dict[str, NDArray[Any]], rows: NDArray[Any], arm: str, *, temperature_factor: float = 1.0,
                   logit_shift: NDArray[Any] | None = None) -> Window:  # fmt: skip
    """Rows of a reference profile as a window (reads as labels), optionally with a changed model."""
    from kernel import vocabulary

    logits = data["logits"][rows].astype(np.float64)
    if logit_shift is not None:
        logits = logits + logit_shift
    metadata = json.loads(str(np.asarray(data["metadata"]).reshape(-1)[0]))
    probability = 1.0 / (1.0 + np.exp(-logits / (metadata["temperature"] * temperature_factor)))
    features = {f"intensity.{name}": data["image_stats"][rows, i] for i, name in enumerate(INTENSITY)}
    features.update({f"embedding.{i}": data["embeddings"][rows, i] for i in range(data["embeddings"].shape[1])})
    return Window.from_columns(
        model_name="chest_nodule",
        model_version="2",
        arm=arm,
        score=logits,
        probability=probability,
        label=data["labels"][rows].astype(np.float64),
        threshold=float(data["threshold"][0]),
        features=features,
        attributes={
            "site": data["site"][rows],
            "manufacturer": data["manufacturer"][rows],
            "manufacturer_model": data["model"][rows],
            "sex": data["sex"][rows],
            "age_band": vocabulary.age_bands(data["age"][rows]),
        },
    )


def validity(path: Path, repeats: int) -> None:
    """How often the monitors are right on the CNN's outputs with simulated reads (see the module doc)."""
    from kernel import vocabulary
    from services.monitors.core.findings import Severity

    data = _profile(path)
    n = data["labels"].size
    half = n // 2
    reference = profile_window(data, np.arange(half), "reference")
    pool = np.arange(half, n)
    drift = DriftMonitor(reference, DriftSpec(name="v-drift"))
    calibration = CalibrationMonitor(reference, CalibrationSpec(name="v-calibration", null_resamples=2000))
    bias = BiasMonitor(reference, BiasSpec(name="v-bias"))
    performance = PerformanceMonitor(reference, PerformanceSpec(name="v-performance"))
    truth, reads = data["ground_truth"], data["labels"]
    detected = data["decisions"] == 1
    sub = (data["sex"] == vocabulary.MALE) & (vocabulary.age_bands(data["age"]) == "50-69")
    breaches: dict[str, int] = {}

    def count(key: str, hit: bool) -> None:
        breaches[key] = breaches.get(key, 0) + int(hit)

    cbpe_error: dict[str, list[float]] = {"sensitivity": [], "specificity": [], "auroc": []}
    cbpe_cover: dict[str, int] = dict.fromkeys(cbpe_error, 0)
    for r in range(repeats):
        rng = np.random.default_rng(1000 + r)
        rows = rng.choice(pool, 1000)
        window = profile_window(data, rows, "stable")
        for name, monitor in (("drift", drift), ("calibration", calibration), ("performance", performance)):
            count(f"no change: {name}", monitor.evaluate(window).severity is Severity.BREACH)
        count("no change: bias", bias.evaluate(window).severity is Severity.BREACH)
        pending = Window.from_columns(
            model_name="chest_nodule", model_version="2", arm="stable", score=window.score,
            probability=window.probability, decision=window.decision,
        )  # fmt: skip
        finding = performance.evaluate(pending)
        realised = {
            "sensitivity": float(window.decision[window.label == 1].mean()),
            "specificity": float(1.0 - window.decision[window.label == 0].mean()),
            "auroc": float(performance_auroc(window)),
        }
        for metric, value in realised.items():
            estimate = finding.get(f"{metric}_estimate")
            cbpe_error[metric].append(estimate.value - value)
            cbpe_cover[metric] += int(estimate.ci_low <= value <= estimate.ci_high)  # type: ignore[operator]
        wrong = profile_window(data, rows, "stable", temperature_factor=2.0)
        count("temperature x2: calibration", calibration.evaluate(wrong).severity is Severity.BREACH)
        # 10-point true-sensitivity drop in men 50-69: some detected true positives fall below the threshold.
        sub_pool = pool[sub[pool]]
        positives = sub_pool[reads[sub_pool] == 1]
        others = sub_pool[reads[sub_pool] == 0]
        chosen = np.concatenate((
            rng.choice(positives, 600), rng.choice(others, int(600 * others.size / positives.size)),
            rng.choice(pool[~sub[pool]], 3000),
        ))  # fmt: skip
        sensitivity = float(detected[sub & (truth == 1)].mean())
        lowered = sub[chosen] & (truth[chosen] == 1) & detected[chosen] & (rng.random(chosen.size) < 0.1 / sensitivity)
        shift = np.where(lowered, -8.0, 0.0)
        finding = bias.evaluate(profile_window(data, chosen, "stable", logit_shift=shift))
        named = [s for s in finding.statistics if s.severity is Severity.BREACH and "age_band=50-69" in s.subgroup]
        count("sensitivity -10 pts in men 50-69: bias", bool(named))
        keep = pool[(truth[pool] == 0) | (rng.random(pool.size) < 0.5)]
        low = profile_window(data, rng.choice(keep, 2000), "stable")
        finding = performance.evaluate(low)
        count("prevalence halved: performance breach", finding.severity is Severity.BREACH)
        count("prevalence halved: prevalence warning", finding.get("prevalence_ratio").severity is Severity.WARNING)
    print(f"reference: {half} rows of {path} (reads as labels); windows from the other {n - half}; {repeats} repeats")
    for key, hits in breaches.items():
        print(f"  {key:<45} {hits:4d}/{repeats} = {hits / repeats:6.1%}")
    for metric, errors in cbpe_error.items():
        mean_abs = float(np.mean(np.abs(errors)))
        print(
            f"  CBPE {metric:<12} mean |estimate - realised| {mean_abs:.4f}; CI covers {cbpe_cover[metric]}/{repeats}"
        )


def performance_auroc(window: Window) -> float:
    """Realised read-labelled AUROC of a window."""
    from kernel.ranks import auroc_delong

    return auroc_delong(window.score, window.label).value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per window")
    parser.add_argument("--reference", type=int, default=10_000, help="reference rows")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per monitor (median reported)")
    parser.add_argument("--validity", type=Path, default=None, help="reference_profile.npz: measure validity")
    parser.add_argument("--repeats", type=int, default=50, help="simulated hospitals per validity scenario")
    args = parser.parse_args()
    if args.validity is not None:
        validity(args.validity, args.repeats)
        return

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
