"""Recalibration proposals: a temperature fitted with torch on a window's reads, checked on held-out reads.

This is the one module that imports torch (on first use: it is slow to import). Temperature scaling maps
a raw score (logit) s to ``sigmoid(s / T)``; one parameter cannot overfit a window of reads, and it keeps
the ranking (AUROC) unchanged, so only calibration moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kernel.calibration import BinTotals
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.window import Window

_MAX_ITERATIONS = 100
_LOG_T_BOUND = 5.0  # T in [e^-5, e^5]: anything beyond says the scores carry no usable signal


@dataclass(frozen=True)
class RecalibrationProposal:
    """A proposed new calibration for a version, with the evidence for it.

    Attributes:
        model_name: The model.
        model_version: The version it would recalibrate.
        temperature: Proposed temperature T (probability = sigmoid(score / T)).
        ece_before: ECE of the served probabilities on the held-out reads.
        ece_after: ECE of ``sigmoid(score / T)`` on the same held-out reads.
        nll_before: Mean negative log-likelihood of the served probabilities on held-out reads.
        nll_after: The same after recalibration.
        n_fit: Reads used to fit T.
        n_holdout: Held-out reads used to judge it.
        bins: Bins of the ECEs.
    """

    model_name: str
    model_version: str
    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n_fit: int
    n_holdout: int
    bins: int

    @property
    def improves(self) -> bool:
        """True when the held-out ECE and log-likelihood both improve."""
        return self.ece_after < self.ece_before and self.nll_after < self.nll_before


def fit_temperature(scores: ArrayLike, labels: ArrayLike) -> float:
    """Temperature minimising the binary cross-entropy of ``sigmoid(scores / T)`` (torch, L-BFGS).

    Args:
        scores: Raw scores (logits).
        labels: 0/1 labels.

    Returns:
        T > 0 (optimised as log T, so it stays positive; bounded to [e^-5, e^5]).
    """
    import torch

    s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=_MAX_ITERATIONS, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss: torch.Tensor = loss_fn(s / torch.exp(log_t), y)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return math.exp(float(np.clip(log_t.detach().item(), -_LOG_T_BOUND, _LOG_T_BOUND)))


def _nll(probabilities: NDArray[np.float64], labels: NDArray[np.float64]) -> float:
    p = np.clip(probabilities, 1e-12, 1.0 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p)))


def propose_recalibration(
    window: Window, *, bins: int = 10, holdout_fraction: float = 0.3, seed: int = 0
) -> RecalibrationProposal:
    """Fit a temperature on part of a window's reads and report before/after ECE on the rest.

    Args:
        window: Predictions with reads (rows without a read are ignored).
        bins: ECE bins.
        holdout_fraction: Share of the reads held out to judge the fit.
        seed: Seed of the random split (a finding must be reproducible).

    Returns:
        The proposal.

    Raises:
        ValueError: If there are too few reads to fit and judge (fewer than 10 on either side) or the
            fraction is not in (0, 1).
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    rows = np.flatnonzero(window.labelled)
    order = np.random.default_rng(seed).permutation(rows)
    n_holdout = round(rows.size * holdout_fraction)
    holdout, fit = order[:n_holdout], order[n_holdout:]
    if holdout.size < 10 or fit.size < 10:
        raise ValueError(f"need at least 10 reads to fit and 10 to judge, have {fit.size} and {holdout.size}")
    temperature = fit_temperature(window.score[fit], window.label[fit])
    labels = window.label[holdout]
    before = window.probability[holdout]
    after = 1.0 / (1.0 + np.exp(-window.score[holdout] / temperature))
    return RecalibrationProposal(
        model_name=window.model_name,
        model_version=window.model_version,
        temperature=temperature,
        ece_before=BinTotals.of(before, labels, bins).ece,
        ece_after=BinTotals.of(after, labels, bins).ece,
        nll_before=_nll(before, labels),
        nll_after=_nll(after, labels),
        n_fit=int(fit.size),
        n_holdout=int(holdout.size),
        bins=bins,
    )


def proposal_statistics(proposal: RecalibrationProposal) -> tuple[Statistic, ...]:
    """The proposal as a finding's statistics (info: a proposal is evidence for a decision, not an alarm)."""
    held_out = f"{proposal.n_holdout} held-out reads"
    return (
        Statistic(
            name="recalibration_temperature",
            value=proposal.temperature,
            test="temperature-scaling",
            n=proposal.n_fit,
            note=f"proposed: probability = sigmoid(score / T), T fitted on {proposal.n_fit} reads",
        ),
        Statistic(name="recalibration_ece_before", value=proposal.ece_before, n=proposal.n_holdout, note=held_out),
        Statistic(
            name="recalibration_ece_after",
            value=proposal.ece_after,
            n=proposal.n_holdout,
            note=(
                f"{held_out}; ECE {'improves' if proposal.ece_after < proposal.ece_before else 'does not improve'}, "
                f"log-loss {'improves' if proposal.nll_after < proposal.nll_before else 'does not improve'}"
            ),
        ),
        Statistic(name="recalibration_nll_before", value=proposal.nll_before, n=proposal.n_holdout, note=held_out),
        Statistic(name="recalibration_nll_after", value=proposal.nll_after, n=proposal.n_holdout, note=held_out),
    )


def with_recalibration_proposal(finding: Finding, window: Window, spec: CalibrationSpec) -> Finding:
    """Add a recalibration proposal to a breached calibration finding whose window has enough reads.

    Other findings come back unchanged. The split is seeded by the spec, so the proposal is reproducible.

    Args:
        finding: The calibration monitor's finding about ``window``.
        window: The window, with its reads.
        spec: The calibration spec (minimum reads, held-out share, seed).

    Returns:
        The finding, with the proposal's statistics and a summary that states it when one was made.
    """
    if finding.kind is not MonitorKind.CALIBRATION or finding.severity is not Severity.BREACH:
        return finding
    reads = int(np.count_nonzero(window.labelled))
    if reads < spec.recalibrate_min_reads:
        note = f"no recalibration proposal: {reads} reads, {spec.recalibrate_min_reads} needed"
        return finding.with_statistics(
            (Statistic(name="recalibration_reads", value=float(reads), n=reads, note=note),), finding.summary
        )
    proposal = propose_recalibration(
        window, bins=spec.bins, holdout_fraction=spec.recalibration_holdout, seed=spec.seed
    )
    summary = (
        f"{finding.summary}; recalibration proposal T={proposal.temperature:.3f}: held-out ECE "
        f"{proposal.ece_before:.3f} -> {proposal.ece_after:.3f} ({proposal.n_holdout} reads)"
    )
    return finding.with_statistics(proposal_statistics(proposal), summary)
