"""The gateway's pseudonymiser (the shared keyed HMAC of :mod:`services.runtime.pseudonyms`)."""

from __future__ import annotations

from services.runtime.pseudonyms import Pseudonymiser

__all__ = ["Pseudonymiser"]
