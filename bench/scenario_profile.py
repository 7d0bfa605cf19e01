"""bench/scenario_profile: a version's profile of a planted scenario, for bench/monitor_validity.py's ``--changed``.

Simulates ``--studies`` studies of the scenario with the reference's hospital seed and study indices (the same
patients as the first studies of the shipped reference, so the change is the scenario's alone), scores them
with the version's shipped weights and writes them in the reference profile's format. The monitor validity
bench then draws the changed site's studies from this file (``--scenarios changed_site``).

Run: ``.venv/bin/python -m bench.scenario_profile bench/scenarios/site_b_detector_blur.yaml --studies 4000
--out /tmp/site_b_detector_blur.npz`` (about 30 s per 1,000 studies on one core).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from modeling.reference import REFERENCE_START, VersionScoring, build_references

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", help="scenario name or YAML path")
    parser.add_argument("--version", default="2")
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7, help="hospital seed (the shipped reference's is 7)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    scoring = VersionScoring.from_folder(REPO / "model_repo" / "chest_nodule" / args.version)
    arrays = build_references(
        [scoring],
        scenario=args.scenario,
        seed=args.seed,
        start=REFERENCE_START,
        n=args.studies,
        progress=lambda done, seconds: print(f"{done} studies in {seconds:.0f} s", flush=True),
    )[scoring.version]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)  # type: ignore[arg-type]
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
