"""References where the route table says: its URI, else the Triton version's folder; reloaded on change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from kernel.serving import ServedVersion
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.monitors.alerting.sequential import CusumParameters
from services.monitors.core.window import Window
from services.monitors.runner.adapters.reports import ModelRepoReferences, reference_path
from services.monitors.runner.adapters.routes import served_versions
from services.monitors.runner.handlers import RunMonitors
from services.monitors.runner.ports import MonitorTarget, ReferenceUnusable
from services.monitors.runner.targets import RoutedTargets
from services.runtime.kafka import ConsumedRecord
from tests.unit.monitors_runner.fakes import FakeLedger, FakeStore

DEMO = "chest_nodule-demo-5"


def _profile(path: Path, n: int) -> str:
    """Write a small reference profile of ``n`` studies; return its hex SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, logits=np.linspace(-2.0, 2.0, n), labels=np.arange(n) % 2)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_routes_records_carry_served_entries_onto_targets() -> None:
    table = common_pb2.RouteTable(
        model_name=DEMO,
        stable_version="1",
        shadow_versions=["2"],
        revision=3,
        served=[
            common_pb2.ServedVersion(
                version="1",
                triton_model="chest_nodule",
                triton_version=1,
                reference_uri="file:///r/1.npz",
                reference_sha256="a" * 64,
            ),
            common_pb2.ServedVersion(version="2", triton_model="chest_nodule", triton_version=2),
            common_pb2.ServedVersion(version="7", triton_model="", triton_version=0),  # incomplete: left out
        ],
    )
    record = ConsumedRecord(
        "radguard.routes.v1", 0, 0, DEMO.encode(), events_pb2.RouteTableEvent(table=table).SerializeToString()
    )
    served = served_versions(record)
    assert served is not None
    assert served.served == (
        ServedVersion("1", "chest_nodule", 1, "file:///r/1.npz", "a" * 64),
        ServedVersion("2", "chest_nodule", 2),
    )
    targets = served.targets()
    # The served entry rides along but is no part of the target's identity (charts are per model/version/arm).
    assert targets == [MonitorTarget(DEMO, "1", "stable"), MonitorTarget(DEMO, "2", "shadow")]
    assert [t.served for t in targets] == list(served.served)
    routed = RoutedTargets()
    routed.apply(served)
    assert routed.targets()[0].served == served.served[0]


def test_reference_comes_from_the_route_uri_and_its_hash_is_checked(tmp_path: Path) -> None:
    renewed = tmp_path / "elsewhere" / "renewed profile.npz"
    sha = _profile(renewed, 40)
    references = ModelRepoReferences(tmp_path / "model_repo")
    by_uri = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, renewed.as_uri(), sha))
    window = references.reference(by_uri)
    assert (len(window), window.model_name, window.model_version) == (40, DEMO, "1")
    by_path = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, str(renewed)))
    assert len(references.reference(by_path)) == 40  # a plain path, no hash recorded: not checked

    wrong = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, renewed.as_uri(), "b" * 64))
    with pytest.raises(ReferenceUnusable, match=f"sha256 is {sha}, the route table records {'b' * 64}"):
        references.reference(wrong)
    missing = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, (tmp_path / "no.npz").as_uri()))
    with pytest.raises(FileNotFoundError, match="no reference profile at"):
        references.reference(missing)
    card = tmp_path / "model_card.md"
    card.write_text("# not a profile\n")
    with pytest.raises(ReferenceUnusable, match="cannot be read"):
        references.reference(MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, card.as_uri())))
    with pytest.raises(ReferenceUnusable, match="only file:// URIs and local paths"):
        references.reference(MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "m", 1, "s3://bucket/p.npz")))
    assert reference_path("file:///a/b%20c.npz") == Path("/a/b c.npz")


def test_without_a_uri_the_triton_versions_folder_holds_the_reference(tmp_path: Path) -> None:
    repo = tmp_path / "model_repo"
    _profile(repo / "chest_nodule" / "2" / "reference_profile.npz", 30)
    _profile(repo / "chest_nodule" / "1" / "reference_profile.npz", 20)
    references = ModelRepoReferences(repo)
    demo = MonitorTarget(DEMO, "2", "shadow", ServedVersion("2", "chest_nodule", 2))
    assert len(references.reference(demo)) == 30
    assert len(references.reference(MonitorTarget("chest_nodule", "1", "stable"))) == 20  # no entry: by name
    with pytest.raises(FileNotFoundError):
        references.reference(MonitorTarget(DEMO, "2", "stable"))  # no entry and no folder of that name


class CountingReferences(ModelRepoReferences):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loaded: list[str] = []

    def reference(self, target: MonitorTarget) -> Window:
        self.loaded.append(str(self.path(target)))
        return super().reference(target)


@pytest.mark.asyncio
async def test_a_renewed_reference_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    first, second = tmp_path / "v1-a.npz", tmp_path / "v1-b.npz"
    sha_a, sha_b = _profile(first, 40), _profile(second, 60)
    references = CountingReferences(tmp_path)
    use_case = RunMonitors(FakeLedger({}), references, FakeStore(), {}, block_size=100, cusum=CusumParameters())
    before = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, first.as_uri(), sha_a))
    after = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, second.as_uri(), sha_b))
    await use_case.run_once([before])
    await use_case.run_once([before])
    assert references.loaded == [str(first)]  # prepared once per version while the route says the same
    await use_case.run_once([after])
    await use_case.run_once([after])
    assert references.loaded == [str(first), str(second)]
    bad = MonitorTarget(DEMO, "1", "stable", ServedVersion("1", "chest_nodule", 1, first.as_uri(), sha_b))
    assert await use_case.run_once([bad]) == []  # a hash mismatch skips the target (logged), never the pass
