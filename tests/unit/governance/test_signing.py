"""Ed25519 approvals: round trip through the keyring file, and any tamper fails verification."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from governance.domain.signing import Keyring, approval_record, generate_keyring, sign_approval, verify_approval
from services.runtime.errors import FailedPrecondition

AT = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def keyring(tmp_path_factory) -> Keyring:
    path = tmp_path_factory.mktemp("keys") / "keyring.json"
    generate_keyring(["alice", "bob"], path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return Keyring.load(path)


def test_round_trip(keyring):
    fields = approval_record("t-1", "alice", "board", "approve canary", AT)
    signature, algorithm, key_id = sign_approval(keyring, fields)
    assert algorithm == "ed25519" and len(signature) == 64
    assert verify_approval(keyring, fields, signature, algorithm, key_id)


@pytest.mark.parametrize(
    "change",
    [
        {"transition_id": "t-2"},
        {"signer": "bob"},
        {"role": "clinician"},
        {"meaning": "approve production"},
        {"signed_at": AT + timedelta(microseconds=1)},
    ],
)
def test_tampered_record_fails(keyring, change):
    fields = approval_record("t-1", "alice", "board", "approve canary", AT)
    signature, algorithm, key_id = sign_approval(keyring, fields)
    assert not verify_approval(keyring, {**fields, **change}, signature, algorithm, key_id)


def test_tampered_signature_or_key_fails(keyring):
    fields = approval_record("t-1", "alice", "board", "approve canary", AT)
    signature, algorithm, key_id = sign_approval(keyring, fields)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify_approval(keyring, fields, flipped, algorithm, key_id)
    assert not verify_approval(keyring, fields, signature, "hmac-sha256", key_id)
    bob_key = keyring.key_for("bob").key_id
    assert not verify_approval(keyring, fields, signature, algorithm, bob_key)


def test_unknown_signer(keyring):
    with pytest.raises(FailedPrecondition, match="signer 'carol' has no signing key enrolled"):
        sign_approval(keyring, approval_record("t-1", "carol", "board", "x", AT))


def test_key_ids_are_stable_across_save_and_load(keyring, tmp_path):
    keyring.save(tmp_path / "k.json")
    again = Keyring.load(tmp_path / "k.json")
    assert again.key_for("alice").key_id == keyring.key_for("alice").key_id
    assert dataclasses.is_dataclass(again.key_for("alice"))
