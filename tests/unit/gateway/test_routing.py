"""Sticky, weighted arm assignment and atomic route swaps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.routing import BUCKETS, Arm, Route, RouteBook, assign, bucket


def test_bucket_is_uniform_enough() -> None:
    counts = [0] * 10
    n = 50_000
    for i in range(n):
        counts[bucket(f"1.2.826.0.1.{i}") * 10 // BUCKETS] += 1
    expected = n / 10
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001


@pytest.mark.parametrize("weight_bp", [0, 500, 2000, 5000, 10_000])
def test_canary_share_matches_weight(weight_bp: int) -> None:
    route = Route("m", "1", "2" if weight_bp else "", weight_bp)
    n = 20_000
    canary = sum(assign(route, f"study-{i}").arm is Arm.CANARY for i in range(n))
    p = weight_bp / BUCKETS
    sd = math.sqrt(n * p * (1 - p)) or 1.0
    assert abs(canary - n * p) <= 4 * sd


@given(st.text(min_size=1, max_size=64), st.integers(0, BUCKETS))
def test_assignment_is_sticky_and_monotone_in_weight(study: str, weight: int) -> None:
    route = Route("m", "1", "2", weight)
    first = assign(route, study)
    assert assign(route, study) == first
    # Raising the weight never moves a canary study back to stable.
    if first.arm is Arm.CANARY:
        assert assign(Route("m", "1", "2", min(BUCKETS, weight + 100)), study).arm is Arm.CANARY


def test_shadows_exclude_the_answering_version() -> None:
    route = Route("m", "1", "2", BUCKETS, shadow_versions=("2", "3"))
    a = assign(route, "s")
    assert a.version == "2" and a.arm is Arm.CANARY and a.shadows == ("3",)


def test_invalid_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="stable_version"):
        Route("m", "")
    with pytest.raises(ValueError, match="canary_version"):
        Route("m", "1", "", 10)
    with pytest.raises(ValueError, match="canary_weight_bp"):
        Route("m", "1", "2", BUCKETS + 1)


def test_route_book_applies_only_newer_revisions() -> None:
    book = RouteBook()
    assert book.apply(Route("m", "1", revision=2))
    assert not book.apply(Route("m", "9", revision=1))
    assert not book.apply(Route("m", "9", revision=2))
    got = book.get("m")
    assert got is not None and got.stable_version == "1"
    assert book.apply(Route("m", "3", revision=3))
    got = book.get("m")
    assert got is not None and got.stable_version == "3"
    assert book.get("other") is None
