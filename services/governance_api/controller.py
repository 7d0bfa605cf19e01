"""The rollout controller: watches monitor findings and ticks, and drives running rollouts through their gates.

Two triggers, one set of commands (the same the API uses, so policy, audit and routes are identical):

* a BREACH finding on ``radguard.findings.v1`` about the candidate version of a running rollout: when
  its monitor kind is one the rollout's policy rolls back on, the rollout is aborted at once (route
  100% to stable, candidate rolled back); otherwise the rollout is evaluated at once;
* every ``controller_interval_s``: each running rollout is evaluated (gates canary vs stable →
  promote, hold or abort).

The controller reads the findings topic without a consumer group from its end: every governance
instance sees every finding, and the request ids are derived from the finding and rollout, so the
service's idempotency makes a second instance's identical command a no-op. It runs inside the
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
from radguard.events.v1 import events_pb2
from services.runtime.errors import DomainError
from services.runtime.kafka import AsyncKafkaConsumer, ConsumedRecord
from services.runtime.telemetry import get_logger

_log = get_logger("radguard.governance.controller")

_KIND_NAMES = {
    events_pb2.MONITOR_KIND_DRIFT: "drift",
    events_pb2.MONITOR_KIND_CALIBRATION: "calibration",
    events_pb2.MONITOR_KIND_BIAS: "bias",
    events_pb2.MONITOR_KIND_PERFORMANCE: "performance",
}

#: Monitor kinds (drift, calibration, bias, performance) whose breach aborts a rollout, per its policy.
BreachKinds = Callable[[Rollout], Iterable[str]]


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
        consumer: AsyncKafkaConsumer | None,
        principal: str = "rollout-controller",
        interval_s: float = 10.0,
        poll_s: float = 0.1,
    ) -> None:
        """Create the controller (nothing runs until :meth:`start`).

        Args:
            service: The governance use cases.
            breach_kinds: The monitor kinds a rollout's policy rolls back on.
            consumer: Reads the findings topic (no group, from its end); None disables the reaction.
            principal: Identity the controller acts as (role service).
            interval_s: Time between evaluations of every running rollout.
            poll_s: Longest wait of one poll of the findings topic.
        """
        self._service = service
        self._breach_kinds = breach_kinds
        self._consumer = consumer
        self.actor = Actor(principal, Role.SERVICE)
        self._interval_s = interval_s
        self._poll_s = poll_s
        self._tasks: list[asyncio.Task[None]] = []
        #: Breach findings acted on, newest last (tests and metrics read it).
        self.reactions: list[BreachReaction] = []
        #: Set once the findings consumer is positioned at the topic's end.
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start the tick loop and (with a consumer) the findings loop."""
        loop = asyncio.get_running_loop()
        if not self._tasks:
            self._tasks.append(loop.create_task(self._tick_loop(), name="rollout-controller-ticks"))
            if self._consumer is not None:
                self._tasks.append(loop.create_task(self._findings_loop(), name="rollout-controller-findings"))

    async def stop(self) -> None:
        """Stop both loops and close the consumer."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.close()

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

    async def on_finding(self, finding: events_pb2.Finding) -> list[BreachReaction]:
        """React to one finding: abort or evaluate the running rollouts whose candidate it is about."""
        if finding.severity != events_pb2.SEVERITY_BREACH:
            return []
        started = time.perf_counter()
        kind = _KIND_NAMES.get(finding.kind, "")
        reactions = []
        for rollout in await self._service.active_rollouts():
            if (
                rollout.status is not RolloutStatus.RUNNING
                or rollout.model_name != finding.model.model_name
                or rollout.candidate_version != finding.model.model_version
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

    async def _handle(self, record: ConsumedRecord) -> None:
        if record.value is None:
            return
        try:
            finding = events_pb2.Finding.FromString(record.value)
        except Exception:
            _log.error("controller.malformed_finding", partition=record.partition, offset=record.offset)
            return
        await self.on_finding(finding)

    async def _findings_loop(self) -> None:
        assert self._consumer is not None
        delay = 0.5
        while True:
            try:
                await self._consumer.start()
                break
            except Exception as error:
                _log.warning("controller.findings_unreachable", error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        # Old findings were handled (or not) by whoever ran then: the consumer starts at the end
        # ("latest"); a first poll fixes that position now rather than at some later poll.
        with contextlib.suppress(Exception):
            for record in await self._consumer.getmany(timeout_s=0.05):
                await self._handle(record)
        self.listening.set()
        while True:
            try:
                records = await self._consumer.getmany(timeout_s=self._poll_s)
            except Exception as error:
                _log.warning("controller.findings_read_failed", error=str(error))
                await asyncio.sleep(1.0)
                continue
            for record in records:
                try:
                    await self._handle(record)
                except Exception:
                    _log.exception("controller.finding_failed", partition=record.partition, offset=record.offset)
