"""``radguard routes show``: the served-by column says which Triton version answers each label."""

from __future__ import annotations

from kernel.serving import ServedVersion
from services.cli.routes_commands import served_by
from services.gateway.routing import Route


def test_served_by_names_each_labels_triton_version_and_reference() -> None:
    route = Route(
        "chest_nodule-demo-1",
        "1",
        "2",
        2000,
        served=(
            ServedVersion("1", "chest_nodule", 1),
            ServedVersion("2", "chest_nodule", 2, "file:///r.npz", "ab12" * 16),
        ),
    )
    assert served_by(route) == "1→chest_nodule/1, 2→chest_nodule/2 (reference ab12ab12)"


def test_a_table_written_by_hand_is_served_by_its_own_names() -> None:
    assert served_by(Route("chest_nodule", "1")) == "-"
