"""Domain ↔ protobuf converters and the relay's outbox payload → event translation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from governance.domain.audit import ChainVerdict
from governance.domain.codec import from_jsonable, to_jsonable
from governance.domain.lifecycle import State
from governance.domain.model import (
    AuditRecord,
    GateDecision,
    GateOutcome,
    GateResult,
    Role,
    Rollout,
    RolloutStatus,
    RolloutStep,
    RouteState,
    Version,
    VersionSpec,
)
from kernel.serving import ServedVersion
from radguard.common.v1 import common_pb2
from radguard.governance.v1 import governance_pb2 as pb
from services.governance_api.adapters import convert
from services.governance_api.adapters.relay import (
    MalformedOutboxRow,
    RelayTopics,
    audit_event,
    outgoing_record,
    route_event,
)
from services.runtime.errors import InvalidArgument

T0 = datetime(2025, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)


def route() -> RouteState:
    return RouteState("chest_nodule", "1", "2", 500, ("3",), 7, T0, "rollout step 1", "r-1")


def audit() -> AuditRecord:
    return AuditRecord(
        seq=3,
        prev_hash="a" * 64,
        hash="b" * 64,
        actor="bert",
        actor_role=Role.BOARD,
        action="approval.sign",
        subject="transition/t-1",
        before_json="",
        after_json='{"x":1}',
        time=T0,
        request_id="req-1",
    )


@pytest.mark.parametrize("state", list(State))
def test_every_state_round_trips(state: State) -> None:
    assert convert.state_from_proto(convert.state_to_proto(state), "s") is state


def test_unspecified_state_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="to_state: must be a lifecycle state"):
        convert.state_from_proto(pb.LIFECYCLE_STATE_UNSPECIFIED, "to_state")


def test_route_to_proto() -> None:
    table = convert.route_to_proto(route())
    assert table == common_pb2.RouteTable(
        model_name="chest_nodule",
        stable_version="1",
        canary_version="2",
        canary_weight_bp=500,
        shadow_versions=["3"],
        revision=7,
        updated_at=convert.timestamp(T0),
        reason="rollout step 1",
        rollout_id="r-1",
    )
    assert table.updated_at.ToDatetime(tzinfo=UTC) == T0


def served_route() -> RouteState:
    """A route whose registry name differs from the Triton model serving it."""
    return dataclasses.replace(
        route(),
        model_name="chest_nodule-demo-7",
        served=(
            ServedVersion("1", "chest_nodule", 1, "file:///repo/chest_nodule/1/reference_profile.npz", "a" * 64),
            ServedVersion("2", "chest_nodule", 2, "file:///repo/chest_nodule/2/reference_profile.npz", "b" * 64),
            ServedVersion("3", "chest_nodule_big", 5),
        ),
    )


def test_route_to_proto_carries_what_serves_each_version() -> None:
    table = convert.route_to_proto(served_route())
    assert [(s.version, s.triton_model, s.triton_version) for s in table.served] == [
        ("1", "chest_nodule", 1),
        ("2", "chest_nodule", 2),
        ("3", "chest_nodule_big", 5),
    ]
    assert table.served[0] == common_pb2.ServedVersion(
        version="1",
        triton_model="chest_nodule",
        triton_version=1,
        reference_uri="file:///repo/chest_nodule/1/reference_profile.npz",
        reference_sha256="a" * 64,
    )
    assert (table.served[2].reference_uri, table.served[2].reference_sha256) == ("", "")


def test_outbox_payloads_round_trip_served_and_old_payloads_still_read() -> None:
    payload = to_jsonable(served_route())
    assert from_jsonable(RouteState, payload) == served_route()
    assert route_event(payload, "p").table == convert.route_to_proto(served_route())
    old = to_jsonable(route())
    del old["served"]  # a payload written before tables carried what serves each version
    assert from_jsonable(RouteState, old) == route()
    assert list(route_event(old, "p").table.served) == []


def test_rollout_to_proto() -> None:
    rollout = Rollout(
        rollout_id="r-1",
        model_name="chest_nodule",
        candidate_version="2",
        stable_version="1",
        plan=(RolloutStep(500, 100), RolloutStep(10_000, 100)),
        step_index=0,
        weight_bp=500,
        status=RolloutStatus.RUNNING,
        last_decision=GateDecision.HOLD,
        gates=(GateResult("max_ece", GateOutcome.INSUFFICIENT_EVIDENCE, float("nan"), 0.1, "12 reads < 100"),),
        reasons=("started",),
        started_by="olga",
        started_at=T0,
        updated_at=T0 + timedelta(seconds=5),
        policy_ref="standard@1",
    )
    message = convert.rollout_to_proto(rollout)
    assert message.candidate.model_version == "2" and message.stable_version == "1"
    assert [(s.weight_bp, s.min_reads) for s in message.plan] == [(500, 100), (10_000, 100)]
    assert message.status == pb.ROLLOUT_STATUS_RUNNING and message.last_decision == pb.GATE_DECISION_HOLD
    gate = message.gates[0]
    assert gate.outcome == pb.GATE_OUTCOME_INSUFFICIENT_EVIDENCE and gate.observed == 0.0 and gate.limit == 0.1
    assert message.updated_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=5)


def test_audit_and_verdict_to_proto() -> None:
    entry = convert.audit_to_proto(audit())
    assert (entry.seq, entry.actor, entry.actor_role, entry.action) == (
        3,
        "bert",
        common_pb2.ROLE_BOARD,
        "approval.sign",
    )
    bad = convert.verdict_to_proto(ChainVerdict(False, 4, "hash mismatch", 4, "c" * 64))
    assert not bad.ok and bad.HasField("first_bad_seq") and bad.first_bad_seq == 4
    good = convert.verdict_to_proto(ChainVerdict(True, None, "ok", 9, "d" * 64))
    assert good.ok and not good.HasField("first_bad_seq")


def test_relay_builds_events_from_codec_payloads() -> None:
    event = route_event(to_jsonable(route()), "governance/gov-0")
    assert event.table == convert.route_to_proto(route())
    assert event.meta.schema_version == 1 and event.meta.producer == "governance/gov-0" and event.meta.event_id
    audited = audit_event(to_jsonable(audit()), "governance/gov-0")
    assert audited.entry == convert.audit_to_proto(audit()) and audited.meta.request_id == "req-1"
    topics = RelayTopics(routes="r.topic", audit="a.topic")
    record = outgoing_record("route", "chest_nodule", to_jsonable(route()), topics, "p")
    assert (record.topic, record.key) == ("r.topic", b"chest_nodule")
    with pytest.raises(MalformedOutboxRow):
        outgoing_record("mystery", "k", {}, topics, "p")
    with pytest.raises(MalformedOutboxRow):
        route_event({"stable_version": "1"}, "p")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("chest_nodule", True),
        ("v2.1-rc", True),
        ("", False),
        ("has space", False),
        ("-lead", False),
        ("x" * 129, False),
    ],
)
def test_names(value: str, ok: bool) -> None:
    if ok:
        assert convert.require_name(value, "f") == value
    else:
        with pytest.raises(InvalidArgument, match=r"^f: "):
            convert.require_name(value, "f")


def test_page_size() -> None:
    assert convert.page_size(0, 50) == 50
    assert convert.page_size(7, 50) == 7
    with pytest.raises(InvalidArgument, match="page_size: must be at most 1000"):
        convert.page_size(5000, 50)


@pytest.mark.parametrize("token", ["²", "٣", "9" * 40, "1" * 1_000_000, "-1", "1 ", "9223372036854775808"])
def test_offset_tokens_not_issued_here_are_invalid_argument(token: str) -> None:
    from services.governance_api.adapters.convert import offset_token

    with pytest.raises(InvalidArgument) as caught:
        offset_token(token)
    assert caught.value.message == "page_token: is not a token this service issued"


def test_offset_tokens_issued_here_pass() -> None:
    from services.governance_api.adapters.convert import offset_token

    assert offset_token("") == ""
    assert offset_token("9223372036854775807") == "9223372036854775807"


def test_sequence_numbers_out_of_range_name_their_field() -> None:
    from services.governance_api.adapters.convert import seq

    assert seq(2**63 - 1, "from_seq") == 2**63 - 1
    with pytest.raises(InvalidArgument, match=r"^to_seq: must be at most 9223372036854775807$"):
        seq(2**63, "to_seq")
    with pytest.raises(InvalidArgument, match=r"^to_seq: must be at most 2147483647$"):
        seq(2**31, "to_seq", 2**31 - 1)


def test_out_of_range_timestamps_name_their_field() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from services.governance_api.adapters.convert import datetime_from

    with pytest.raises(InvalidArgument, match=r"^since: "):
        datetime_from(Timestamp(seconds=2**62), "since")
    with pytest.raises(InvalidArgument, match=r"^until: "):
        datetime_from(Timestamp(seconds=0, nanos=-1), "until")


def test_control_characters_in_free_text_are_refused() -> None:
    from services.governance_api.adapters.convert import require_text

    assert require_text("two\nlines", "reason") == "two\nlines"
    with pytest.raises(InvalidArgument, match=r"^reason: must not contain control characters$"):
        require_text("a\x00b", "reason")


def test_unknown_enum_values_in_filters_are_refused_not_ignored() -> None:
    from services.governance_api.adapters.findings import arm_name, kind_name, severity_name

    assert kind_name(0) is None and arm_name(0) is None and severity_name(0) == ""
    for function, field in ((kind_name, "kind"), (arm_name, "arm"), (severity_name, "min_severity")):
        with pytest.raises(InvalidArgument, match=f"^{field}: unknown value 999$"):
            function(999)


def _registration() -> pb.ModelVersion:
    from services.cli.governance_commands import version_from_repo
    from stack.settings import REPO_ROOT

    return version_from_repo(REPO_ROOT / "model_repo", "chest_nodule", 2)


def test_the_reference_period_is_recorded_with_the_version_and_shown_with_who_chose_it() -> None:
    from governance.domain.codec import from_jsonable

    registration = _registration()
    period = registration.reference_profile.period
    # The CLI reads the period from metadata.json, written by modeling/reference.py with the profile.
    assert period.labelled_by == "reads" and period.studies == period.reads > 0
    assert 0 < period.read_positives < period.reads and "studies 4000000-" in period.description
    spec = convert.spec_from_proto(registration)
    assert spec.reference_period is not None
    assert (spec.reference_period.labelled_by, spec.reference_period.studies) == ("reads", period.studies)
    # Stored as JSON (the PostgreSQL adapter's document) and back, then answered with the registering caller.
    stored = from_jsonable(VersionSpec, to_jsonable(spec))
    assert stored == spec
    version = Version(
        stored,
        State.REGISTERED,
        "carol@board",
        datetime(2026, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        "default@1",
    )
    answered = convert.version_to_proto(version).reference_profile.period
    assert (answered.labelled_by, answered.studies, answered.chosen_by) == ("reads", period.studies, "carol@board")


def test_a_version_registered_without_a_period_still_reads_back() -> None:
    registration = _registration()
    registration.reference_profile.ClearField("period")
    spec = convert.spec_from_proto(registration)
    assert spec.reference_period is None
    legacy = to_jsonable(spec)
    del legacy["reference_period"]  # a version stored before periods were recorded
    from governance.domain.codec import from_jsonable

    assert from_jsonable(VersionSpec, legacy) == spec


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda p: setattr(p, "labelled_by", "guesses"), "version.reference_profile.period.labelled_by"),
        (lambda p: setattr(p, "reads", p.studies + 1), "version.reference_profile.period.reads"),
        (lambda p: setattr(p, "read_positives", p.reads + 1), "version.reference_profile.period.read_positives"),
        (lambda p: setattr(p, "studies", -1), "version.reference_profile.period.studies"),
        (lambda p: setattr(p, "description", ""), "version.reference_profile.period.description"),
    ],
)
def test_a_bad_reference_period_is_refused_naming_its_field(edit: object, field: str) -> None:
    registration = _registration()
    edit(registration.reference_profile.period)  # type: ignore[operator]
    with pytest.raises(InvalidArgument) as raised:
        convert.spec_from_proto(registration)
    assert raised.value.field == field
