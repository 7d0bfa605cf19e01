"""bench/monitor_validity: false alarms over time and detection delay of the runner's monitors, planted changes.

The end-to-end suite (tests/e2e/test_monitor_validity.py) runs the real stack at CI size; this is the larger
matrix, on the runner's own calculators and CUSUM (``build_calculator`` + ``judge_block``), whatever
calculators the tree holds. Data: a version's reference profile (``model_repo/<model>/<version>``), split at
random into a reference half (what the calculators compare against) and a pool half; each repetition streams
``--blocks`` blocks of ``--block`` predictions drawn from the pool with replacement, with one planted change:

- ``healthy``: nothing changed;
- ``site_gain``: site C's intensity descriptors (mean, p5, p50, p95) shifted by ``--shift-sd`` of their
  site-C standard deviation (a silent detector gain change at one site);
- ``temperature``: the served probability is ``sigmoid(logit / 2)`` (a wrong temperature);
- ``subgroup_sensitivity``: among men 50-69, detected positives are pushed below the operating point so the
  subgroup's sensitivity drops by 10 points;
- ``case_mix``: studies drawn with weight ``exp(0.04 * (age - 58))`` (older patients);
- ``prevalence``: positives drawn at half their rate, model unchanged (must not be called model failure);
- ``changed_site`` (with ``--changed PATH``): the studies of ``--changed-site`` are drawn from a profile of a
  planted scenario (``bench/scenario_profile.py``, e.g. ``bench/scenarios/site_b_detector_blur.yaml``: a blurrier,
  noisier detector at site B), simulated and scored like the reference; the other sites' from the pool.

Labels are radiologists' reads (a positive is missed with probability 0.11, a negative flagged with 0.05) on
both sides by default (``--reference-labels truth`` labels the reference by ground truth), drawn from each
study's ground truth (the profile's ``ground_truth`` member; its ``labels`` are the simulator's own reads, which
would be read twice otherwise). The shipped profiles carry no operating threshold; the bench uses 0.5 on both sides.

Printed per scenario and monitor: repetitions, the per-block breach rate of the calculator alone, how often
the block's p-value for "nothing changed" is at most 0.05 (with no change, at most ~5% means the p-values are
valid and the chart's run length is at least its nominal ARL0), the share
of repetitions whose CUSUM alarmed within the horizon, and the median and 90th-percentile detection delay
in predictions. The CUSUM runs with the runner's default budget (30 days at 1,000 studies/day).

Run: ``.venv/bin/python -m bench.monitor_validity [--reps 20] [--blocks 12] [--block 500]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.monitors.alerting.sequential import CusumState, FalseAlarmBudget
from services.monitors.bias.spec import BiasSpec
from services.monitors.calibration.calculator import implied_temperatures
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.findings import MonitorKind, Severity
from services.monitors.core.reference import load_reference_profile
from services.monitors.core.specs import MonitorSpec
from services.monitors.core.window import Window
from services.monitors.drift.spec import DriftSpec
from services.monitors.performance.spec import PerformanceSpec
from services.monitors.runner.handlers import build_calculator, judge_block
from services.monitors.runner.ports import Chart

REPO = Path(__file__).resolve().parents[1]
MISS, FALSE_FLAG = 0.11, 0.05
THRESHOLD = 0.5
SHIFTED = ("intensity.mean", "intensity.p5", "intensity.p50", "intensity.p95")


@dataclass(frozen=True)
class Rows:
    """Plain columns of a sample (what a planted change edits before the window is built)."""

    score: NDArray[Any]
    probability: NDArray[Any]
    truth: NDArray[Any]
    features: dict[str, NDArray[Any]]
    attributes: dict[str, NDArray[Any]]


def rows_of(window: Window, index: NDArray[Any]) -> Rows:
    """Columns of ``window`` at ``index`` (labels are the window's, taken as ground truth)."""
    return Rows(
        window.score[index].copy(),
        window.probability[index].copy(),
        window.label[index].copy(),
        {name: values[index].copy() for name, values in window.features.items()},
        {name: values[index].copy() for name, values in window.attributes.items()},
    )


def read_labels(truth: NDArray[Any], rng: np.random.Generator) -> NDArray[Any]:
    """Radiologists' reads of ``truth``: misses and false flags at the simulated readers' rates."""
    u = rng.random(truth.shape[0])
    return np.where(truth == 1, (u >= MISS).astype(float), (u < FALSE_FLAG).astype(float))


def as_window(rows: Rows, labels: NDArray[Any], arm: str) -> Window:
    """A calculators' window of ``rows`` with ``labels`` and decisions at the bench's threshold."""
    return Window.from_columns(
        model_name="chest_nodule",
        model_version="bench",
        arm=arm,
        score=rows.score,
        probability=rows.probability,
        label=labels,
        threshold=THRESHOLD,
        features=rows.features,
        attributes=rows.attributes,
    )


Planted = Callable[[Window, NDArray[Any], np.random.Generator, int, float], Rows]


def _draw(pool: Window, n: int, rng: np.random.Generator, weights: NDArray[Any] | None = None) -> NDArray[Any]:
    p = None if weights is None else weights / weights.sum()
    return rng.choice(len(pool), size=n, replace=True, p=p)


def healthy(pool: Window, _: NDArray[Any], rng: np.random.Generator, n: int, __: float) -> Rows:
    return rows_of(pool, _draw(pool, n, rng))


def site_gain(pool: Window, site_sd: NDArray[Any], rng: np.random.Generator, n: int, shift_sd: float) -> Rows:
    rows = rows_of(pool, _draw(pool, n, rng))
    at_c = rows.attributes["site"] == "site-C"
    for position, name in enumerate(SHIFTED):
        rows.features[name][at_c] += shift_sd * site_sd[position]
    return rows


def temperature(pool: Window, _: NDArray[Any], rng: np.random.Generator, n: int, __: float) -> Rows:
    rows = rows_of(pool, _draw(pool, n, rng))
    probability = 1.0 / (1.0 + np.exp(-rows.score / 2.0))
    return Rows(rows.score, probability, rows.truth, rows.features, rows.attributes)


def subgroup_sensitivity(pool: Window, _: NDArray[Any], rng: np.random.Generator, n: int, __: float) -> Rows:
    rows = rows_of(pool, _draw(pool, n, rng))
    group = (rows.attributes["sex"] == "male") & (rows.attributes["age_band"] == "50-69") & (rows.truth == 1)
    detected = group & (rows.probability >= THRESHOLD)
    sensitivity = detected.sum() / max(group.sum(), 1)
    flip = detected & (rng.random(rows.score.shape[0]) < min(1.0, 0.10 / max(sensitivity, 1e-9)))
    score, probability = rows.score.copy(), rows.probability.copy()
    score[flip] = -np.abs(score[flip]) - 0.5
    # Served through the version's own calibration (its temperature, read off the unchanged rows): the model
    # changed, the calibration in service did not.
    temperature = float(np.median(implied_temperatures(pool)))
    probability[flip] = 1.0 / (1.0 + np.exp(-score[flip] / temperature))
    return Rows(score, probability, rows.truth, rows.features, rows.attributes)


def case_mix(pool: Window, _: NDArray[Any], rng: np.random.Generator, n: int, __: float) -> Rows:
    age_band = pool.attributes["age_band"]
    # Age bands as the reference labels them; older bands get more weight.
    order = {band: i for i, band in enumerate(sorted(set(age_band.tolist())))}
    weights = np.exp(0.6 * np.array([order[band] for band in age_band], dtype=np.float64))
    return rows_of(pool, _draw(pool, n, rng, weights))


def prevalence(pool: Window, _: NDArray[Any], rng: np.random.Generator, n: int, __: float) -> Rows:
    weights = np.where(pool.label == 1, 0.5, 1.0)
    return rows_of(pool, _draw(pool, n, rng, weights))


def with_ground_truth(profile: Window, path: Path) -> Window:
    """``profile`` with its studies' ground truth as labels (the shipped profiles' ``labels`` are the simulated
    readers' reads; the bench draws its own reads from the truth, so reads must not be read again)."""
    with np.load(path, allow_pickle=False) as archive:
        if "ground_truth" not in archive:
            return profile
        truth = np.asarray(archive["ground_truth"], dtype=np.float64)
    return replace(profile, label=truth, override=np.abs(truth - profile.decision))


def changed_site(changed: Window, site: str) -> Planted:
    """The scenario whose ``site`` studies come from ``changed`` (a planted scenario's profile)."""
    rows = np.flatnonzero(changed.attributes["site"] == site)
    if rows.size == 0:
        raise SystemExit(f"the changed profile has no studies of {site}")

    def planted(pool: Window, _: NDArray[Any], rng: np.random.Generator, n: int, __: float) -> Rows:
        drawn = rows_of(pool, _draw(pool, n, rng))
        at_site = np.flatnonzero(drawn.attributes["site"] == site)
        replacement = rows_of(changed, rng.choice(rows, size=at_site.size, replace=True))
        drawn.score[at_site], drawn.probability[at_site] = replacement.score, replacement.probability
        drawn.truth[at_site] = replacement.truth
        for name, values in drawn.features.items():
            values[at_site] = replacement.features[name]
        for name, values in drawn.attributes.items():
            values[at_site] = replacement.attributes[name]
        return drawn

    return planted


SCENARIOS: dict[str, Planted] = {
    "healthy": healthy,
    "site_gain": site_gain,
    "temperature": temperature,
    "subgroup_sensitivity": subgroup_sensitivity,
    "case_mix": case_mix,
    "prevalence": prevalence,
}

SPECS: dict[MonitorKind, MonitorSpec] = {
    MonitorKind.DRIFT: DriftSpec(name="bench-drift"),
    MonitorKind.CALIBRATION: CalibrationSpec(name="bench-calibration", bootstrap_resamples=100, null_resamples=500),
    MonitorKind.BIAS: BiasSpec(name="bench-bias"),
    MonitorKind.PERFORMANCE: PerformanceSpec(name="bench-performance"),
}


@dataclass
class Tally:
    """One scenario and monitor over the repetitions."""

    blocks: int = 0
    block_breaches: int = 0
    small_p: int = 0
    alarms: int = 0
    reps: int = 0
    delays: list[int] | None = None
    subgroup_delays: list[int] | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="2")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=12, help="blocks per repetition (the horizon)")
    parser.add_argument("--block", type=int, default=500, help="predictions per block")
    parser.add_argument("--shift-sd", type=float, default=0.25)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--kinds", default=",".join(kind.value for kind in SPECS))
    parser.add_argument("--reference-labels", choices=("reads", "truth"), default="reads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changed", type=Path, help="profile of a planted scenario (bench/scenario_profile.py)")
    parser.add_argument("--changed-site", default="site-B")
    args = parser.parse_args()
    if args.changed is not None:
        changed = with_ground_truth(
            load_reference_profile(args.changed, model_name="chest_nodule", model_version=args.version), args.changed
        )
        SCENARIOS["changed_site"] = changed_site(changed, args.changed_site)

    profile = with_ground_truth(
        load_reference_profile(
            REPO / "model_repo" / "chest_nodule" / args.version / "reference_profile.npz",
            model_name="chest_nodule",
            model_version=args.version,
        ),
        REPO / "model_repo" / "chest_nodule" / args.version / "reference_profile.npz",
    )
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(profile))
    half = len(profile) // 2
    reference_rows, pool = rows_of(profile, order[:half]), profile.select(order[half:])
    reference_labels = (
        reference_rows.truth if args.reference_labels == "truth" else read_labels(reference_rows.truth, rng)
    )
    reference = as_window(reference_rows, reference_labels, "reference")
    at_c = pool.attributes["site"] == "site-C"
    site_sd = np.array([float(np.std(pool.features[name][at_c])) for name in SHIFTED])

    kinds = [MonitorKind(kind) for kind in args.kinds.split(",")]
    # The runner's budget with its four monitors, whichever of them this run measures.
    budget = FalseAlarmBudget(block_size=args.block, monitors=len(SPECS))
    cusum = budget.parameters()
    calculators = {kind: build_calculator(kind, SPECS[kind], reference) for kind in kinds}
    print(
        f"reference {half} studies ({args.reference_labels}-labelled), pool {len(pool)}; blocks of {args.block}, "
        f"horizon {args.blocks} blocks; CUSUM k={cusum.k} h={cusum.h:.3f} "
        f"(ARL0 {budget.arl0_per_chart:.0f} blocks per chart = {budget.days:g} days per target at "
        f"{budget.studies_per_day:g} studies/day)"
    )
    print(
        "| scenario | monitor | reps | per-block breach | block p <= 0.05 | CUSUM alarm in horizon "
        "| delay median / p90 (predictions) |"
    )
    print("|---|---|---|---|---|---|---|")
    started = time.monotonic()
    for name in args.scenarios.split(","):
        planted = SCENARIOS[name]
        tallies = {kind: Tally(delays=[], subgroup_delays=[]) for kind in kinds}
        for rep in range(args.reps):
            stream = np.random.default_rng(args.seed * 1000 + rep)
            states = {kind: CusumState() for kind in kinds}
            alarmed: set[MonitorKind] = set()
            subgroup_reads = 0  # read-positives of men 50-69 so far (the subgroup scenario's unit of delay)
            for block in range(args.blocks):
                rows = planted(pool, site_sd, stream, args.block, args.shift_sd)
                labels = read_labels(rows.truth, stream)
                window = as_window(rows, labels, "stable")
                in_group = (rows.attributes["sex"] == "male") & (rows.attributes["age_band"] == "50-69")
                subgroup_reads += int(np.count_nonzero(in_group & (labels == 1)))
                for kind, calculator in calculators.items():
                    finding = calculator.evaluate(window)
                    tally = tallies[kind]
                    tally.blocks += 1
                    tally.block_breaches += finding.severity is Severity.BREACH
                    judged, states[kind] = judge_block(finding, Chart(states[kind], cusum))
                    chart = judged.chart
                    p_block = chart.p_value if chart is not None else None
                    tally.small_p += p_block is not None and p_block <= 0.05
                    if judged.severity is Severity.BREACH and kind not in alarmed:
                        alarmed.add(kind)
                        tally.alarms += 1
                        assert tally.delays is not None
                        tally.delays.append((block + 1) * args.block)
                        assert tally.subgroup_delays is not None
                        tally.subgroup_delays.append(subgroup_reads)
            for tally in tallies.values():
                tally.reps += 1
        for kind, tally in tallies.items():
            delays = tally.delays or []
            delay = f"{statistics.median(delays):.0f} / {np.percentile(delays, 90):.0f}" if delays else "-"
            if delays and name == "subgroup_sensitivity":
                reads = tally.subgroup_delays or []
                delay += f" ({statistics.median(reads):.0f} / {np.percentile(reads, 90):.0f} subgroup read-positives)"
            print(
                f"| {name} | {kind.value} | {tally.reps} | {tally.block_breaches / max(tally.blocks, 1):.1%} "
                f"| {tally.small_p / max(tally.blocks, 1):.1%} "
                f"| {tally.alarms}/{tally.reps} | {delay} |",
                flush=True,
            )
    print(f"wall {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
