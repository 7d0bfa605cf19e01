"""Trains a chest-nodule version on simulated studies, calibrates it and measures it per subgroup.

A version is described by a :class:`VersionSpec`; :data:`VERSION_SPECS` holds the two shipped versions.
Training is deterministic for a given (spec, seed): same data, same initialisation, same batch order,
deterministic kernels, so a retrain reproduces the weights bit for bit on the same torch build.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray

from modeling.calibration import (
    ECE_BINS,
    calibrated_probability,
    expected_calibration_error,
    fit_temperature,
    threshold_for_sensitivity,
)
from modeling.cohorts import Cohort, EvaluationCohorts, evaluation_cohorts, simulate_cohort
from modeling.metrics import BinaryMetrics, SubgroupMetrics, binary_metrics, subgroup_metrics
from modeling.network import DEFAULT_CHANNELS, DEFAULT_FIRST_KERNEL, InferenceEngine, NoduleNet

#: Seed used when none is given (CLI, export).
DEFAULT_SEED = 7
#: CPU threads used for training; the development machine has two cores shared with other work.
TRAIN_THREADS = 2


@dataclass(frozen=True)
class VersionSpec:
    """What distinguishes one trained version from another.

    Attributes:
        version: Triton version number.
        summary: One line on what this version is, for the model card.
        scenario: Simulator scenario the studies come from.
        train_studies: Studies drawn for training (indices 0 .. n-1), before any exclusion.
        exclude_scanners: ``"<manufacturer> <model>"`` of scanners absent from this version's development
            data: their studies are left out of training, temperature fitting and threshold choice. Metrics
            and the reference profile still cover the whole hospital mix, which the version will serve.
        epochs: Passes over the training studies.
        batch_size: Studies per optimiser step.
        learning_rate: Learning rate (AdamW), constant until the final decay.
        weight_decay: AdamW weight decay.
        decay_fraction: Share of the steps, at the end, over which the learning rate decays to zero (cosine).
        flip_augment: Mirror half of the training images left-right at random.
        balance_classes: Weight positives by negatives/positives in the loss, then shift the head's bias
            back by the log of that weight so the logit estimates the true log-odds again.
        channels: Convolution block widths.
        first_kernel: Kernel size of the first convolution block.
        calibration_studies: Studies in the calibration split.
        validation_studies: Studies in the validation split (also the reference profile).
        test_studies: Studies in the test split.
        target_sensitivity: Sensitivity the operating threshold must reach on validation.
    """

    version: int
    summary: str
    scenario: str = "baseline"
    train_studies: int = 6000
    exclude_scanners: tuple[str, ...] = ()
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    decay_fraction: float = 0.4
    flip_augment: bool = False
    balance_classes: bool = True
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    first_kernel: int = DEFAULT_FIRST_KERNEL
    calibration_studies: int = 2000
    validation_studies: int = 2000
    test_studies: int = 4000
    target_sensitivity: float = 0.90

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (tuples become lists)."""
        return {
            "version": self.version,
            "summary": self.summary,
            "scenario": self.scenario,
            "train_studies": self.train_studies,
            "exclude_scanners": list(self.exclude_scanners),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "decay_fraction": self.decay_fraction,
            "flip_augment": self.flip_augment,
            "balance_classes": self.balance_classes,
            "channels": list(self.channels),
            "first_kernel": self.first_kernel,
            "calibration_studies": self.calibration_studies,
            "validation_studies": self.validation_studies,
            "test_studies": self.test_studies,
            "target_sensitivity": self.target_sensitivity,
        }


#: The shipped versions. v2 sees more studies for longer but was developed without site C's CR-90 unit: it
#: discriminates better on the hospital mix, yet at its operating point it misses more nodules on the CR-90
#: than v1 does (a wider subgroup sensitivity gap): the trade-off governance must catch.
VERSION_SPECS: dict[int, VersionSpec] = {
    1: VersionSpec(
        version=1,
        summary="Baseline: trained on studies from all sites and scanners.",
        train_studies=6000,
        epochs=2,
    ),
    2: VersionSpec(
        version=2,
        summary=(
            "More data and epochs, developed without the Contoso Radiography Sim CR-90 "
            "(no CR-90 studies in training, calibration or threshold choice)."
        ),
        train_studies=9000,
        exclude_scanners=("Contoso Radiography Sim CR-90",),
        epochs=3,
    ),
}


@dataclass(frozen=True)
class EpochRecord:
    """Progress of one training epoch."""

    epoch: int
    epochs: int
    mean_loss: float
    seconds: float


@dataclass(frozen=True)
class CalibrationResult:
    """Temperature scaling and operating point of a version.

    Attributes:
        temperature: Divides the logit before the sigmoid.
        threshold: Operating threshold on the calibrated probability (decide positive when ``>=``).
        logit_threshold: The same threshold on the raw logit: ``temperature * logit(threshold)``.
        target_sensitivity: Sensitivity the threshold was chosen to reach.
        validation_sensitivity: Sensitivity at the threshold on the validation split.
        validation_specificity: Specificity at the threshold on the validation split.
        ece_before: ECE of ``sigmoid(logit)`` on the validation split.
        ece_after: ECE of the calibrated probability on the validation split.
        ece_fit_before: ECE before scaling on the calibration split (where T was fitted).
        ece_fit_after: ECE after scaling on the calibration split.
        ece_bins: Equal-width bins used for every ECE.
        calibration_count: Calibration studies the temperature was fitted on.
        validation_count: Validation studies the threshold was chosen on.
    """

    temperature: float
    threshold: float
    logit_threshold: float
    target_sensitivity: float
    validation_sensitivity: float
    validation_specificity: float
    ece_before: float
    ece_after: float
    ece_fit_before: float
    ece_fit_after: float
    ece_bins: int = ECE_BINS
    calibration_count: int = 0
    validation_count: int = 0


@dataclass(frozen=True)
class Evaluation:
    """Metrics of a version on one split, overall and per subgroup, at its operating threshold."""

    split: str
    overall: BinaryMetrics
    subgroups: tuple[SubgroupMetrics, ...]

    def group(self, dimension: str, group: str) -> BinaryMetrics:
        """Metrics of one subgroup.

        Raises:
            KeyError: If the subgroup was not evaluated.
        """
        for entry in self.subgroups:
            if entry.dimension == dimension and entry.group == group:
                return entry.metrics
        raise KeyError(f"no subgroup {dimension}={group!r}")


@dataclass(frozen=True)
class ReferenceProfile:
    """What the validation split looked like to this version: the drift monitors' reference window.

    Every field has one row per validation study.
    """

    logits: NDArray[np.float32]
    probabilities: NDArray[np.float32]
    labels: NDArray[np.int64]
    embeddings: NDArray[np.float32]
    image_stats: NDArray[np.float32]
    study_index: NDArray[np.int64]
    site: NDArray[np.str_]
    manufacturer: NDArray[np.str_]
    model: NDArray[np.str_]
    pixel_spacing: NDArray[np.float64]
    sex: NDArray[np.str_]
    age: NDArray[np.int64]

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """Field name → array, e.g. for ``np.savez``."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class TrainedModel:
    """A trained, calibrated and evaluated version, ready to export.

    Attributes:
        spec: What was trained.
        seed: Seed of the hospital, the initialisation and the batch order.
        network: The trained network, in eval mode.
        calibration: Temperature and operating threshold.
        validation: Metrics on the validation split (where the threshold was chosen).
        test: Metrics on the held-out test split (the numbers to report).
        reference: Reference profile from the validation split.
        history: Per-epoch training progress.
        train_count: Training studies used (after exclusions).
        train_positives: Positive training studies.
        train_seconds: Wall time of the optimisation loop.
        torch_version: Torch build that trained it.
    """

    spec: VersionSpec
    seed: int
    network: NoduleNet
    calibration: CalibrationResult
    validation: Evaluation
    test: Evaluation
    reference: ReferenceProfile
    history: tuple[EpochRecord, ...]
    train_count: int
    train_positives: int
    train_seconds: float
    torch_version: str = field(default=torch.__version__)


@contextmanager
def _deterministic_cpu(threads: int) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count for the duration, restoring the caller's settings."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)


def development_subset(cohort: Cohort, spec: VersionSpec) -> Cohort:
    """The part of ``cohort`` this version's developers had: all of it minus the excluded scanners."""
    return cohort.select(_kept(cohort, spec)) if spec.exclude_scanners else cohort


def _kept(cohort: Cohort, spec: VersionSpec) -> NDArray[np.bool_]:
    return ~np.isin(cohort.scanner, np.asarray(spec.exclude_scanners, dtype=np.str_))


def training_cohort(spec: VersionSpec, seed: int) -> Cohort:
    """The studies ``spec`` trains on: the first ``train_studies`` studies minus the excluded scanners."""
    return development_subset(simulate_cohort(spec.scenario, seed, 0, spec.train_studies), spec)


def _constant_then_cosine(total_steps: int, decay_fraction: float) -> Callable[[int], float]:
    """Learning-rate factor: 1 at first (the network needs many full-size steps before it finds the small
    nodule signal), then a cosine decay to 0 over the last ``decay_fraction`` of the steps."""
    decay_start = total_steps * (1.0 - decay_fraction)

    def factor(step: int) -> float:
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1.0, total_steps - decay_start)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fit_network(
    spec: VersionSpec, seed: int, cohort: Cohort, progress: Callable[[EpochRecord], None] | None = None
) -> tuple[NoduleNet, tuple[EpochRecord, ...]]:
    """Optimise a fresh network on ``cohort`` (call inside deterministic settings for reproducibility).

    Args:
        spec: Optimisation settings.
        seed: Seeds the initialisation, the batch order and the augmentation.
        cohort: Training studies.
        progress: Called after every epoch.

    Returns:
        The trained network (eval mode) and the per-epoch records.
    """
    torch.manual_seed(seed)
    network = NoduleNet(spec.channels, first_kernel=spec.first_kernel)
    generator = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(cohort.images)
    labels = torch.from_numpy(cohort.labels.astype(np.float32)).unsqueeze(1)
    n = len(cohort)
    positives = int(cohort.labels.sum())
    # Class balancing gives each batch's few positives enough pull for the network to find the nodule signal
    # early; the bias shift after training undoes its effect on the logit's scale.
    pos_weight = (n - positives) / max(1, positives) if spec.balance_classes else 1.0
    steps_per_epoch = math.ceil(n / spec.batch_size)
    optimiser = torch.optim.AdamW(network.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _constant_then_cosine(spec.epochs * steps_per_epoch, spec.decay_fraction)
    )
    history = []
    network.train()
    for epoch in range(1, spec.epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * spec.batch_size : (step + 1) * spec.batch_size]
            x = images[batch]
            if spec.flip_augment:
                flip = torch.rand(len(batch), generator=generator) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            logits, _ = network(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels[batch], pos_weight=torch.tensor(pos_weight)
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            total_loss += float(loss.item()) * len(batch)
        record = EpochRecord(epoch, spec.epochs, total_loss / n, time.perf_counter() - started)
        history.append(record)
        if progress is not None:
            progress(record)
    with torch.no_grad():
        # Weighted BCE is minimised at log-odds + log(pos_weight); remove the offset.
        network.head.bias.sub_(math.log(pos_weight))
    return network.eval(), tuple(history)


def calibrate(
    calibration_logits: NDArray[np.float32],
    calibration_labels: NDArray[np.int64],
    validation_logits: NDArray[np.float32],
    validation_labels: NDArray[np.int64],
    target_sensitivity: float,
) -> CalibrationResult:
    """Fit the temperature on the calibration split and choose the threshold on the validation split.

    Args:
        calibration_logits: Raw logits of the calibration split.
        calibration_labels: Its labels.
        validation_logits: Raw logits of the validation split.
        validation_labels: Its labels.
        target_sensitivity: Sensitivity the threshold must reach on validation.
    """
    temperature = fit_temperature(calibration_logits, calibration_labels)
    validation_probability = calibrated_probability(validation_logits, temperature)
    threshold = threshold_for_sensitivity(validation_probability, validation_labels, target_sensitivity)
    at_threshold = binary_metrics(validation_probability, validation_labels, threshold)
    return CalibrationResult(
        temperature=temperature,
        threshold=threshold,
        logit_threshold=temperature * math.log(threshold / (1.0 - threshold)),
        target_sensitivity=target_sensitivity,
        validation_sensitivity=at_threshold.sensitivity,
        validation_specificity=at_threshold.specificity,
        ece_before=expected_calibration_error(calibrated_probability(validation_logits, 1.0), validation_labels),
        ece_after=expected_calibration_error(validation_probability, validation_labels),
        ece_fit_before=expected_calibration_error(calibrated_probability(calibration_logits, 1.0), calibration_labels),
        ece_fit_after=expected_calibration_error(
            calibrated_probability(calibration_logits, temperature), calibration_labels
        ),
        calibration_count=len(calibration_labels),
        validation_count=len(validation_labels),
    )


def evaluate(split: str, probabilities: NDArray[np.float64], cohort: Cohort, threshold: float) -> Evaluation:
    """Overall and per-subgroup metrics of calibrated probabilities on a cohort."""
    overall = binary_metrics(probabilities, cohort.labels, threshold)
    groups = subgroup_metrics(probabilities, cohort.labels, threshold, cohort.subgroups())
    return Evaluation(split=split, overall=overall, subgroups=tuple(groups))


def train(
    spec: VersionSpec,
    seed: int = DEFAULT_SEED,
    *,
    cohorts: EvaluationCohorts | None = None,
    progress: Callable[[EpochRecord], None] | None = None,
) -> TrainedModel:
    """Train, calibrate and evaluate one version on simulated studies.

    Args:
        spec: The version to train (see :data:`VERSION_SPECS`).
        seed: Seed for the simulated hospital, the initialisation and the batch order.
        cohorts: Calibration/validation/test splits for this seed and scenario, if already generated
            (versions trained with one seed share them); generated from ``spec`` when omitted.
        progress: Called after every epoch.

    Returns:
        The trained model with its calibration, metrics and reference profile.
    """
    with _deterministic_cpu(TRAIN_THREADS):
        train_cohort = training_cohort(spec, seed)
        started = time.perf_counter()
        network, history = fit_network(spec, seed, train_cohort, progress)
        train_seconds = time.perf_counter() - started
        train_count, train_positives = len(train_cohort), int(train_cohort.labels.sum())
        del train_cohort
        if cohorts is None:
            cohorts = evaluation_cohorts(
                spec.scenario, seed, spec.calibration_studies, spec.validation_studies, spec.test_studies
            )
        engine = InferenceEngine(network)
        calibration_out = engine.predict(cohorts.calibration.images)
        validation_out = engine.predict(cohorts.validation.images)
        test_out = engine.predict(cohorts.test.images)
    # Temperature and threshold come from the development subset only (see VersionSpec.exclude_scanners).
    calibration_kept = _kept(cohorts.calibration, spec)
    validation_kept = _kept(cohorts.validation, spec)
    calibration = calibrate(
        calibration_out["LOGIT"][calibration_kept, 0],
        cohorts.calibration.labels[calibration_kept],
        validation_out["LOGIT"][validation_kept, 0],
        cohorts.validation.labels[validation_kept],
        spec.target_sensitivity,
    )
    validation_probability = calibrated_probability(validation_out["LOGIT"][:, 0], calibration.temperature)
    test_probability = calibrated_probability(test_out["LOGIT"][:, 0], calibration.temperature)
    valid = cohorts.validation
    reference = ReferenceProfile(
        logits=validation_out["LOGIT"][:, 0],
        probabilities=validation_probability.astype(np.float32),
        labels=valid.labels,
        embeddings=validation_out["EMBEDDING"],
        image_stats=validation_out["STATS"],
        study_index=valid.index,
        site=valid.site,
        manufacturer=valid.manufacturer,
        model=valid.model,
        pixel_spacing=valid.pixel_spacing,
        sex=valid.sex,
        age=valid.age,
    )
    return TrainedModel(
        spec=spec,
        seed=seed,
        network=network,
        calibration=calibration,
        validation=evaluate("validation", validation_probability, valid, calibration.threshold),
        test=evaluate("test", test_probability, cohorts.test, calibration.threshold),
        reference=reference,
        history=history,
        train_count=train_count,
        train_positives=train_positives,
        train_seconds=train_seconds,
    )
