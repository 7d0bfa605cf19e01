"""The prediction use case: route, infer, calibrate, answer, record — shadows off the answer's path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from services.gateway.calibration import Calibration
from services.gateway.domain import ModelOutputs, PredictCommand, Prediction
from services.gateway.idempotency import AnswerJournal
from services.gateway.ports import InferenceBackend, ModelCatalog, PredictionSink
from services.gateway.routing import Arm, Assignment, RouteBook, assign
from services.runtime.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.runtime.ids import uuid7

#: Runs the assigned model version for one request and returns its outputs.
Runner = Callable[[str], Awaitable[ModelOutputs]]


@dataclass(frozen=True)
class HandlerLimits:
    """Timeouts and sizes of the prediction use case."""

    infer_timeout_s: float = 5.0
    shadow_timeout_s: float = 10.0
    max_shadow_in_flight: int = 64


class PredictHandler:
    """Scores one study with the version its route assigns, and records the prediction.

    One answer per request: calls with the same (model, request id) share one inference while it runs
    (single flight), and get the recorded answer afterwards for as long as the answer journal keeps it.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        catalog: ModelCatalog,
        routes: RouteBook,
        sink: PredictionSink,
        limits: HandlerLimits | None = None,
        answers: AnswerJournal | None = None,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.routes = routes
        self.sink = sink
        self.limits = limits or HandlerLimits()
        self.answers = answers if answers is not None else AnswerJournal(None, b"in-memory-answers", max_entries=10_000)
        self._in_flight: dict[tuple[str, str], asyncio.Task[Prediction]] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        #: Shadow calls that failed or were skipped under load (exported as a metric by the composition root).
        self.shadow_failures = 0

    def assignment(self, model_name: str, study_uid: str, pinned_version: str = "") -> Assignment:
        """The route a study takes; NotFound if the model has no route.

        A caller may pin the version (the Open Inference Protocol lets clients name one); only the
        versions the route currently serves can be pinned, so governance still decides what answers.
        """
        route = self.routes.get(model_name)
        if route is None:
            if not self.routes.loaded:
                # The model may well have a route we have not read yet: a retry will tell.
                raise Unavailable("routes", "the route table is not loaded yet; retry shortly")
            raise NotFound(f"model '{model_name}'")
        chosen = assign(route, study_uid)
        if not pinned_version or pinned_version == chosen.version:
            return chosen
        if pinned_version == route.stable_version:
            arm = Arm.STABLE
        elif pinned_version == route.canary_version and route.canary_weight_bp > 0:
            arm = Arm.CANARY
        else:
            raise InvalidArgument(
                "model_version",
                f"version {pinned_version} of '{model_name}' is not being served "
                f"(stable {route.stable_version}); leave it empty to follow the route",
            )
        shadows = tuple(v for v in route.shadow_versions if v != pinned_version)
        return Assignment(pinned_version, arm, shadows, route.revision)

    async def predict(
        self,
        command: PredictCommand,
        received_at: float | None = None,
        runner: Runner | None = None,
        pinned_version: str = "",
    ) -> Prediction:
        """Answer one study.

        Args:
            command: The validated request.
            received_at: ``time.perf_counter()`` when the request arrived (for latency).
            runner: How to run the assigned version instead of ``backend.infer`` (the OIP endpoint
                forwards the caller's own request to Triton this way, without rebuilding it).
            pinned_version: A version the caller asked for explicitly (see :meth:`assignment`).
        """
        t0 = received_at if received_at is not None else time.perf_counter()
        if not command.request_id:
            # A call without a request id (a plain Open Inference Protocol call) has no retry identity:
            # it is answered once, with nothing to share or remember.
            return await self._predict_once(command, t0, runner, pinned_version)
        key = (command.model_name, command.request_id)
        answered = self.answers.lookup(*key)
        if answered is not None:
            return answered
        running = self._in_flight.get(key)
        if running is None:
            # The inference runs as its own task: a caller that goes away does not cancel it for the
            # others waiting on it, and its answer is recorded for the retry that will follow.
            running = asyncio.get_running_loop().create_task(self._predict_once(command, t0, runner, pinned_version))
            self._in_flight[key] = running
            running.add_done_callback(lambda task: self._settled(key, task))
        return await asyncio.shield(running)

    def _settled(self, key: tuple[str, str], task: asyncio.Task[Prediction]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody waited for is not reported as lost

    async def _predict_once(
        self, command: PredictCommand, t0: float, runner: Runner | None, pinned_version: str
    ) -> Prediction:
        if not self.sink.accepting():
            raise ResourceExhausted("prediction events cannot be recorded (spool full); retry later")
        # Sticky by study; a call without a study uid is assigned by its request id, or at random without one.
        routing_key = command.study.study_uid or command.request_id or uuid7()
        target = self.assignment(command.model_name, routing_key, pinned_version)
        calibration = self.catalog.calibration(command.model_name, target.version)
        if runner is not None:
            outputs = await runner(target.version)
        else:
            outputs = (
                await self.backend.infer(
                    command.model_name, target.version, command.image[np.newaxis], self.limits.infer_timeout_s
                )
            )[0]
        prediction = self._prediction(command, target.version, target.arm, outputs, target.revision, t0, calibration)
        self.sink.record(command, prediction)
        if command.request_id:
            self.answers.remember(command.model_name, command.request_id, prediction)
        for version in target.shadows:
            self._start_shadow(command, version, prediction)
        return prediction

    def _prediction(
        self,
        command: PredictCommand,
        version: str,
        arm: Arm,
        outputs: ModelOutputs,
        revision: int,
        t0: float,
        cal: Calibration,
        served_id: str = "",
    ) -> Prediction:
        probability = cal.probability(outputs.logit)
        return Prediction(
            prediction_id=uuid7(),
            model_name=command.model_name,
            version=version,
            arm=arm,
            raw_score=outputs.logit,
            probability=probability,
            positive=cal.decide(probability),
            threshold=cal.threshold,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            route_revision=revision,
            outputs=outputs,
            served_prediction_id=served_id,
        )

    def _start_shadow(self, command: PredictCommand, version: str, served: Prediction) -> None:
        if len(self._shadow_tasks) >= self.limits.max_shadow_in_flight:
            self.shadow_failures += 1
            return  # shadows are best effort and must never build up behind the served path
        task = asyncio.get_running_loop().create_task(self._shadow(command, version, served))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(self, command: PredictCommand, version: str, served: Prediction) -> None:
        t0 = time.perf_counter()
        try:
            calibration = self.catalog.calibration(command.model_name, version)
            outputs = (
                await self.backend.infer(
                    command.model_name, version, command.image[np.newaxis], self.limits.shadow_timeout_s
                )
            )[0]
        except Exception:
            self.shadow_failures += 1
            return
        shadow = self._prediction(
            command, version, Arm.SHADOW, outputs, served.route_revision, t0, calibration, served.prediction_id
        )
        try:
            self.sink.record(command, shadow)
        except ResourceExhausted:
            self.shadow_failures += 1  # the spool is full: the served answers' events come first

    async def drain_shadows(self) -> None:
        """Wait for in-flight shadow calls (shutdown and tests)."""
        if self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)
