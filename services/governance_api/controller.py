"""The rollout controller: watches monitor findings and ticks, and drives running rollouts through their gates.

Two triggers, one set of commands (the same the API uses, so policy, audit and routes are identical):

* a BREACH finding on ``radguard.findings.v1`` about the candidate version of a running rollout: when
  its monitor kind is one the rollout's policy rolls back on, the rollout is aborted at once (route
  100% to stable, candidate rolled back); otherwise the rollout is evaluated at once;
* every ``controller_interval_s``: each running rollout is evaluated (gates canary vs stable →
  promote, hold or abort).

Findings arrive as :class:`FindingNotice` from ``adapters/findings_kafka.py``, which reads the topic
without a consumer group from its end: every governance instance sees every finding, and the request
ids are derived from the finding and rollout, so the service's idempotency makes a second instance's
identical command a no-op. It runs inside the
governance process (``RADGUARD_CONTROLLER_ENABLED``, on by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from governance.domain.model import Actor, Role, Rollout, RolloutStatus
from governance.service import GovernanceService
from services.runtime.errors import DomainError
from services.runtime.telemetry import get_logger

_log = get_logger("radguard.governance.controller")

#: Monitor kinds (drift, calibration, bias, performance) whose breach aborts a rollout, per its policy.
BreachKinds = Callable[[Rollout], Iterable[str]]


@dataclass(frozen=True)
class FindingNotice:
    """What the controller needs to know about one monitor finding.

    Attributes:
        finding_id: The finding's id.
        kind: Monitor kind: drift, calibration, bias or performance ("" if unknown).
        model_name: Model evaluated.
        model_version: Version evaluated.
        breach: Whether its severity is BREACH.
        summary: One-line human summary.
    """

    finding_id: str
    kind: str
    model_name: str
    model_version: str
    breach: bool
    summary: str = ""


@dataclass(frozen=True)
class BreachReaction:
    """What the controller did about one breach finding."""

    finding_id: str
    rollout_id: str
    action: str  # "abort" | "evaluate"
    status_after: str
    latency_ms: float


class RolloutController:
    """Evaluates running rollouts on a timer and reacts to breach findings at once."""

    def __init__(
        self,
        service: GovernanceService,
        breach_kinds: BreachKinds,
        *,
        principal: str = "rollout-controller",
        interval_s: float = 10.0,
    ) -> None:
        """Create the controller (nothing runs until :meth:`start`).

        Args:
            service: The governance use cases.
            breach_kinds: The monitor kinds a rollout's policy rolls back on.
            principal: Identity the controller acts as (role service).
            interval_s: Time between evaluations of every running rollout.
        """
        self._service = service
        self._breach_kinds = breach_kinds
        self.actor = Actor(principal, Role.SERVICE)
        self._interval_s = interval_s
        self._tasks: list[asyncio.Task[None]] = []
        #: Breach findings acted on, newest last (tests and metrics read it).
        self.reactions: list[BreachReaction] = []

    def start(self) -> None:
        """Start the tick loop (findings come in through :meth:`on_finding`)."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self._tick_loop(), name="rollout-controller-ticks"))

    async def stop(self) -> None:
        """Stop the tick loop."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- ticks ----------------------------------------------------------------------------------

    async def tick(self) -> list[Rollout]:
        """Evaluate every running rollout once; returns them after evaluation."""
        results = []
        for rollout in await self._service.active_rollouts():
            if rollout.status is not RolloutStatus.RUNNING:
                continue
            results.append(await self._evaluate(rollout, f"controller-tick-{uuid.uuid4().hex}", "tick"))
        return results

    async def _evaluate(self, rollout: Rollout, request_id: str, trigger: str) -> Rollout:
        try:
            after = await self._service.evaluate_rollout(self.actor, rollout.rollout_id, request_id)
        except DomainError as error:
            _log.warning(
                "controller.evaluate_refused", rollout_id=rollout.rollout_id, trigger=trigger, error=error.message
            )
            return rollout
        _log.info(
            "controller.decision",
            rollout_id=after.rollout_id,
            model=after.model_name,
            candidate=after.candidate_version,
            trigger=trigger,
            decision=str(after.last_decision) if after.last_decision else "none",
            status=str(after.status),
            step=after.step_index,
            weight_bp=after.weight_bp,
            gates=";".join(f"{g.gate}={g.outcome}" for g in after.gates),
        )
        return after

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.tick()
            except Exception:  # a tick must never end the controller
                _log.exception("controller.tick_failed")

    # --- findings -------------------------------------------------------------------------------

    async def on_finding(self, finding: FindingNotice) -> list[BreachReaction]:
        """React to one finding: abort or evaluate the running rollouts whose candidate it is about."""
        if not finding.breach:
            return []
        started = time.perf_counter()
        kind = finding.kind
        reactions = []
        for rollout in await self._service.active_rollouts():
            if (
                rollout.status is not RolloutStatus.RUNNING
                or rollout.model_name != finding.model_name
                or rollout.candidate_version != finding.model_version
            ):
                continue
            request_id = f"finding-{finding.finding_id}-{rollout.rollout_id}"
            if kind in set(self._breach_kinds(rollout)):
                reason = f"breach finding {finding.finding_id} ({kind}): {finding.summary}"
                try:
                    after = await self._service.abort_rollout(self.actor, rollout.rollout_id, reason, request_id)
                except DomainError as error:
                    _log.warning("controller.abort_refused", rollout_id=rollout.rollout_id, error=error.message)
                    continue
                action = "abort"
            else:
                after = await self._evaluate(rollout, request_id, "finding")
                action = "evaluate"
            reaction = BreachReaction(
                finding.finding_id,
                rollout.rollout_id,
                action,
                str(after.status),
                round((time.perf_counter() - started) * 1000.0, 3),
            )
            _log.info(
                "controller.breach_reaction",
                finding_id=reaction.finding_id,
                kind=kind,
                rollout_id=reaction.rollout_id,
                model=rollout.model_name,
                candidate=rollout.candidate_version,
                action=action,
                status=reaction.status_after,
                latency_ms=reaction.latency_ms,
            )
            reactions.append(reaction)
        self.reactions.extend(reactions)
        return reactions
