"""Electronic signatures on approvals: Ed25519 keys per signer, held by the governance service.

The keyring file is JSON ``{principal: {"key_id": ..., "private_pem": ...}}``. A signature covers the
canonical approval record ``canonical_json({transition_id, signer, role, meaning, signed_at})``, so changing
who signed, in which role, what it meant or when invalidates it. A reference renewal's signature covers
``{renewal_id, reference_sha256, signer, role, meaning, signed_at}`` (:func:`renewal_record`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.domain.audit import canonical_json
from services.runtime.errors import FailedPrecondition

ALGORITHM = "ed25519"


@dataclass(frozen=True)
class SignerKey:
    """One signer's key pair."""

    principal: str
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying half."""
        return self.private_key.public_key()


def _key_id(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class Keyring:
    """Signers' private keys by principal, and every public key by key id."""

    def __init__(self, keys: Iterable[SignerKey] = ()) -> None:
        self._by_principal: dict[str, SignerKey] = {}
        self._by_key_id: dict[str, SignerKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: SignerKey) -> None:
        """Add (or replace) a signer's key; the old key id still verifies old signatures."""
        self._by_principal[key.principal] = key
        self._by_key_id[key.key_id] = key

    def generate(self, principal: str) -> SignerKey:
        """Create and add a fresh key for ``principal``."""
        private = Ed25519PrivateKey.generate()
        key = SignerKey(principal, _key_id(private), private)
        self.add(key)
        return key

    def key_for(self, principal: str) -> SignerKey:
        """The signing key of ``principal``.

        Raises:
            FailedPrecondition: If the principal has no key (it must be enrolled first).
        """
        key = self._by_principal.get(principal)
        if key is None:
            raise FailedPrecondition(f"signer '{principal}' has no signing key enrolled")
        return key

    def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        """The public key with id ``key_id``, if known."""
        key = self._by_key_id.get(key_id)
        return None if key is None else key.public_key

    def signer_of(self, key_id: str) -> str | None:
        """The principal that holds key ``key_id``, if known."""
        key = self._by_key_id.get(key_id)
        return None if key is None else key.principal

    def principals(self) -> list[str]:
        """Enrolled principals."""
        return sorted(self._by_principal)

    def to_json(self) -> dict[str, dict[str, str]]:
        """The file form ``{principal: {key_id, private_pem}}``."""
        out: dict[str, dict[str, str]] = {}
        for principal, key in sorted(self._by_principal.items()):
            pem = key.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            out[principal] = {"key_id": key.key_id, "private_pem": pem.decode("ascii")}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Keyring:
        """Parse the file form."""
        keys = []
        for principal, entry in data.items():
            private = serialization.load_pem_private_key(entry["private_pem"].encode("ascii"), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"keyring entry '{principal}' is not an Ed25519 key")
            keys.append(SignerKey(principal, str(entry.get("key_id") or _key_id(private)), private))
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a keyring file."""
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        """Write the keyring file readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2, sort_keys=True)


def generate_keyring(principals: Iterable[str], path: Path | None = None) -> Keyring:
    """A keyring with a fresh key for each principal, written to ``path`` when given."""
    keyring = Keyring()
    for principal in principals:
        keyring.generate(principal)
    if path is not None:
        keyring.save(path)
    return keyring


def approval_record(transition_id: str, signer: str, role: str, meaning: str, signed_at: datetime) -> dict[str, Any]:
    """The fields a signature covers."""
    return {
        "transition_id": transition_id,
        "signer": signer,
        "role": str(role),
        "meaning": meaning,
        "signed_at": signed_at,
    }


def renewal_record(
    renewal_id: str, reference_sha256: str, signer: str, role: str, meaning: str, signed_at: datetime
) -> dict[str, Any]:
    """The fields a signature on a reference renewal covers: the renewal and the exact profile it approves.

    Its keys differ from :func:`approval_record`'s, so a transition's signature never verifies as a
    renewal's (or the other way round).
    """
    return {
        "renewal_id": renewal_id,
        "reference_sha256": reference_sha256,
        "signer": signer,
        "role": str(role),
        "meaning": meaning,
        "signed_at": signed_at,
    }


def sign_approval(keyring: Keyring, fields: Mapping[str, Any]) -> tuple[bytes, str, str]:
    """Sign the canonical approval record with the signer's key.

    Args:
        keyring: Holds the signer's private key.
        fields: ``transition_id, signer, role, meaning, signed_at`` (see :func:`approval_record`).

    Returns:
        ``(signature, algorithm, key_id)``.
    """
    key = keyring.key_for(str(fields["signer"]))
    message = canonical_json(dict(fields)).encode("utf-8")
    return key.private_key.sign(message), ALGORITHM, key.key_id


def verify_approval(keyring: Keyring, fields: Mapping[str, Any], signature: bytes, algorithm: str, key_id: str) -> bool:
    """Whether ``signature`` is the key ``key_id``'s Ed25519 signature over the canonical record ``fields``."""
    if algorithm != ALGORITHM:
        return False
    public = keyring.public_key(key_id)
    if public is None or keyring.signer_of(key_id) != fields.get("signer"):
        return False
    try:
        public.verify(signature, canonical_json(dict(fields)).encode("utf-8"))
    except InvalidSignature:
        return False
    return True
