"""Keyed pseudonyms for patient identifiers: nothing raw leaves the gateway."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymiser:
    """HMAC-SHA256 of the (issuer, patient id) pair under a secret key.

    The same patient always gets the same pseudonym under one key (so monitors can count patients),
    and without the key a pseudonym cannot be reversed or recomputed from a guessed id.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        self._key = key

    def pseudonym(self, patient_id: str, issuer: str = "") -> str:
        """The pseudonym for a patient id (empty id → empty pseudonym)."""
        if not patient_id:
            return ""
        message = f"{len(issuer)}:{issuer}|{patient_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
