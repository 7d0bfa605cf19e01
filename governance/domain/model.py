"""Governance records: versions, transitions, approvals, rollouts, route tables and audit entries.

All records are frozen dataclasses; every time is a timezone-aware UTC datetime. Nothing here knows about
protobuf, SQL or Kafka: adapters translate these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from governance.domain.lifecycle import State
from kernel.serving import ServedVersion


class Role(StrEnum):
    """What an authenticated principal may act as."""

    CLINICIAN = "clinician"
    BOARD = "board"
    OPERATOR = "operator"
    SERVICE = "service"


@dataclass(frozen=True)
class Actor:
    """Who issues a command: an authenticated principal acting in one role."""

    principal: str
    role: Role


@dataclass(frozen=True)
class MetricValue:
    """One validation metric with its confidence interval (if any) and the sample it comes from."""

    name: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    support: int = 0


@dataclass(frozen=True)
class SubgroupMetricValue:
    """A validation metric within one subgroup, e.g. ``"scanner=vendor-b"``."""

    subgroup: str
    metric: MetricValue


@dataclass(frozen=True)
class ReferencePeriod:
    """Where a version's reference profile comes from, recorded with the version.

    Attributes:
        labelled_by: ``reads`` (as live windows are) or ``ground_truth``.
        description: The period in words (scenario or site, dates or study range).
        studies: Studies in the profile.
        reads: Studies with a read.
        read_positives: Positive reads.
        start: First time of the period, when the profile records it.
        end: Last time of the period, when the profile records it.
    """

    labelled_by: str
    description: str
    studies: int
    reads: int
    read_positives: int
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class VersionSpec:
    """What registering a version supplies; immutable once registered (corrections are new versions).

    The one exception is the reference profile (``reference_uri``, ``reference_sha256``,
    ``reference_period``): an applied :class:`ReferenceRenewal` replaces it, and the renewal keeps the
    previous one on record.
    """

    model_name: str
    version: str
    triton_model: str
    triton_version: int
    artifact_sha256: str
    model_card: str
    intended_use: str
    temperature: float
    calibration_fitted_on: str
    operating_threshold: float
    reference_uri: str
    reference_sha256: str
    validation_dataset: str
    validation_overall: tuple[MetricValue, ...]
    validation_subgroups: tuple[SubgroupMetricValue, ...]
    training_data: str
    code_revision: str
    parent_version: str
    policy_name: str
    calibration_revision: int = 1
    reference_period: ReferencePeriod | None = None


@dataclass(frozen=True)
class Version:
    """A registered version and where it stands; ``row_version`` guards concurrent updates."""

    spec: VersionSpec
    state: State
    registered_by: str
    registered_at: datetime
    state_changed_at: datetime
    policy_ref: str
    row_version: int = 1
    #: Who chose the reference in force: the registrant until a renewal applies, then its proposer.
    reference_chosen_by: str = ""
    #: The applied renewal whose reference is in force; empty while the registered one is.
    reference_renewal_id: str = ""

    @property
    def reference(self) -> Reference:
        """The reference profile in force, with who chose it."""
        return Reference(
            self.spec.reference_uri,
            self.spec.reference_sha256,
            self.spec.reference_period,
            self.reference_chosen_by or self.registered_by,
        )

    @property
    def model_name(self) -> str:
        """The model this version belongs to."""
        return self.spec.model_name

    @property
    def version(self) -> str:
        """The version label."""
        return self.spec.version

    @property
    def subject(self) -> str:
        """Audit subject, e.g. ``"model/chest-nodule/2"``."""
        return f"model/{self.spec.model_name}/{self.spec.version}"


class TransitionStatus(StrEnum):
    """Where a transition request stands."""

    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Approval:
    """An electronic signature over the canonical approval record.

    It signs one governance record: a transition (``transition_id``) or a reference renewal (``renewal_id``,
    ``transition_id`` empty).
    """

    approval_id: str
    transition_id: str
    signer: str
    role: Role
    meaning: str
    signed_at: datetime
    signature: bytes
    algorithm: str
    key_id: str
    renewal_id: str = ""


@dataclass(frozen=True)
class Reference:
    """A reference profile: where it is, its bytes' SHA-256, the period it was drawn from, who chose it."""

    uri: str
    sha256: str
    period: ReferencePeriod | None
    chosen_by: str


@dataclass(frozen=True)
class ReferenceRenewal:
    """A request to replace a version's reference profile, with the approvals gathered so far.

    It takes effect (``applied``) when the approvals its version's policy requires for reference renewals are
    in; ``previous`` keeps the reference it replaced. ``route_revision`` is the route table revision
    published when it took effect (0 when the version was on no route).
    """

    renewal_id: str
    model_name: str
    version: str
    previous: Reference
    proposed: Reference
    status: TransitionStatus
    requested_by: str
    requested_at: datetime
    reason: str
    approvals: tuple[Approval, ...] = ()
    unmet: tuple[str, ...] = ()
    decided_at: datetime | None = None
    route_revision: int = 0
    row_version: int = 1
    rejection_reason: str = ""

    @property
    def subject(self) -> str:
        """Audit subject."""
        return f"reference/{self.renewal_id}"


@dataclass(frozen=True)
class Transition:
    """A request to move a version between lifecycle states, with the approvals gathered so far.

    ``unmet`` lists the policy requirements still missing, human-readable; empty once met.
    ``row_version`` guards concurrent approvals (two signers racing on one transition).
    """

    transition_id: str
    model_name: str
    version: str
    from_state: State
    to_state: State
    status: TransitionStatus
    requested_by: str
    requested_at: datetime
    reason: str
    approvals: tuple[Approval, ...] = ()
    unmet: tuple[str, ...] = ()
    applied_at: datetime | None = None
    row_version: int = 1

    @property
    def name(self) -> str:
        """The policy's name for this move, e.g. ``"shadow->canary"``."""
        return f"{self.from_state}->{self.to_state}"

    @property
    def subject(self) -> str:
        """Audit subject."""
        return f"transition/{self.transition_id}"


class RolloutStatus(StrEnum):
    """Where a rollout stands."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"


class GateOutcome(StrEnum):
    """Result of one acceptance criterion."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"


class GateDecision(StrEnum):
    """What a step's gates conclude."""

    PROMOTE = "promote"
    HOLD = "hold"
    ABORT = "abort"


@dataclass(frozen=True)
class GateResult:
    """One acceptance criterion evaluated for canary versus stable on the same window."""

    gate: str
    outcome: GateOutcome
    observed: float
    limit: float
    detail: str
    finding_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RolloutStep:
    """One step of a rollout plan: canary share and the reads it needs before its gates can pass."""

    weight_bp: int
    min_reads: int


@dataclass(frozen=True)
class Rollout:
    """A gated canary rollout of a candidate version against the stable version.

    ``step_started_at`` is when the current step began: gates compare both arms on the window since then.
    """

    rollout_id: str
    model_name: str
    candidate_version: str
    stable_version: str
    plan: tuple[RolloutStep, ...]
    step_index: int
    weight_bp: int
    status: RolloutStatus
    last_decision: GateDecision | None
    gates: tuple[GateResult, ...]
    reasons: tuple[str, ...]
    started_by: str
    started_at: datetime
    updated_at: datetime
    policy_ref: str
    row_version: int = 1
    step_started_at: datetime | None = None

    @property
    def subject(self) -> str:
        """Audit subject."""
        return f"rollout/{self.rollout_id}"

    @property
    def at_last_step(self) -> bool:
        """Whether the current step is the plan's last."""
        return self.step_index >= len(self.plan) - 1

    @property
    def active(self) -> bool:
        """Running or paused (the canary holds traffic)."""
        return self.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)


@dataclass(frozen=True)
class RouteState:
    """A model's route table: who serves, who is under canary at what share, who shadows.

    ``served`` holds one entry per version on the table (stable, canary, shadows, in that order); tables
    stored before it existed decode with none.
    """

    model_name: str
    stable_version: str
    canary_version: str
    canary_weight_bp: int
    shadow_versions: tuple[str, ...]
    revision: int
    updated_at: datetime
    reason: str
    rollout_id: str = ""
    served: tuple[ServedVersion, ...] = ()

    def serving(self) -> frozenset[str]:
        """Every version this table sends traffic (or shadow copies) to."""
        versions = {v for v in (self.stable_version, self.canary_version) if v}
        return frozenset(versions | set(self.shadow_versions))


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the append-only audit chain (see :mod:`governance.domain.audit`)."""

    seq: int
    prev_hash: str
    hash: str
    actor: str
    actor_role: Role
    action: str
    subject: str
    before_json: str
    after_json: str
    time: datetime
    request_id: str


@dataclass(frozen=True)
class OutboxMessage:
    """A message to publish after commit: a route table or an audit entry, as JSON-ready data."""

    kind: Literal["route", "audit"]
    key: str
    payload: dict[str, Any] = field(default_factory=dict)
