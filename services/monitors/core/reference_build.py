"""A reference profile drawn from a ledger period: the version's predictions with their reads.

The shipped references are simulated production periods (``modeling/reference.py``); a renewal draws one
from the version's real traffic instead. The rows are the version's predictions in the period that have a
read, labelled by that read (as live windows are), decided at the version's operating threshold, with the
read's delay; the file has the members :func:`services.monitors.core.reference.load_reference_profile`
reads, plus a ``metadata`` member (JSON) stating the period, the counts and the power of each subgroup's
comparison (:func:`kernel.power.minimal_detectable_drop`).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kernel import vocabulary
from kernel.power import ALPHA, POWER, SENSITIVITY, TESTS, WINDOW_READ_POSITIVES, minimal_detectable_drop
from services.monitors.core.reference import INTENSITY_PREFIX, PIXEL_SPACING
from services.monitors.ledger.queries import LabelledPrediction, shared_features

#: Fewest reads a period must hold to become a reference (``--min-reads``): below it every subgroup's
#: comparison is too imprecise to judge a block against.
DEFAULT_MIN_READS = 2000
#: A subgroup whose comparison cannot detect a drop of this size is named as underpowered (the 10-point drop
#: of true sensitivity the bias monitor is sized for shows as about 7 points against reads; 0.10 is lenient).
UNDERPOWERED_DROP = 0.10
#: Fixed member times, so the same rows give the same bytes (and the same sha256).
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


class PeriodError(ValueError):
    """The period cannot make a reference (too few reads, or mixed operating thresholds); one line why."""


@dataclass(frozen=True)
class SubgroupPower:
    """One subgroup of the reference and the smallest sensitivity drop its comparison detects."""

    subgroup: str
    studies: int
    read_positives: int
    detectable_drop: float


@dataclass(frozen=True)
class BuiltReference:
    """A reference's arrays, its ``metadata`` (also a member of the file) and the period's facts."""

    arrays: dict[str, NDArray[Any]]
    metadata: dict[str, Any]
    studies: int
    reads: int
    read_positives: int
    start: datetime
    end: datetime
    threshold: float
    powers: tuple[SubgroupPower, ...]


def with_twin_reads(
    rows: Sequence[LabelledPrediction], twins: Mapping[str, tuple[int, datetime, str]]
) -> list[LabelledPrediction]:
    """Label a version's shadow predictions with the reads of their served twins (see ``served_twin_reads``)."""
    out = []
    for row in rows:
        twin = twins.get(row.prediction_id) if row.label is None else None
        if twin is None:
            out.append(row)
            continue
        label, read_time, read_id = twin
        out.append(replace(row, label=label, read_time=read_time, read_id=read_id, read_count=1))
    return out


def _threshold(rows: Sequence[LabelledPrediction], override: float | None) -> float:
    if override is not None:
        if not 0.0 <= override <= 1.0:
            raise PeriodError(f"--threshold must be within [0, 1], got {override}")
        return override
    seen = sorted({round(row.threshold, 9) for row in rows})
    if len(seen) != 1:
        listed = ", ".join(f"{t:g}" for t in seen)
        raise PeriodError(
            f"the period's predictions were decided at {len(seen)} operating thresholds ({listed}): choose a period "
            "with one, or pass --threshold"
        )
    return float(seen[0])


def _features(rows: Sequence[LabelledPrediction]) -> dict[str, NDArray[Any]]:
    names, width = shared_features(rows)
    stats = sorted(n for n in names if n.startswith(INTENSITY_PREFIX))
    arrays: dict[str, NDArray[Any]] = {}

    def column(name: str) -> list[float]:
        return [np.nan if (v := (row.descriptors or {}).get(name)) is None else float(v) for row in rows]

    if stats:
        arrays["image_stats"] = np.array([column(n) for n in stats], dtype=np.float32).T
        arrays["image_stat_names"] = np.array([n.removeprefix(INTENSITY_PREFIX) for n in stats], dtype=np.str_)
    if PIXEL_SPACING in names:
        arrays["pixel_spacing"] = np.array(column(PIXEL_SPACING), dtype=np.float32)
    if width:
        arrays["embeddings"] = np.array([list((row.embedding or ())[:width]) for row in rows], dtype=np.float32)
    return arrays


def build_from_rows(
    rows: Sequence[LabelledPrediction],
    *,
    model_name: str,
    model_version: str,
    since: datetime,
    until: datetime,
    min_reads: int = DEFAULT_MIN_READS,
    threshold: float | None = None,
) -> BuiltReference:
    """The reference of one version's ledger period.

    Args:
        rows: The version's predictions in [since, until), with their reads where they arrived.
        model_name: The model.
        model_version: The version.
        since: Start of the period (inclusive).
        until: End of the period (exclusive).
        min_reads: Fewest reads the period must hold.
        threshold: Operating threshold to decide at; the ledger's (one value over the period) when None.

    Raises:
        PeriodError: Fewer than ``min_reads`` reads, or the period mixes operating thresholds.
    """
    labelled = [row for row in rows if row.label is not None and row.age_years is not None]
    no_age = sum(1 for row in rows if row.label is not None and row.age_years is None)
    if len(labelled) < min_reads:
        raise PeriodError(
            f"the period holds {len(labelled)} reads of {model_name} version {model_version} "
            f"({len(rows)} predictions); a reference needs at least {min_reads} (--min-reads)"
        )
    cut = _threshold(labelled, threshold)
    probabilities = np.array([row.probability for row in labelled], dtype=np.float32)
    labels = np.array([row.label for row in labelled], dtype=np.int8)
    delays = [(row.read_time - row.event_time).total_seconds() / 60.0 if row.read_time else np.nan for row in labelled]
    arrays: dict[str, NDArray[Any]] = {
        "logits": np.array([row.raw_score for row in labelled], dtype=np.float32),
        "probabilities": probabilities,
        "decisions": (probabilities >= cut).astype(np.int8),
        "labels": labels,
        "read_delay_minutes": np.array(delays, dtype=np.float32),
        "site": np.array([row.site_id for row in labelled], dtype=np.str_),
        "manufacturer": np.array([row.manufacturer for row in labelled], dtype=np.str_),
        "model": np.array([row.manufacturer_model for row in labelled], dtype=np.str_),
        "sex": vocabulary.sex_labels([row.sex.value for row in labelled]),
        "age": np.array([row.age_years for row in labelled], dtype=np.int16),
        "arm": np.array([row.arm.value for row in labelled], dtype=np.str_),
        **_features(labelled),
        "threshold": np.array([cut], dtype=np.float64),
    }
    groups = {
        vocabulary.SITE: arrays["site"],
        vocabulary.MANUFACTURER: arrays["manufacturer"],
        vocabulary.MANUFACTURER_MODEL: arrays["model"],
        vocabulary.SEX: arrays["sex"],
        vocabulary.AGE_BAND: vocabulary.age_bands(arrays["age"]),
    }
    powers = []
    for dimension, values in groups.items():
        for value in sorted(set(values.tolist())):
            mask = values == value
            positives = int(labels[mask].sum())
            powers.append(
                SubgroupPower(
                    vocabulary.subgroup(dimension, value),
                    int(mask.sum()),
                    positives,
                    minimal_detectable_drop(positives),
                )
            )
    first = min(row.event_time for row in labelled)
    last = max(row.event_time for row in labelled)
    read_positives = int(labels.sum())
    finite_delays = np.array([d for d in delays if np.isfinite(d)])
    metadata = {
        "labels": "reads",
        "labelled_by": "radiologists' reads recorded in the ledger, as live windows are",
        "period": {
            "source": "ledger",
            "model_name": model_name,
            "model_version": model_version,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "first_event_time": first.isoformat(),
            "last_event_time": last.isoformat(),
            "arms": sorted(set(arrays["arm"].tolist())),
        },
        "studies": len(rows),
        "n": len(labelled),
        "reads": len(labelled),
        "read_positives": read_positives,
        "reads_without_age_left_out": no_age,
        "shadow_reads_from_served_twin": sum(1 for row in labelled if row.arm.value == "shadow"),
        "label_maturity": len(labelled) / len(rows) if rows else 0.0,
        "read_delay_minutes": {
            "median": float(np.median(finite_delays)) if finite_delays.size else None,
            "p90": float(np.quantile(finite_delays, 0.9)) if finite_delays.size else None,
        },
        "threshold": cut,
        "age_band_edges": list(vocabulary.AGE_BAND_EDGES),
        "subgroups": [{"subgroup": p.subgroup, "n": p.studies, "read_positives": p.read_positives} for p in powers],
        "power": {
            "statement": (
                f"smallest drop of read-labelled sensitivity detected with {POWER:.0%} power, one-sided, Holm at "
                f"{ALPHA} over {TESTS} subgroups, in a window of {WINDOW_READ_POSITIVES} read-positives of the "
                f"subgroup at sensitivity {SENSITIVITY}"
            ),
            "subgroups": {p.subgroup: round(p.detectable_drop, 4) for p in powers},
            "underpowered": [p.subgroup for p in powers if not p.detectable_drop <= UNDERPOWERED_DROP],
            "underpowered_above": UNDERPOWERED_DROP,
        },
    }
    arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    return BuiltReference(arrays, metadata, len(rows), len(labelled), read_positives, first, last, cut, tuple(powers))


def write_profile(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """Write the arrays as a ``reference_profile.npz`` (no pickles; the same arrays give the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
