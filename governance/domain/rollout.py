"""The pure state machine of a rollout: start, pause, resume, abort, promote and the controller's decisions.

Functions return a new :class:`~governance.domain.model.Rollout` (records are immutable) or raise
:class:`~services.runtime.errors.FailedPrecondition` naming why the move is not possible. Route tables and
version states are the service's business; it reads ``weight_bp`` and ``status`` from the result.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from governance.domain.model import GateDecision, GateResult, Rollout, RolloutStatus, RolloutStep
from services.runtime.errors import FailedPrecondition


def start(
    rollout_id: str,
    model_name: str,
    candidate_version: str,
    stable_version: str,
    plan: tuple[RolloutStep, ...],
    started_by: str,
    now: datetime,
    policy_ref: str,
    reason: str,
) -> Rollout:
    """A running rollout at its first step."""
    if not plan:
        raise FailedPrecondition("rollout plan has no steps")
    return Rollout(
        rollout_id=rollout_id,
        model_name=model_name,
        candidate_version=candidate_version,
        stable_version=stable_version,
        plan=plan,
        step_index=0,
        weight_bp=plan[0].weight_bp,
        status=RolloutStatus.RUNNING,
        last_decision=None,
        gates=(),
        reasons=(f"started by {started_by}: {reason}" if reason else f"started by {started_by}",),
        started_by=started_by,
        started_at=now,
        updated_at=now,
        policy_ref=policy_ref,
        row_version=1,
        step_started_at=now,
    )


def _require(rollout: Rollout, *statuses: RolloutStatus, doing: str) -> None:
    if rollout.status not in statuses:
        wanted = " or ".join(str(s) for s in statuses)
        raise FailedPrecondition(
            f"{doing} requires a {wanted} rollout; rollout {rollout.rollout_id} is {rollout.status}"
        )


def _note(rollout: Rollout, reason: str, now: datetime, **changes: object) -> Rollout:
    return replace(rollout, reasons=(*rollout.reasons, reason), updated_at=now, **changes)  # type: ignore[arg-type]


def pause(rollout: Rollout, by: str, reason: str, now: datetime) -> Rollout:
    """Hold a running rollout at its step (the canary keeps its weight)."""
    _require(rollout, RolloutStatus.RUNNING, doing="pause")
    return _note(rollout, f"paused by {by}: {reason}", now, status=RolloutStatus.PAUSED)


def resume(rollout: Rollout, by: str, reason: str, now: datetime) -> Rollout:
    """Let a paused rollout evaluate its gates again."""
    _require(rollout, RolloutStatus.PAUSED, doing="resume")
    return _note(rollout, f"resumed by {by}: {reason}", now, status=RolloutStatus.RUNNING)


def abort(rollout: Rollout, by: str, reason: str, now: datetime) -> Rollout:
    """Stop a running or paused rollout; all traffic goes back to stable."""
    _require(rollout, RolloutStatus.RUNNING, RolloutStatus.PAUSED, doing="abort")
    return _note(rollout, f"aborted by {by}: {reason}", now, status=RolloutStatus.ABORTED, weight_bp=0)


def promote(rollout: Rollout, by: str, reason: str, now: datetime) -> Rollout:
    """Advance one step; from the last step the rollout completes (the candidate becomes production)."""
    _require(rollout, RolloutStatus.RUNNING, RolloutStatus.PAUSED, doing="promote")
    if rollout.at_last_step:
        return _note(rollout, f"completed by {by}: {reason}", now, status=RolloutStatus.COMPLETED)
    index = rollout.step_index + 1
    weight = rollout.plan[index].weight_bp
    text = f"promoted by {by} to step {index + 1} of {len(rollout.plan)} ({weight / 100:g}%): {reason}"
    return _note(rollout, text, now, step_index=index, weight_bp=weight, step_started_at=now)


def record_evaluation(
    rollout: Rollout, decision: GateDecision, gates: tuple[GateResult, ...], now: datetime, reason: str = ""
) -> Rollout:
    """Store an evaluation's result without moving (a hold, or a promote awaiting approvals)."""
    _require(rollout, RolloutStatus.RUNNING, doing="evaluate")
    changes: dict[str, object] = {"last_decision": decision, "gates": gates, "updated_at": now}
    if reason and (not rollout.reasons or rollout.reasons[-1] != reason):
        changes["reasons"] = (*rollout.reasons, reason)
    return replace(rollout, **changes)  # type: ignore[arg-type]


def apply_decision(
    rollout: Rollout, decision: GateDecision, gates: tuple[GateResult, ...], by: str, now: datetime
) -> Rollout:
    """Apply the controller's decision for the current step.

    ``promote`` advances (or completes from the last step), ``hold`` records the gates, ``abort`` stops.
    """
    evaluated = record_evaluation(rollout, decision, gates, now)
    failing = ", ".join(g.gate for g in gates if g.outcome == "fail") or "gates"
    if decision == GateDecision.ABORT:
        return abort(evaluated, by, f"{failing} failed at step {rollout.step_index + 1}", now)
    if decision == GateDecision.PROMOTE:
        return promote(evaluated, by, f"gates passed at step {rollout.step_index + 1}", now)
    waiting = ", ".join(g.gate for g in gates if g.outcome != "pass") or "evidence"
    return record_evaluation(evaluated, decision, gates, now, f"holding at step {rollout.step_index + 1}: {waiting}")
