"""Shared builders for governance tests: a service over fakes (or any store), actors, specs, evidence."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from governance.adapters.memory import FakeEvidence, FakeTriton, ManualClock, MemoryStore
from governance.domain.gates import ArmEvidence
from governance.domain.lifecycle import State
from governance.domain.model import Actor, MetricValue, Role, SubgroupMetricValue, VersionSpec
from governance.domain.policy import PolicyCatalog
from governance.domain.signing import Keyring, generate_keyring
from governance.ports import GovernanceStore
from governance.service import GovernanceService

MODEL = "chest-nodule"
TRITON = "chest_nodule"

OPERATOR = Actor("olga", Role.OPERATOR)
OPERATOR2 = Actor("otto", Role.OPERATOR)
BOARD = Actor("bea", Role.BOARD)
BOARD2 = Actor("bob", Role.BOARD)
CLINICIAN = Actor("cleo", Role.CLINICIAN)
SERVICE = Actor("controller", Role.SERVICE)
BOARD_REGISTRANT = Actor("bree", Role.BOARD)
ACTORS = (OPERATOR, OPERATOR2, BOARD, BOARD2, CLINICIAN, SERVICE, BOARD_REGISTRANT)

_KEYRINGS: list[Keyring] = []


def keyring() -> Keyring:
    """One keyring for every test actor (key generation is the slow part)."""
    if not _KEYRINGS:
        _KEYRINGS.append(generate_keyring(sorted({a.principal for a in ACTORS})))
    return _KEYRINGS[0]


def spec(
    version: str = "1", *, triton_version: int | None = None, policy: str = "fast-test", **changes: Any
) -> VersionSpec:
    """A valid registration of ``chest-nodule`` ``version``."""
    base = VersionSpec(
        model_name=MODEL,
        version=version,
        triton_model=TRITON,
        triton_version=triton_version if triton_version is not None else int(version),
        artifact_sha256="ab" * 32,
        model_card="CNN nodule detector",
        intended_use="Second reader for chest radiographs",
        temperature=1.2,
        calibration_fitted_on="sim-2025-01",
        operating_threshold=0.5,
        reference_uri="model_repo/chest_nodule/reference.json",
        reference_sha256="cd" * 32,
        validation_dataset="sim-validation-1",
        validation_overall=(MetricValue("auroc", 0.91, 0.89, 0.93, 0.95, 1000),),
        validation_subgroups=(
            SubgroupMetricValue("scanner=a", MetricValue("sensitivity", 0.85, None, None, None, 120)),
        ),
        training_data="sim-train-1",
        code_revision="abc123",
        parent_version="",
        policy_name=policy,
        calibration_revision=1,
    )
    return replace(base, **changes)


def evidence(
    n: int, *, noise: float = 0.0, seed: int = 0, scanner_bad: str = "", read_fraction: float = 1.0
) -> ArmEvidence:
    """Simulated arm evidence: calibrated scores (labels drawn from them), reads, decisions at 0.5, overrides.

    ``noise`` blurs the scores (lower AUROC, worse calibration); ``scanner_bad`` makes the model miss every
    positive on that scanner.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 2.0, n)
    truth = 1 / (1 + np.exp(-z))
    labels = rng.random(n) < truth
    scores = 1 / (1 + np.exp(-(z + rng.normal(0, noise, n)))) if noise else truth
    scanners = np.array(["a", "b"])[rng.integers(0, 2, n)]
    decisions = scores >= 0.5
    if scanner_bad:
        decisions = np.where(scanners == scanner_bad, False, decisions)
    read = rng.random(n) < read_fraction
    return ArmEvidence(
        scores=scores.tolist(),
        labels=[int(lab) if r else None for lab, r in zip(labels, read, strict=True)],
        decisions=decisions.tolist(),
        overrides=[bool(d != lab) if r else None for d, lab, r in zip(decisions, labels, read, strict=True)],
        subgroups={"scanner": scanners.tolist()},
    )


@dataclass
class World:
    """A service over a store plus the fakes, with request ids and shortcuts for common flows."""

    store: GovernanceStore
    triton: FakeTriton = field(default_factory=FakeTriton)
    evidence: FakeEvidence = field(default_factory=FakeEvidence)
    clock: ManualClock = field(default_factory=ManualClock)
    service: GovernanceService = field(init=False)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.service = GovernanceService(self.store, self.triton, self.evidence, PolicyCatalog(), keyring(), self.clock)

    def rid(self) -> str:
        return f"req-{next(self._ids)}"

    async def register(self, version: str = "1", actor: Actor = OPERATOR, **changes: Any):
        return await self.service.register_version(actor, spec(version, **changes), self.rid())

    async def move(self, version: str, to: State, *, approvers: tuple[Actor, ...] = (BOARD,), actor: Actor = OPERATOR):
        t = await self.service.request_transition(actor, MODEL, version, to, f"to {to}", self.rid())
        for approver in approvers:
            if t.status != "pending":
                break
            _, t = await self.service.approve(approver, t.transition_id, "approve", self.rid())
        return t

    async def production(self, version: str = "1"):
        """Register ``version`` and make it the first production version (fast-test policy)."""
        await self.register(version)
        await self.move(version, State.VALIDATED)
        return await self.move(version, State.PRODUCTION)

    async def shadow(self, version: str = "2", predictions: int = 50):
        await self.register(version)
        await self.move(version, State.VALIDATED)
        await self.move(version, State.SHADOW)
        self.evidence.set(MODEL, version, "shadow", evidence(predictions, seed=99))

    async def canary(self, version: str = "2"):
        """v1 production, ``version`` shadowed, approved for canary and rolled out at step 1."""
        await self.production("1")
        await self.shadow(version)
        await self.move(version, State.CANARY, approvers=(CLINICIAN,))
        return await self.service.start_rollout(OPERATOR, MODEL, version, "canary", self.rid())


def memory_world() -> World:
    return World(MemoryStore())
