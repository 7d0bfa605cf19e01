"""The lifecycle of a model version: its states and the moves between them.

The table says which moves can ever happen; whether one may happen *now* (approvals, evidence, a stable
version to compare against) is the service's and the policy's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from services.runtime.errors import FailedPrecondition


class State(StrEnum):
    """Where a version is in its life."""

    REGISTERED = "registered"
    VALIDATED = "validated"
    SHADOW = "shadow"
    CANARY = "canary"
    PRODUCTION = "production"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"


#: Every move the lifecycle allows. ``retired -> production`` exists only for a rollback that puts a
#: previous production version back; the service refuses it as a plain transition request.
ALLOWED: Mapping[State, frozenset[State]] = MappingProxyType(
    {
        State.REGISTERED: frozenset({State.VALIDATED, State.REJECTED}),
        State.VALIDATED: frozenset({State.SHADOW, State.CANARY, State.PRODUCTION, State.REJECTED, State.RETIRED}),
        State.SHADOW: frozenset({State.CANARY, State.REJECTED, State.RETIRED}),
        State.CANARY: frozenset({State.PRODUCTION, State.ROLLED_BACK}),
        State.PRODUCTION: frozenset({State.RETIRED, State.ROLLED_BACK}),
        State.RETIRED: frozenset({State.PRODUCTION}),
        State.ROLLED_BACK: frozenset(),
        State.REJECTED: frozenset(),
    }
)

#: States in which a version may receive traffic (and so must be loaded in Triton).
SERVING: frozenset[State] = frozenset({State.SHADOW, State.CANARY, State.PRODUCTION})

#: States nothing leaves.
TERMINAL: frozenset[State] = frozenset(state for state, targets in ALLOWED.items() if not targets)


def sources_of(to: State) -> tuple[State, ...]:
    """States from which ``to`` can be reached, in lifecycle order."""
    return tuple(state for state in State if to in ALLOWED[state])


def check_transition(frm: State, to: State) -> None:
    """Refuse a move the lifecycle does not allow.

    Args:
        frm: The version's current state.
        to: The requested state.

    Raises:
        FailedPrecondition: Naming the states ``to`` can be reached from, e.g.
            ``"canary requires state validated or shadow; version is registered"``.
    """
    if to in ALLOWED[frm]:
        return
    if frm == to:
        raise FailedPrecondition(f"version is already {frm}")
    sources = sources_of(to)
    if not sources:
        raise FailedPrecondition(f"{to} cannot be reached from any state; version is {frm}")
    names = [str(s) for s in sources]
    wanted = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    raise FailedPrecondition(f"{to} requires state {wanted}; version is {frm}")
