"""Caller-auth settings and credential files, keyed pseudonyms, and who a read is attributed to."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.feedback.attribution import ReadAttribution
from services.feedback.domain import Label, Outcome, PredictionRef, RecordReadCommand
from services.runtime.auth import (
    CLINICIAN,
    HOSPITAL_SYSTEM,
    INSECURE_CALLER,
    READING_SYSTEM,
    AccessPolicy,
    Caller,
    CallerAuthSettings,
    CredentialsFileError,
    add_token,
    bearer_token,
    hash_token,
    parse_certificates,
    parse_tokens,
)
from services.runtime.config import ConfigError, load_settings
from services.runtime.errors import InvalidArgument, PermissionDenied
from services.runtime.pseudonyms import ACCESSION, READER, REQUEST_ID, STUDY_UID, Pseudonymiser

KEY = b"unit-test-key-0123456789"


def test_secure_mode_needs_credentials_and_certificates_need_mutual_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RADGUARD_AUTH_TOKENS_FILE"):
        load_settings(CallerAuthSettings, {})
    with pytest.raises(ConfigError, match="RADGUARD_TLS_REQUIRE_CLIENT_CERT"):
        load_settings(CallerAuthSettings, {"RADGUARD_AUTH_CERTS_FILE": str(tmp_path / "c.json")})
    with pytest.raises(ConfigError, match="RADGUARD_AUTH_MODE"):
        load_settings(CallerAuthSettings, {"RADGUARD_AUTH_MODE": "off"})
    dev = load_settings(CallerAuthSettings, {"RADGUARD_AUTH_MODE": "insecure-dev"})
    assert dev.auth_mode == "insecure-dev"
    secure = load_settings(CallerAuthSettings, {"RADGUARD_AUTH_TOKENS_FILE": str(tmp_path / "t.json")})
    assert secure.auth_mode == "secure" and secure.auth_tokens_file == tmp_path / "t.json"


def test_tokens_are_stored_as_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = add_token(path, "pacs-1", HOSPITAL_SYSTEM)
    text = path.read_text()
    assert token not in text and hash_token(token) in text
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert path.stat().st_mode & 0o777 == 0o600
    assert parse_tokens(json.loads(text))[hash_token(token)] == Caller("pacs-1", HOSPITAL_SYSTEM, "token")
    with pytest.raises(CredentialsFileError, match="role: must be one of"):
        add_token(path, "x", "board")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"abc": {"principal": "p", "role": CLINICIAN}}, "not a lowercase sha256"),
        ({"a" * 64: "clinician"}, "must be an object"),
        ({"a" * 64: {"role": CLINICIAN}}, r"principal: required"),
        ({"a" * 64: {"principal": "p", "role": "root"}}, r"role: must be one of"),
    ],
)
def test_malformed_tokens_files_name_the_problem(data: object, message: str) -> None:
    with pytest.raises(CredentialsFileError, match=message):
        parse_tokens(data)


def test_certificate_names_map_to_callers() -> None:
    callers = parse_certificates({"ris.example": {"principal": "ris-1", "role": READING_SYSTEM}})
    assert callers == {"ris.example": Caller("ris-1", READING_SYSTEM, "certificate")}
    with pytest.raises(CredentialsFileError, match="role"):
        parse_certificates({"x": {"principal": "p", "role": ""}})


def test_bearer_header_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None


def test_policy_protects_prefixes_but_not_open_methods() -> None:
    policy = AccessPolicy(("/a.S/",), {"/a.S/M": frozenset({CLINICIAN})}, frozenset({"/a.S/Live"}))
    assert policy.protects("/a.S/M") and policy.protects("/a.S/Unlisted")
    assert not policy.protects("/a.S/Live") and not policy.protects("/grpc.health.v1.Health/Check")
    assert policy.admits("/a.S/M", CLINICIAN) and not policy.admits("/a.S/M", HOSPITAL_SYSTEM)
    assert not policy.admits("/a.S/Unlisted", CLINICIAN)


@given(st.text(min_size=1, max_size=80))
def test_identifier_pseudonyms_are_keyed_hmacs_separated_by_kind(value: str) -> None:
    p = Pseudonymiser(KEY)
    expected = hmac.new(KEY, f"{STUDY_UID}\x1f{value}".encode(), hashlib.sha256).hexdigest()
    assert p.identifier(STUDY_UID, value) == expected
    assert len({p.identifier(kind, value) for kind in (STUDY_UID, ACCESSION, REQUEST_ID)}) == 3
    assert p.identifier(STUDY_UID, value) != p.pseudonym(value)
    assert Pseudonymiser(b"another-key-0123456789").identifier(STUDY_UID, value) != expected


def test_empty_identifiers_stay_empty() -> None:
    assert Pseudonymiser(KEY).identifier(ACCESSION, "") == ""


def _command(reader: str = "", key: str = "k-1") -> RecordReadCommand:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    return RecordReadCommand(key, PredictionRef("p", at), reader, Outcome.AGREE, Label.NEGATIVE, None, at)


def test_a_read_is_attributed_to_the_authenticated_caller() -> None:
    denied: list[tuple[str, str, str]] = []
    attribution = ReadAttribution(Pseudonymiser(KEY), on_denied=lambda *args: denied.append(args))
    ids = Pseudonymiser(KEY).identifier
    doctor = Caller("dr-a", CLINICIAN, "token")
    assert attribution.command(doctor, _command()).reader_pseudonym == ids(READER, "0:|dr-a")
    assert attribution.command(doctor, _command("dr-a")).reader_pseudonym == ids(READER, "0:|dr-a")
    with pytest.raises(PermissionDenied, match="as themself"):
        attribution.command(doctor, _command("dr-b"))
    ris = Caller("ris-1", READING_SYSTEM, "certificate")
    vouched = attribution.command(ris, _command("dr-a"))
    # A reading system's readers live in its own namespace, and keys are scoped to the caller.
    assert vouched.reader_pseudonym == ids(READER, "5:ris-1|dr-a") != ids(READER, "0:|dr-a")
    assert vouched.idempotency_key != attribution.command(doctor, _command()).idempotency_key
    with pytest.raises(InvalidArgument, match="reader_pseudonym: is required"):
        attribution.command(ris, _command(""))
    with pytest.raises(PermissionDenied):
        attribution.command(Caller("pacs", HOSPITAL_SYSTEM, "token"), _command("dr-a"))
    assert attribution.command(INSECURE_CALLER, _command("dr-a")).reader_pseudonym == ids(READER, "0:|dr-a")
    assert [reason for _, reason, _ in denied] == ["reader_not_caller", "role_not_allowed"]
