"""Signed checkpoints of the audit log's head, and the check that a new head extends the last one signed.

A checkpoint says "the log had ``entry_count`` entries, the last being ``seq`` with hash ``head_hash``",
signed with the governance service's own Ed25519 key, like a transparency log's signed tree head. Kept
outside the database (the audit topic and a local file), checkpoints make history the database alone could
rewrite fixed: a chain recomputed from the stored entries must reach every checkpoint's head, and a log
shorter than a checkpoint was truncated.

The signature covers ``canonical_json({type, seq, head_hash, entry_count, time, key_id})`` with ``type``
:data:`CHECKPOINT_TYPE`, so a signature made for anything else never passes as a checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.domain.audit import GENESIS, AuditHead, ChainVerdict, canonical_json, verify_chain
from governance.domain.codec import format_time, parse_time
from governance.domain.model import AuditRecord

CHECKPOINT_TYPE = "radguard.audit.checkpoint.v1"
ALGORITHM = "ed25519"


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` and the first 16 hex digits of SHA-256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the audit head (``signature`` empty until signed)."""

    seq: int
    head_hash: str
    entry_count: int
    time: datetime
    key_id: str
    algorithm: str = ALGORITHM
    signature: bytes = b""

    def message(self) -> bytes:
        """The bytes the signature covers."""
        fields = {
            "type": CHECKPOINT_TYPE,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "entry_count": self.entry_count,
            "time": format_time(self.time),
            "key_id": self.key_id,
        }
        return canonical_json(fields).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        """One line of the checkpoint file (signature in base64)."""
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "entry_count": self.entry_count,
            "time": format_time(self.time),
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Parse :meth:`to_json`'s form.

        Raises:
            KeyError, TypeError, ValueError: A field is missing or malformed.
        """
        return cls(
            seq=int(data["seq"]),
            head_hash=str(data["head_hash"]),
            entry_count=int(data["entry_count"]),
            time=parse_time(str(data["time"])),
            key_id=str(data["key_id"]),
            algorithm=str(data["algorithm"]),
            signature=base64.b64decode(str(data["signature"]), validate=True),
        )


class CheckpointSigner:
    """Signs checkpoints with the governance service's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        """Hold ``private_key``."""
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = public_key_id(self.public_key)

    def sign(self, seq: int, head_hash: str, entry_count: int, at: datetime) -> Checkpoint:
        """The signed checkpoint of a head."""
        unsigned = Checkpoint(seq, head_hash, entry_count, at, self.key_id)
        return Checkpoint(seq, head_hash, entry_count, at, self.key_id, ALGORITHM, self._key.sign(unsigned.message()))


def checkpoint_problem(checkpoint: Checkpoint, public_keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Why ``checkpoint`` cannot be trusted, or None when one of ``public_keys`` (by key id) signed it."""
    if checkpoint.algorithm != ALGORITHM:
        return f"algorithm {checkpoint.algorithm!r} is not {ALGORITHM}"
    public = public_keys.get(checkpoint.key_id)
    if public is None:
        return f"signed by key {checkpoint.key_id}, which is not a verifying key"
    try:
        public.verify(checkpoint.signature, checkpoint.message())
    except InvalidSignature:
        return "signature does not verify (forged or altered)"
    if checkpoint.entry_count != checkpoint.seq:
        return f"entry count {checkpoint.entry_count} is not its seq {checkpoint.seq}"
    return None


def extension_verdict(  # noqa: PLR0911 - one return per way the extension can fail
    last: Checkpoint | None, records: Sequence[AuditRecord], head: AuditHead
) -> ChainVerdict:
    """Whether the stored log still extends the last checkpoint signed, up to ``head``.

    Args:
        last: The previous checkpoint (None: none yet, the log is checked from its first entry).
        records: Entries ``last.seq`` (its hash must still be ``last.head_hash``) to ``head.seq``, in seq
            order; from seq 1 when ``last`` is None.
        head: The head the store records, which the new checkpoint would sign.

    Returns:
        The verdict; not ok means the history under the last checkpoint changed and nothing may be signed.
    """
    if last is None:
        return verify_chain(records, GENESIS, expect_first_seq=1, expect_head=head)
    if head.seq < last.seq:
        return ChainVerdict(False, head.seq + 1, f"head moved back from seq {last.seq} to {head.seq}", 0, head.hash)
    if head.seq == last.seq:
        if head.hash != last.head_hash:
            return ChainVerdict(False, last.seq, "head differs from the last checkpoint", 0, head.hash)
        return ChainVerdict(True, None, "ok", 0, head.hash)
    if not records or records[0].seq != last.seq:
        return ChainVerdict(False, last.seq, f"entry {last.seq} of the last checkpoint is missing", 0, "")
    if records[0].hash != last.head_hash:
        return ChainVerdict(False, last.seq, f"entry {last.seq} no longer has the last checkpoint's hash", 0, "")
    return verify_chain(records[1:], last.head_hash, expect_first_seq=last.seq + 1, expect_head=head)


def write_checkpoint_key(private_path: Path, public_path: Path) -> CheckpointSigner:
    """Generate a signing key: the private half (PKCS#8 PEM, mode 0600) and the public half (PEM) beside it.

    Raises:
        FileExistsError: ``private_path`` exists (a key is never replaced: it would orphan its checkpoints).
    """
    private = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    public_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return CheckpointSigner(private)


def load_checkpoint_signer(path: Path) -> CheckpointSigner:
    """The signer of a PKCS#8 PEM Ed25519 private key file.

    Raises:
        ValueError: The file holds no Ed25519 private key.
    """
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return CheckpointSigner(private)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (or the public half of a private key file).

    Raises:
        ValueError: The file holds no Ed25519 key.
    """
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_checkpoint_signer(path).public_key
    public = serialization.load_pem_public_key(data)
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return public
