"""Keyed pseudonyms (HMAC-SHA256) for everything that identifies a patient, a study or a request.

One key serves every process that must pseudonymise the same way (the gateway for patients, studies and
request ids; the feedback service for read keys and readers), so pseudonyms made by different services
still join. Without the key a pseudonym can neither be reversed nor recomputed from a guessed value; with
it (on the hospital's side) a known value can be matched to its pseudonym. Each kind of identifier has its
own domain, so equal strings of different kinds (a study UID reused as a series UID) do not look equal.
"""

from __future__ import annotations

import hashlib
import hmac

#: The kinds of identifiers pseudonymised besides patient ids (each its own HMAC domain).
STUDY_UID = "study-uid"
SERIES_UID = "series-uid"
INSTANCE_UID = "instance-uid"
ACCESSION = "accession"
REQUEST_ID = "request-id"
READ_KEY = "read-key"
READER = "reader"


class Pseudonymiser:
    """HMAC-SHA256 pseudonyms under one secret key; empty values stay empty."""

    def __init__(self, key: bytes) -> None:
        """Create the pseudonymiser.

        Raises:
            ValueError: The key is shorter than 16 bytes.
        """
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        self._key = key

    def pseudonym(self, patient_id: str, issuer: str = "") -> str:
        """The pseudonym of a patient id within its issuer (empty id → empty pseudonym)."""
        if not patient_id:
            return ""
        # The issuer's length prefix keeps ("a|b", "c") and ("a", "b|c") apart.
        message = f"{len(issuer)}:{issuer}|{patient_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def identifier(self, kind: str, value: str) -> str:
        """The pseudonym of a ``kind`` of identifier (one of this module's constants); empty stays empty.

        The message starts with the kind, never with a digit, so it cannot collide with a patient's.
        """
        if not value:
            return ""
        return hmac.new(self._key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()
