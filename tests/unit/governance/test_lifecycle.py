"""The lifecycle table: every allowed move passes, every other move names what it needs."""

from __future__ import annotations

import itertools

import pytest

from governance.domain.lifecycle import ALLOWED, TERMINAL, State, check_transition
from services.runtime.errors import FailedPrecondition

EXPECTED = {
    ("registered", "validated"),
    ("registered", "rejected"),
    ("validated", "shadow"),
    ("validated", "canary"),
    ("validated", "production"),
    ("validated", "rejected"),
    ("validated", "retired"),
    ("shadow", "canary"),
    ("shadow", "rejected"),
    ("shadow", "retired"),
    ("canary", "production"),
    ("canary", "rolled_back"),
    ("production", "retired"),
    ("production", "rolled_back"),
    ("retired", "production"),
}


def test_table_is_exactly_the_documented_moves():
    assert {(str(a), str(b)) for a, targets in ALLOWED.items() for b in targets} == EXPECTED
    assert {str(s) for s in TERMINAL} == {"rolled_back", "rejected"}


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(State, State)))
def test_every_pair(frm: State, to: State):
    if (str(frm), str(to)) in EXPECTED:
        check_transition(frm, to)
    else:
        with pytest.raises(FailedPrecondition):
            check_transition(frm, to)


@pytest.mark.parametrize(
    ("frm", "to", "message"),
    [
        ("registered", "canary", "canary requires state validated or shadow; version is registered"),
        ("registered", "production", "production requires state validated, canary or retired; version is registered"),
        ("shadow", "shadow", "version is already shadow"),
        ("rejected", "validated", "validated requires state registered; version is rejected"),
        ("canary", "retired", "retired requires state validated, shadow or production; version is canary"),
    ],
)
def test_message_names_the_missing_condition(frm: str, to: str, message: str):
    with pytest.raises(FailedPrecondition) as info:
        check_transition(State(frm), State(to))
    assert info.value.message == message
