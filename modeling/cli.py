"""The ``model`` command group: train the chest-nodule versions and export them into the model repository.

``app`` is a typer sub-app; the ``radguard`` CLI mounts it as ``radguard model``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from modeling.metrics import BinaryMetrics
    from modeling.train import EpochRecord, TrainedModel

# modeling.train imports torch, numpy and scipy: it is imported inside the commands, not for `--help`.

#: ``modeling.train.DEFAULT_SEED`` (equal to it by test), the ``--seed`` default.
DEFAULT_SEED = 7

app = typer.Typer(
    name="model",
    help="Train the chest-nodule CNN versions on simulated studies and export them for Triton.",
    no_args_is_help=True,
    add_completion=False,
)

VersionOption = Annotated[
    list[int] | None,
    typer.Option("--version", "-v", help="Version to train (repeatable); all shipped versions when omitted."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the simulated hospital and the training.")]
RepoOption = Annotated[
    Path, typer.Option("--repo", help="Triton model repository root.", file_okay=False, dir_okay=True)
]


def train_versions(versions: Sequence[int], seed: int, console: Console | None = None) -> list[TrainedModel]:
    """Train the given shipped versions with one seed (they share the held-out splits).

    Args:
        versions: Version numbers from :data:`modeling.train.VERSION_SPECS`.
        seed: Seed of the hospital and the training.
        console: Where progress goes (nowhere when None).

    Raises:
        typer.BadParameter: If a version is not shipped.
    """
    from modeling.cohorts import evaluation_cohorts
    from modeling.train import VERSION_SPECS, train

    unknown = sorted(set(versions) - set(VERSION_SPECS))
    if unknown:
        shipped = ", ".join(str(v) for v in VERSION_SPECS)
        raise typer.BadParameter(f"unknown version(s) {unknown}; shipped versions: {shipped}")
    specs = [VERSION_SPECS[v] for v in versions]
    first = specs[0]
    cohorts = evaluation_cohorts(
        first.scenario, seed, first.calibration_studies, first.validation_studies, first.test_studies
    )
    trained = []
    for spec in specs:
        shares_splits = (
            spec.scenario,
            spec.calibration_studies,
            spec.validation_studies,
            spec.test_studies,
        ) == (
            first.scenario,
            first.calibration_studies,
            first.validation_studies,
            first.test_studies,
        )
        if console is not None:
            console.print(f"[bold]v{spec.version}[/]: {spec.summary}")

        def report(record: EpochRecord, version: int = spec.version) -> None:
            if console is not None:
                console.print(
                    f"  v{version} epoch {record.epoch}/{record.epochs}  "
                    f"loss {record.mean_loss:.4f}  ({record.seconds:.1f} s)"
                )

        trained.append(train(spec, seed, cohorts=cohorts if shares_splits else None, progress=report))
    return trained


def metrics_table(models: Sequence[TrainedModel]) -> Table:
    """Test-split AUROC / sensitivity / specificity per version, overall and per subgroup."""
    table = Table(title="Held-out test split (operating point: each version's threshold)")
    table.add_column("group")
    table.add_column("n", justify="right")
    for model in models:
        for metric in ("AUROC", "sens", "spec"):
            table.add_column(f"v{model.spec.version} {metric}", justify="right")
    rows: list[tuple[str, list[BinaryMetrics]]] = [("overall", [m.test.overall for m in models])]
    for entry in models[0].test.subgroups:
        rows.append(
            (
                f"{entry.dimension}: {entry.group}",
                [m.test.group(entry.dimension, entry.group) for m in models],
            )
        )
    for name, per_model in rows:
        cells = [name, str(per_model[0].n)]
        for metrics in per_model:
            cells += [_fmt(metrics.auroc), _fmt(metrics.sensitivity), _fmt(metrics.specificity)]
        table.add_row(*cells)
    return table


def calibration_table(models: Sequence[TrainedModel]) -> Table:
    """Temperature, threshold, ECE before/after and training time per version."""
    table = Table(title="Calibration and operating point")
    for column in ("version", "T", "threshold", "val sens", "val spec", "ECE before", "ECE after", "train s"):
        table.add_column(column, justify="right")
    for model in models:
        c = model.calibration
        table.add_row(
            f"v{model.spec.version}",
            f"{c.temperature:.3f}",
            f"{c.threshold:.4f}",
            _fmt(c.validation_sensitivity),
            _fmt(c.validation_specificity),
            f"{c.ece_before:.4f}",
            f"{c.ece_after:.4f}",
            f"{model.train_seconds:.0f}",
        )
    return table


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _selected(versions: list[int] | None) -> list[int]:
    from modeling.train import VERSION_SPECS

    return sorted(set(versions)) if versions else sorted(VERSION_SPECS)


@app.command("train")
def train_command(version: VersionOption = None, seed: SeedOption = DEFAULT_SEED) -> None:
    """Train (and calibrate and evaluate) versions; print their metrics. Nothing is written."""
    console = Console()
    models = train_versions(_selected(version), seed, console)
    console.print(metrics_table(models))
    console.print(calibration_table(models))


@app.command("export")
def export_command(
    version: VersionOption = None, seed: SeedOption = DEFAULT_SEED, repo: RepoOption = Path("model_repo")
) -> None:
    """Train versions and write them into the model repository as chest_nodule/<version>/."""
    from modeling.export import export

    console = Console()
    models = train_versions(_selected(version), seed, console)
    console.print(metrics_table(models))
    console.print(calibration_table(models))
    for model in models:
        folder = export(model, repo)
        size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
        console.print(f"wrote {folder} ({size / 1024:.0f} KiB)")
