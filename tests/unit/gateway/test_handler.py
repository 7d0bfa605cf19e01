"""The prediction use case with fakes behind its ports."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import numpy.typing as npt
import pytest

from services.gateway.calibration import Calibration
from services.gateway.domain import Acquisition, ModelOutputs, PredictCommand, Prediction, Sex, Study
from services.gateway.handlers import PredictHandler
from services.gateway.routing import BUCKETS, Arm, Route, RouteBook
from services.runtime.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[str] = []
        #: Version "3" hangs until this is set, then fails.
        self.release_broken = asyncio.Event()

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        self.calls.append(version)
        if version == "3":
            await self.release_broken.wait()
            raise RuntimeError("shadow version broken")
        logit = float(images.mean()) + float(version)
        return [ModelOutputs(logit, (1.0, 2.0), {"intensity.mean": float(images.mean())})]

    async def ready(self) -> bool:
        return True


class FakeCatalog:
    def input_shape(self, model_name: str) -> tuple[int, ...]:
        if model_name != "m":
            raise NotFound(f"model '{model_name}'")
        return (1, 4, 4)

    def calibration(self, model_name: str, version: str) -> Calibration:
        return Calibration(2.0, 0.6)

    def outputs(self, model_name: str) -> tuple[str, ...]:
        return ("LOGIT",)


class FakeSink:
    def __init__(self) -> None:
        self.recorded: list[Prediction] = []
        self.open = True
        self.room: int | None = None  # events it takes before it is full (None: no limit)

    def accepting(self) -> bool:
        return self.open

    def record(self, command: PredictCommand, prediction: Prediction) -> None:
        if self.room is not None and len(self.recorded) >= self.room:
            raise ResourceExhausted("spool full")
        self.recorded.append(prediction)


def command(study: str = "s1", request_id: str = "r1") -> PredictCommand:
    return PredictCommand(
        "m", request_id, Study(study), "p", Sex.FEMALE, 70, Acquisition(), np.full((1, 4, 4), 0.5, dtype=np.float32)
    )


def handler(route: Route, backend: FakeBackend | None = None) -> tuple[PredictHandler, FakeSink, FakeBackend]:
    book = RouteBook()
    book.apply(route)
    book.mark_loaded()
    sink = FakeSink()
    be = backend or FakeBackend()
    return PredictHandler(be, FakeCatalog(), book, sink), sink, be


@pytest.mark.asyncio
async def test_served_prediction_is_calibrated_and_recorded() -> None:
    h, sink, _ = handler(Route("m", "1", revision=4))
    p = await h.predict(command())
    assert p.version == "1" and p.arm is Arm.STABLE and p.route_revision == 4
    assert p.raw_score == pytest.approx(1.5)
    assert p.probability == pytest.approx(1 / (1 + math.exp(-0.75)))
    assert p.positive == (p.probability >= 0.6)
    assert sink.recorded == [p]


@pytest.mark.asyncio
async def test_retry_with_same_request_id_returns_the_first_answer() -> None:
    h, sink, be = handler(Route("m", "1", revision=1))
    a = await h.predict(command(request_id="same"))
    b = await h.predict(command(request_id="same"))
    assert a == b and len(sink.recorded) == 1 and be.calls == ["1"]


@pytest.mark.asyncio
async def test_shadows_are_recorded_but_never_answer_or_delay() -> None:
    hanging = FakeBackend()
    h, sink, _ = handler(Route("m", "1", shadow_versions=("2", "3"), revision=1), hanging)
    # predict() returns although shadow "3" cannot finish before release_broken is set below.
    served = await asyncio.wait_for(h.predict(command()), 10)
    assert served.arm is Arm.STABLE and served.version == "1"
    for _ in range(500):  # the shadow calls start in background tasks
        if "3" in hanging.calls:
            break
        await asyncio.sleep(0.01)
    assert "3" in hanging.calls and h.shadow_failures == 0
    hanging.release_broken.set()
    await h.drain_shadows()
    shadows = [p for p in sink.recorded if p.arm is Arm.SHADOW]
    assert [s.version for s in shadows] == ["2"]
    assert shadows[0].served_prediction_id == served.prediction_id
    assert h.shadow_failures == 1


@pytest.mark.asyncio
async def test_canary_pinning_and_errors() -> None:
    h, _, _ = handler(Route("m", "1", "2", BUCKETS, revision=1))
    assert (await h.predict(command(request_id="a"))).arm is Arm.CANARY
    pinned = await h.predict(command(request_id="b"), pinned_version="1")
    assert pinned.arm is Arm.STABLE and pinned.version == "1"
    with pytest.raises(InvalidArgument, match=r"^model_version"):
        await h.predict(command(request_id="c"), pinned_version="7")
    loaded = RouteBook()
    loaded.mark_loaded()
    with pytest.raises(NotFound):
        await PredictHandler(FakeBackend(), FakeCatalog(), loaded, FakeSink()).predict(command())
    # Before the route table is read, an unknown model may only be unknown *yet*: retry, not give up.
    with pytest.raises(Unavailable, match="route table is not loaded"):
        await PredictHandler(FakeBackend(), FakeCatalog(), RouteBook(), FakeSink()).predict(command())


@pytest.mark.asyncio
async def test_full_sink_refuses_before_inference() -> None:
    h, sink, be = handler(Route("m", "1", revision=1))
    sink.open = False
    with pytest.raises(ResourceExhausted):
        await h.predict(command())
    assert be.calls == []


@pytest.mark.asyncio
async def test_an_answer_whose_event_cannot_be_recorded_is_refused_and_not_cached() -> None:
    h, sink, _ = handler(Route("m", "1", shadow_versions=("2",), revision=1))
    sink.room = 1
    served = await h.predict(command(request_id="a"))
    await h.drain_shadows()
    assert sink.recorded == [served] and h.shadow_failures == 1  # the shadow's event found no room
    with pytest.raises(ResourceExhausted):
        await h.predict(command(request_id="b"))
    sink.room = None
    again = await h.predict(command(request_id="b"))  # the refused request was not remembered as answered
    assert again.arm is Arm.STABLE and [r for r in sink.recorded if r.arm is not Arm.SHADOW][-1] == again


@pytest.mark.asyncio
async def test_a_call_without_request_id_is_answered_each_time_and_without_a_study_split_by_its_id() -> None:
    h, sink, be = handler(Route("m", "1", "2", BUCKETS // 2, revision=1))
    first = await h.predict(command(study="", request_id=""))
    second = await h.predict(command(study="", request_id=""))
    assert first.prediction_id != second.prediction_id and len(sink.recorded) == 2 and len(be.calls) == 2
    assert len(h.answers) == 0  # nothing to retry by, so nothing remembered
    # Without a study uid the request id decides the arm: the same id always lands on the same arm.
    arms = {(await h.predict(command(study="", request_id=f"id-{i % 40}"))).arm for i in range(80)}
    assert arms == {Arm.STABLE, Arm.CANARY}
    again = [(await h.predict(command(study="", request_id="fixed"))).arm for _ in range(3)]
    assert len(set(again)) == 1
