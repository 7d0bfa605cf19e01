"""Registry names resolved to the Triton model versions that serve them: routes, their tables, the facades."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from kernel.serving import ServedVersion
from radguard.common.v1 import common_pb2
from services.gateway.adapters.routes import route_event, route_from_table, table_from_route
from services.gateway.calibration import Calibration
from services.gateway.domain import Acquisition, ModelOutputs, PredictCommand, Sex, Study
from services.gateway.handlers import PredictHandler
from services.gateway.routing import BUCKETS, Arm, Route, RouteBook, TritonTarget
from services.gateway.targets import RoutedBackend, RoutedCatalog
from services.runtime.errors import NotFound

DEMO = "chest_nodule-demo-3"
SERVED = (
    ServedVersion("1", "chest_nodule", 1, "file:///repo/chest_nodule/1/reference_profile.npz", "a" * 64),
    ServedVersion("2", "chest_nodule", 2),
    ServedVersion("9", "chest_nodule_big", 4),
)


def demo_route(**changes: object) -> Route:
    fields: dict[str, object] = {
        "model_name": DEMO,
        "stable_version": "1",
        "canary_version": "2",
        "canary_weight_bp": 500,
        "shadow_versions": ("9",),
        "revision": 3,
        "reason": "rollout r-1 step 1",
        "served": SERVED,
    }
    fields.update(changes)
    return Route(**fields)  # type: ignore[arg-type]


def test_table_conversion_round_trips_served_entries() -> None:
    table = table_from_route(demo_route())
    assert [(s.version, s.triton_model, s.triton_version) for s in table.served] == [
        ("1", "chest_nodule", 1),
        ("2", "chest_nodule", 2),
        ("9", "chest_nodule_big", 4),
    ]
    assert table.served[0].reference_uri == "file:///repo/chest_nodule/1/reference_profile.npz"
    assert table.served[0].reference_sha256 == "a" * 64
    assert route_from_table(table) == demo_route()
    event = route_event(demo_route(), "cli")
    assert route_from_table(event.table) == demo_route() and event.table.updated_at.seconds > 0


def test_a_table_without_served_entries_is_served_by_its_own_name() -> None:
    table = common_pb2.RouteTable(model_name="chest_nodule", stable_version="2", revision=5)
    route = route_from_table(table)
    assert route.served == ()
    assert route.target("2") == TritonTarget("chest_nodule", "2")
    assert list(table_from_route(route).served) == []


def test_route_resolves_each_label_to_its_triton_version() -> None:
    route = demo_route()
    assert route.target("1") == TritonTarget("chest_nodule", "1")
    assert route.target("9") == TritonTarget("chest_nodule_big", "4")
    assert route.target("5") == TritonTarget(DEMO, "5")  # not on the table: the name itself, as before


def test_inconsistent_served_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="Triton version >= 1"):
        demo_route(served=(ServedVersion("1", "chest_nodule", 0),))
    with pytest.raises(ValueError, match="needs a version, a Triton model"):
        demo_route(served=(ServedVersion("1", "", 1),))
    with pytest.raises(ValueError, match="listed twice"):
        demo_route(served=(ServedVersion("1", "a", 1), ServedVersion("1", "b", 2)))


def test_route_book_resolves_through_the_current_route() -> None:
    book = RouteBook()
    assert book.target(DEMO, "1") == TritonTarget(DEMO, "1")
    assert book.triton_model(DEMO) == DEMO
    book.apply(demo_route())
    assert book.target(DEMO, "2") == TritonTarget("chest_nodule", "2")
    assert book.triton_model(DEMO) == "chest_nodule"
    book.apply(demo_route(revision=4, stable_version="9"))
    assert book.triton_model(DEMO) == "chest_nodule_big"


class RepositoryFake:
    """A catalog keyed by Triton model, as the model repository is."""

    def input_shape(self, model_name: str) -> tuple[int, ...]:
        if model_name != "chest_nodule":
            raise NotFound(f"model '{model_name}'")
        return (1, 4, 4)

    def calibration(self, model_name: str, version: str) -> Calibration:
        if model_name != "chest_nodule":
            raise NotFound(f"model '{model_name}' version {version}")
        return Calibration(float(version), 0.5)

    def outputs(self, model_name: str) -> tuple[str, ...]:
        self.input_shape(model_name)
        return ("LOGIT",)


class TritonFake:
    """Answers only Triton's names; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def infer(
        self, model_name: str, version: str, images: npt.NDArray[np.float32], timeout_s: float
    ) -> list[ModelOutputs]:
        if model_name != "chest_nodule":
            raise NotFound(f"model '{model_name}'")
        self.calls.append((model_name, version))
        return [ModelOutputs(float(version), (0.0,), {})]

    async def ready(self) -> bool:
        return True


class SinkFake:
    def __init__(self) -> None:
        self.recorded: list[object] = []

    def accepting(self) -> bool:
        return True

    def record(self, command: PredictCommand, prediction: object) -> None:
        self.recorded.append(prediction)


def test_routed_catalog_answers_for_registry_names() -> None:
    book = RouteBook()
    catalog = RoutedCatalog(RepositoryFake(), book)
    with pytest.raises(NotFound, match=DEMO):
        catalog.input_shape(DEMO)  # no route yet: unknown, as before
    assert catalog.input_shape("chest_nodule") == (1, 4, 4)  # a model routed under its Triton name
    book.apply(demo_route(served=SERVED[:2], shadow_versions=()))
    assert catalog.input_shape(DEMO) == (1, 4, 4)
    assert catalog.outputs(DEMO) == ("LOGIT",)
    assert catalog.calibration(DEMO, "2") == Calibration(2.0, 0.5)


def test_predictions_keep_the_registry_name_while_triton_gets_its_own() -> None:
    book = RouteBook()
    book.apply(demo_route(canary_weight_bp=BUCKETS, shadow_versions=()))
    book.mark_loaded()
    triton, sink = TritonFake(), SinkFake()
    handler = PredictHandler(RoutedBackend(triton, book), RoutedCatalog(RepositoryFake(), book), book, sink)
    image = np.zeros((1, 4, 4), dtype=np.float32)
    command = PredictCommand(DEMO, "r-1", Study("1.2.3"), "p", Sex.MALE, 60, Acquisition(), image)

    async def both() -> None:
        served = await handler.predict(command)
        pinned = await handler.predict(
            PredictCommand(DEMO, "r-2", Study("1.2.3"), "p", Sex.MALE, 60, Acquisition(), image), pinned_version="1"
        )
        assert (served.model_name, served.version, served.arm) == (DEMO, "2", Arm.CANARY)
        assert served.raw_score == 2.0 and served.threshold == 0.5
        assert (pinned.model_name, pinned.version, pinned.arm) == (DEMO, "1", Arm.STABLE)

    asyncio.run(both())
    assert triton.calls == [("chest_nodule", "2"), ("chest_nodule", "1")]
    assert len(sink.recorded) == 2
