"""Pseudonyms, calibration, age bands, time-ordered ids."""

from __future__ import annotations

import math
import os
import uuid

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

from services.gateway.calibration import Calibration
from services.gateway.domain import age_band
from services.gateway.pseudonym import Pseudonymiser
from services.runtime.ids import uuid7


def test_pseudonym_is_keyed_stable_and_hides_the_id() -> None:
    a = Pseudonymiser(b"k" * 32)
    b = Pseudonymiser(b"j" * 32)
    p = a.pseudonym("MRN-0001", "HOSP")
    assert p == a.pseudonym("MRN-0001", "HOSP")
    assert p != b.pseudonym("MRN-0001", "HOSP")
    assert p != a.pseudonym("MRN-0001", "OTHER")
    assert "MRN" not in p and len(p) == 64 and int(p, 16) >= 0
    assert a.pseudonym("") == ""
    # Issuer/id boundaries cannot be shifted to forge a collision.
    assert a.pseudonym("1|2", "a") != a.pseudonym("2", "a|1")
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")


@given(st.floats(-50, 50), st.floats(0.05, 20))
def test_calibrated_probability_matches_scipy(logit: float, temperature: float) -> None:
    cal = Calibration(temperature, 0.5)
    assert math.isclose(cal.probability(logit), float(expit(logit / temperature)), rel_tol=1e-12, abs_tol=1e-300)


def test_calibration_extremes_and_decision() -> None:
    cal = Calibration(1.0, 0.3)
    assert cal.probability(1e6) == 1.0 and cal.probability(-1e6) == 0.0
    assert cal.decide(0.3) and not cal.decide(0.2999)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            Calibration(bad, 0.5)
    with pytest.raises(ValueError):
        Calibration(1.0, 1.5)


@pytest.mark.parametrize(
    ("age", "band"),
    [(None, ""), (0, "<50"), (49, "<50"), (50, "50-69"), (69, "50-69"), (70, "70+"), (101, "70+")],
)
def test_age_bands_follow_the_shared_vocabulary(age: int | None, band: str) -> None:
    assert age_band(age) == band


def test_age_bands_with_other_edges_name_the_first_band_below_its_edge() -> None:
    assert [age_band(a, (18, 40, 60, 70)) for a in (0, 17, 18, 69, 70)] == ["<18", "<18", "18-39", "60-69", "70+"]


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(2000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    stamps = np.array([u.int >> 80 for u in parsed])
    assert (np.diff(stamps) >= 0).all()
    assert len(set(ids)) == len(ids)


def test_worker_processes_get_their_own_spool_metrics_port_and_id() -> None:
    from services.gateway.__main__ import worker_env
    from services.gateway.settings import GatewaySettings
    from services.runtime.config import load_settings

    settings = load_settings(
        GatewaySettings,
        {
            "RADGUARD_PSEUDONYM_KEY": "unit-test-key-0123456789",
            "RADGUARD_AUTH_MODE": "insecure-dev",
            "RADGUARD_GRPC_PORT": "24100",
            "RADGUARD_HTTP_PORT": "24101",
            "RADGUARD_METRICS_PORT": "24400",
            "RADGUARD_SPOOL_DIR": "/tmp/gw-spool",
            "RADGUARD_INSTANCE_ID": "gw-a",
            "RADGUARD_PROCESSES": "3",
        },
    )
    env = worker_env(settings, 2)
    assert env["RADGUARD_SPOOL_DIR"] == "/tmp/gw-spool-p2" and env["RADGUARD_METRICS_PORT"] == "24402"
    assert env["RADGUARD_INSTANCE_ID"] == "gw-a-p2" and env["RADGUARD_PROCESSES"] == "1"
    assert env["RADGUARD_REUSE_PORT"] == "true"
    assert env["RADGUARD_GRPC_PORT"] == "24100" and env["RADGUARD_HTTP_PORT"] == "24101"
    assert env["RADGUARD_GATEWAY_PARENT_PID"] == str(os.getpid())
    based = settings.model_copy(update={"worker_metrics_port_base": 24480})
    assert worker_env(based, 1)["RADGUARD_METRICS_PORT"] == "24480"
    assert worker_env(based, 2)["RADGUARD_METRICS_PORT"] == "24481"
