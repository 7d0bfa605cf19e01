"""Writes a trained version into the Triton model repository, with the evidence governance reads.

Layout written under ``<repo>/chest_nodule/``::

    config.pbtxt                 the Triton model configuration (shared by all versions)
    <version>/model.py           thin python-backend entry (a copy of modeling/triton_model.py)
    <version>/chest_nodule_logic.py   the network and InferenceEngine (a copy of modeling/network.py)
    <version>/weights.pt         state dict
    <version>/calibration.json   temperature, operating threshold, ECE before/after
    <version>/reference_profile.npz   validation-split outputs and context: the drift reference window
    <version>/model_card.md      intended use, data, metrics overall and per subgroup, limitations
    <version>/metadata.json      version, seed, spec, code revision, versions, artifact hashes
"""

from __future__ import annotations

import io
import json
import platform
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

import modeling.network
import modeling.triton_model
from kernel.digest import sha256_file
from modeling.cohorts import CALIBRATION_START, VALIDATION_START
from modeling.metrics import BinaryMetrics
from modeling.train import TrainedModel

MODEL_NAME = "chest_nodule"
LOGIC_FILE = f"{modeling.triton_model.LOGIC_MODULE}.py"
WEIGHTS_FILE = modeling.triton_model.WEIGHTS_FILE
CALIBRATION_FILE = "calibration.json"
REFERENCE_FILE = "reference_profile.npz"
MODEL_CARD_FILE = "model_card.md"
METADATA_FILE = "metadata.json"
#: Dynamic batching waits at most this long to fill a batch.
MAX_QUEUE_DELAY_US = 500
#: Intra-op threads torch may use inside Triton. One leaves the other core of a small machine to the
#: gateway and Kafka; torch's default (every core, spinning while idle) starves them and slows everyone.
TORCH_THREADS = 1
MAX_BATCH_SIZE = 32
# A fixed timestamp for archive members keeps re-exports of the same model byte-identical.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

CONFIG_PBTXT = f"""\
# Chest-nodule CNN (research model trained on simulated data). Written by modeling.export; versions are the
# numbered folders, each with its own weights, calibration.json and model card.
name: "{MODEL_NAME}"
backend: "python"
max_batch_size: {MAX_BATCH_SIZE}
input [
  {{
    name: "IMAGE"
    data_type: TYPE_FP32
    dims: [ 1, 128, 128 ]
  }}
]
output [
  {{
    name: "LOGIT"
    data_type: TYPE_FP32
    dims: [ 1 ]
  }},
  {{
    name: "EMBEDDING"
    data_type: TYPE_FP32
    dims: [ {modeling.network.EMBEDDING_DIM} ]
  }},
  {{
    name: "STATS"
    data_type: TYPE_FP32
    dims: [ {len(modeling.network.STAT_NAMES)} ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}
}}
instance_group [
  {{
    count: 1
    kind: KIND_CPU
  }}
]
version_policy: {{ all {{ }} }}
parameters {{
  key: "torch_threads"
  value: {{ string_value: "{TORCH_THREADS}" }}
}}
"""


def weights_bytes(trained: TrainedModel) -> bytes:
    """The serialised state dict (saved through memory so the archive's names do not depend on a path)."""
    buffer = io.BytesIO()
    state = {name: tensor.detach().clone() for name, tensor in trained.network.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def code_revision(repo_root: Path) -> str:
    """The git commit of the working tree, or ``"unknown"`` when git cannot say (read-only query)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(repo_root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and revision else "unknown"


def calibration_record(trained: TrainedModel) -> dict[str, Any]:
    """The content of calibration.json: how to turn LOGIT into a probability and a decision."""
    c = trained.calibration
    spec = trained.spec
    return {
        "model": MODEL_NAME,
        "version": spec.version,
        "method": "temperature scaling: probability = sigmoid(LOGIT / temperature)",
        "temperature": c.temperature,
        "decision_rule": "positive when probability >= threshold (equivalently LOGIT >= logit_threshold)",
        "threshold": c.threshold,
        "logit_threshold": c.logit_threshold,
        "target_sensitivity": c.target_sensitivity,
        "validation_sensitivity": c.validation_sensitivity,
        "validation_specificity": c.validation_specificity,
        "ece_before": c.ece_before,
        "ece_after": c.ece_after,
        "ece_calibration_split_before": c.ece_fit_before,
        "ece_calibration_split_after": c.ece_fit_after,
        "ece_definition": f"expected calibration error of P(nodule), {c.ece_bins} equal-width bins",
        "ece_bins": c.ece_bins,
        "fitted_on": {
            "temperature": _split_description(trained, "calibration", c.calibration_count),
            "threshold": _split_description(trained, "validation", c.validation_count),
            "ece_before_after": "validation split (held out from the temperature fit)",
            "excluded_scanners": list(spec.exclude_scanners),
        },
    }


def _split_description(trained: TrainedModel, split: str, count: int) -> dict[str, Any]:
    start = {"calibration": CALIBRATION_START, "validation": VALIDATION_START}[split]
    size = {"calibration": trained.spec.calibration_studies, "validation": trained.spec.validation_studies}
    return {
        "split": split,
        "scenario": trained.spec.scenario,
        "hospital_seed": trained.seed,
        "study_indices": [start, start + size[split]],
        "studies_used": count,
    }


def write_reference_profile(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """Write arrays as an ``.npz`` (loadable with ``np.load``, no pickles) with fixed member timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            if array.dtype.hasobject:
                raise ValueError(f"reference array {name!r} holds Python objects; use fixed-width types")
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def export(trained: TrainedModel, repo: Path, version: int | None = None) -> Path:
    """Write ``trained`` as ``<repo>/chest_nodule/<version>/`` and (re)write the model's config.pbtxt.

    Args:
        trained: The trained, calibrated model.
        repo: The Triton model repository root (``model_repo/``).
        version: Version folder number; defaults to the spec's version.

    Returns:
        The version folder.
    """
    number = trained.spec.version if version is None else version
    if number < 1:
        raise ValueError(f"Triton versions are positive integers, got {number}")
    model_dir = repo / MODEL_NAME
    folder = model_dir / str(number)
    folder.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(CONFIG_PBTXT, encoding="utf-8")

    shutil.copyfile(Path(modeling.triton_model.__file__), folder / "model.py")
    shutil.copyfile(Path(modeling.network.__file__), folder / LOGIC_FILE)
    (folder / WEIGHTS_FILE).write_bytes(weights_bytes(trained))
    calibration = calibration_record(trained)
    calibration["version"] = number
    _write_json(folder / CALIBRATION_FILE, calibration)
    write_reference_profile(folder / REFERENCE_FILE, trained.reference.arrays())

    metadata = metadata_record(trained, number, folder)
    (folder / MODEL_CARD_FILE).write_text(model_card(trained, number, metadata), encoding="utf-8")
    metadata["artifacts"][MODEL_CARD_FILE] = sha256_file(folder / MODEL_CARD_FILE)
    _write_json(folder / METADATA_FILE, metadata)
    return folder


def metadata_record(trained: TrainedModel, version: int, folder: Path) -> dict[str, Any]:
    """The content of metadata.json (artifact hashes are read from ``folder``)."""
    network = trained.network
    repo_root = Path(modeling.network.__file__).resolve().parents[1]
    artifacts = {
        name: sha256_file(folder / name)
        for name in ("model.py", LOGIC_FILE, WEIGHTS_FILE, CALIBRATION_FILE, REFERENCE_FILE)
    }
    return {
        "model": MODEL_NAME,
        "version": version,
        "seed": trained.seed,
        "spec": trained.spec.as_dict(),
        "code_revision": code_revision(repo_root),
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": artifacts[WEIGHTS_FILE],
        "torch_version": trained.torch_version,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "architecture": {
            "class": "NoduleNet",
            "channels": list(network.channels),
            "first_kernel": network.first_kernel,
            "embedding_dim": network.embedding_dim,
            "parameters": sum(p.numel() for p in network.parameters()),
        },
        "inputs": [{"name": "IMAGE", "data_type": "FP32", "dims": [1, 128, 128]}],
        "outputs": [
            {"name": "LOGIT", "data_type": "FP32", "dims": [1], "meaning": "raw logit (before temperature)"},
            {"name": "EMBEDDING", "data_type": "FP32", "dims": [modeling.network.EMBEDDING_DIM]},
            {"name": "STATS", "data_type": "FP32", "dims": [5], "columns": list(modeling.network.STAT_NAMES)},
        ],
        "training": {
            "studies": trained.train_count,
            "positives": trained.train_positives,
            "seconds": round(trained.train_seconds, 1),
            "epochs": [
                {"epoch": r.epoch, "mean_loss": r.mean_loss, "seconds": round(r.seconds, 1)} for r in trained.history
            ],
        },
        "metrics": {
            "test": _evaluation_dict(trained, "test"),
            "validation": _evaluation_dict(trained, "validation"),
        },
        "artifacts": artifacts,
    }


def _evaluation_dict(trained: TrainedModel, split: str) -> dict[str, Any]:
    evaluation = trained.test if split == "test" else trained.validation
    return {
        "overall": evaluation.overall.as_dict(),
        "subgroups": [
            {"dimension": s.dimension, "group": s.group, **s.metrics.as_dict()} for s in evaluation.subgroups
        ],
    }


def model_card(trained: TrainedModel, version: int, metadata: dict[str, Any]) -> str:
    """The model card, in Markdown."""
    spec = trained.spec
    c = trained.calibration
    test = trained.test
    excluded = ", ".join(spec.exclude_scanners) or "none"
    lines = [
        f"# Model card: {MODEL_NAME}, version {version}",
        "",
        "> **Research model trained on simulated data. Not a medical device and not for clinical use.** It",
        "> exists to exercise radguard's serving, monitoring and governance; its images, patients and",
        "> labels all come from radguard's hospital simulator (`sim/`).",
        "",
        f"{spec.summary}",
        "",
        "## Intended use",
        "",
        "- Score a simulated frontal chest radiograph (1 x 128 x 128, raw detector values) for the presence",
        "  of a pulmonary-nodule-like lesion, inside radguard's test and demonstration environments.",
        "- Exercise drift, calibration, subgroup and rollout monitoring with a model whose behaviour is known.",
        "",
        "Out of scope: any real patient image, any clinical decision, any comparison with real-world",
        "radiology performance.",
        "",
        "## Model",
        "",
        f"- `NoduleNet`: {len(trained.network.blocks)} convolution blocks "
        f"(channels {', '.join(str(ch) for ch in metadata['architecture']['channels'])}; "
        f"first kernel {metadata['architecture']['first_kernel']}x{metadata['architecture']['first_kernel']}), "
        "max pooling of every block plus average pooling of the last, an 8-d embedding and a 1-logit head; "
        f"{metadata['architecture']['parameters']:,} parameters.",
        "- Outputs: `LOGIT` (raw, uncalibrated), `EMBEDDING` (8 floats, for drift monitoring), `STATS`",
        "  (image mean, SD, 5th/50th/95th percentile, for drift monitoring).",
        f"- Calibrated probability = sigmoid(LOGIT / {c.temperature:.4f}); decide positive when probability",
        f"  >= {c.threshold:.4f} (LOGIT >= {c.logit_threshold:.4f}).",
        "",
        "## Training data (simulated)",
        "",
        f"- Scenario `{spec.scenario}` of the radguard hospital simulator, hospital seed {trained.seed}: three",
        "  sites, four X-ray units from three fictional vendors, adult patients, nodule prevalence about 20%",
        "  rising with age.",
        f"- Training: studies 0-{spec.train_studies - 1}; {trained.train_count:,} used "
        f"({trained.train_positives:,} positive) after excluding scanners: {excluded}.",
        f"- Optimisation: AdamW, learning rate {spec.learning_rate:g}, batch {spec.batch_size}, "
        f"{spec.epochs} epochs, class-balanced loss; {trained.train_seconds:.0f} s on {_cpu_note()}.",
        f"- Calibration split: {c.calibration_count:,} studies; validation split: {c.validation_count:,} studies"
        " (temperature and threshold); test split: "
        f"{test.overall.n:,} studies from the whole hospital mix (the metrics below).",
        "",
        "## Performance on the held-out test split",
        "",
        f"Operating point: threshold chosen for sensitivity >= {c.target_sensitivity:.2f} on validation "
        f"(validation sensitivity {c.validation_sensitivity:.3f}, specificity {c.validation_specificity:.3f}).",
        "",
        "| group | n | positives | AUROC | sensitivity | specificity |",
        "|---|---:|---:|---:|---:|---:|",
        _row("overall", test.overall),
    ]
    lines += [_row(f"{s.dimension}: {s.group}", s.metrics) for s in test.subgroups]
    lines += [
        "",
        "## Calibration",
        "",
        f"- Temperature {c.temperature:.4f}, fitted by L-BFGS on the negative log-likelihood of the calibration split.",
        f"- ECE ({c.ece_bins} equal-width bins) on the validation split: {c.ece_before:.4f} before, "
        f"{c.ece_after:.4f} after (calibration split: {c.ece_fit_before:.4f} -> {c.ece_fit_after:.4f}).",
        "",
        "## Limitations",
        "",
        "- Trained and evaluated only on simulated images: the lesions are Gaussian blobs on a synthetic chest,",
        "  scanner effects are a handful of parameters. Nothing here transfers to real radiographs.",
        "- Sensitivity differs by scanner: blurrier, noisier units hide small, faint nodules. Subgroup numbers",
        "  above come from a few hundred studies each; small gaps are within sampling error.",
    ]
    if spec.exclude_scanners:
        lines.append(
            f"- Developed without studies from {excluded}: its performance there was never seen during "
            "development, and its threshold was chosen without them (see the scanner rows above)."
        )
    lines += [
        "- Inputs must be raw detector values like the simulator's; intensity shifts (new scanners, drift)",
        "  move the score distribution, which the drift monitors watch through EMBEDDING and STATS.",
        "",
        "## Reproducibility",
        "",
        f"- Seed {trained.seed}; torch {trained.torch_version}; deterministic CPU kernels, 2 threads.",
        f"- Weights SHA-256 `{metadata['weights_sha256']}`; code revision `{metadata['code_revision']}`.",
        "",
    ]
    return "\n".join(lines)


def _row(name: str, m: BinaryMetrics) -> str:
    return f"| {name} | {m.n:,} | {m.positives:,} | {_fmt(m.auroc)} | {_fmt(m.sensitivity)} | {_fmt(m.specificity)} |"


def _fmt(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def _cpu_note() -> str:
    return f"CPU ({platform.machine()})"


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n", encoding="utf-8")
