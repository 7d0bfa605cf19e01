"""Dashboard pieces without servers: sessions, button rules, route history, figures, reliability bins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from radguard.events.v1 import events_pb2
from radguard.governance.v1 import governance_pb2 as gpb
from services.dashboard import charts, evidence
from services.dashboard.sessions import SessionStore
from services.monitors.query.store import StoredFinding, read_report, reliability_bins


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_without_use_and_are_renewed_by_use() -> None:
    clock = _Clock()
    store = SessionStore(ttl_s=60, clock=clock)
    sid, session = store.create("tok", "bert", "board")
    clock.now += 50
    assert store.get(sid) is session  # renewed: now expires at 1110
    clock.now += 59
    assert store.get(sid) is session
    clock.now += 61
    assert store.get(sid) is None
    assert store.get("nonsense") is None and store.get(None) is None


def test_csrf_token_must_match_the_session() -> None:
    _, session = SessionStore(ttl_s=60).create("tok", "bert", "board")
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok("") and not session.csrf_ok(session.csrf[:-1] + "x")


@pytest.mark.parametrize(
    ("role", "unmet", "expected"),
    [
        ("board", ["1 more approval from board for canary->production"], True),
        ("clinician", ["1 more approval from board for canary->production"], False),
        ("clinician", ["1 more approval from board or clinician for shadow->canary"], True),
        ("operator", ["1 more approval from board for canary->production"], False),
        ("board", [], True),
    ],
)
def test_the_approve_button_follows_the_roles_the_policy_names(role: str, unmet: list[str], expected: bool) -> None:
    transition = gpb.Transition(status=gpb.TRANSITION_STATUS_PENDING, unmet_requirements=unmet)
    assert evidence.may_approve(role, transition) is expected


def test_rollout_buttons_only_for_roles_governance_lets_act() -> None:
    assert [r for r in ("clinician", "board", "operator", "service") if evidence.may_control_rollouts(r)] == [
        "board",
        "operator",
        "service",
    ]


def _entry(seq: int, table: dict[str, object]) -> events_pb2.AuditEntry:
    return events_pb2.AuditEntry(
        seq=seq, action="routes.update", actor="olga", after_json=json.dumps(table), time=Timestamp(seconds=seq * 60)
    )


def test_route_history_gives_each_version_its_share_per_revision() -> None:
    entries = [
        _entry(5, {"stable_version": "1", "canary_version": "2", "canary_weight_bp": 2000, "revision": 2}),
        _entry(3, {"stable_version": "1", "canary_version": "", "canary_weight_bp": 0, "revision": 1}),
    ]
    revisions = evidence.route_revisions(entries)
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[0]["shares"] == {"1": 1.0}
    assert revisions[1]["shares"] == {"1": 0.8, "2": 0.2} and revisions[1]["weight"] == "20%"
    figure = evidence.timeline_figure(revisions)
    assert [trace["name"] for trace in figure["data"]] == ["version 1", "version 2"]
    assert figure["data"][1]["y"] == [0.0, 20.0]


def test_series_figure_draws_a_band_per_arm_and_the_limit() -> None:
    points = [
        charts.Point("2026-01-01T00:00:00", 0.05, 0.03, 0.07),
        charts.Point("2026-01-02T00:00:00", 0.06, None, None),
    ]
    figure = charts.series_with_band("ECE", "ECE", {"stable": points, "canary": []}, limit=0.1)
    band, line = figure["data"]
    assert band["fill"] == "toself" and band["y"] == [0.07, 0.03]
    assert line["y"] == [0.05, 0.06] and figure["layout"]["shapes"][0]["y0"] == 0.1


def _finding(statistics: list[dict[str, object]], report_uri: str = "") -> StoredFinding:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    return StoredFinding("id", "calibration", "m", "1", "stable", now, now, 10, 10, "info", "s", "spec@1", report_uri,
                         now, statistics)  # fmt: skip


def test_reliability_bins_are_read_back_from_the_stored_statistics() -> None:
    finding = _finding(
        [
            {"name": "ece", "value": 0.04},
            {"name": "reliability_bin", "value": 0.5, "ci_low": 0.3, "ci_high": 0.7, "n": 12,
             "feature": "probability[0.40,0.50)", "note": "mean predicted 0.447"},
            {"name": "reliability_bin", "value": 0.1, "n": 30, "feature": "probability[0.00,0.10)", "note": ""},
        ]
    )  # fmt: skip
    bins = reliability_bins(finding)
    assert [(b.lower, b.upper, b.count) for b in bins] == [(0.0, 0.1, 30), (0.4, 0.5, 12)]
    assert bins[1].mean_predicted == pytest.approx(0.447) and bins[1].ci_low == 0.3
    assert bins[0].mean_predicted == pytest.approx(0.05)  # no note: the bin's middle


def test_reports_are_read_only_from_the_runners_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.html").write_text("<html>ok</html>")
    (tmp_path / "secret.txt").write_text("no")
    assert read_report(str(folder / "a.html"), folder, 1000) == b"<html>ok</html>"
    for uri in ("", str(tmp_path / "secret.txt"), str(folder / ".." / "secret.txt"), str(folder / "gone.html")):
        with pytest.raises(FileNotFoundError):
            read_report(uri, folder, 1000)
    with pytest.raises(ValueError, match="more than"):
        read_report(str(folder / "a.html"), folder, 3)


def test_reference_renewals_render_with_their_period_signatures_and_sign_form() -> None:
    from services.dashboard.app import templates

    def stamp(text: str) -> Timestamp:
        value = Timestamp()
        value.FromJsonString(text)
        return value

    def profile(uri: str, sha: str, chosen_by: str) -> gpb.ReferenceProfile:
        period = gpb.ReferencePeriod(
            labelled_by="reads", description="ledger period", studies=3000, reads=2900, read_positives=610,
            chosen_by=chosen_by, start_time=stamp("2026-11-01T00:00:00Z"), end_time=stamp("2026-12-01T00:00:00Z"),
        )  # fmt: skip
        return gpb.ReferenceProfile(uri=uri, sha256=sha, period=period)

    renewal = gpb.ReferenceRenewal(
        renewal_id="01a2-renewal",
        status=gpb.TRANSITION_STATUS_PENDING,
        proposed=profile("file:///refs/new.npz", "ab" * 32, "bianca"),
        previous=profile("file:///refs/old.npz", "cd" * 32, "olga"),
        requested_by="bianca",
        unmet_requirements=["1 more approval from board or clinician for reference renewal"],
        approvals=[gpb.Approval(signer="bert", renewal_id="01a2-renewal", meaning="approve reference")],
    )
    view = evidence.renewal_view(renewal)
    assert (view["id"], view["status"], view["pending"]) == ("01a2-renewal", "pending", True)
    assert view["proposed"]["sha256"] == "abababababab…"
    assert "2,900 reads, 610 positive; chosen by bianca" in view["proposed"]["period"]
    assert evidence.may_approve("clinician", gpb.Transition(unmet_requirements=view["unmet"]))
    view["can_approve"] = True
    html = (
        templates()
        .get_template("_references.html")
        .render(reference=view["proposed"], renewals=[view], csrf="c", path="/p", standalone=False)
    )
    assert 'name="renewal_id" value="01a2-renewal"' in html and "file:///refs/old.npz" in html
    assert "bert" in html and "approve reference" in html
