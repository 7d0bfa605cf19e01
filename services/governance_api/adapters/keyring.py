"""The signers' keyring file: loaded at start, merged when it changes, and enrolment of new signers.

The governance service signs approvals with each signer's own Ed25519 key, held in a JSON file only the
service reads (``{principal: {key_id, private_pem}}``). ``radguard governance tokens add`` enrols a
signer when it creates their token; a signer whose token was made elsewhere is enrolled on their first
authenticated signature. Keys are only ever added, never replaced: a replaced key would orphan the
signatures it made.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from governance.domain.signing import Keyring
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


def enrol(path: Path, principal: str) -> bool:
    """Give ``principal`` a signing key in the keyring file unless it has one; True when one was made."""
    keyring = Keyring.load(path) if path.exists() else Keyring()
    if principal in keyring.principals():
        return False
    keyring.generate(principal)
    keyring.save(path)
    return True


class KeyringFile:
    """A live :class:`Keyring` kept in step with its file."""

    def __init__(self, path: Path) -> None:
        """Load the file (a missing file is an empty keyring, created on first enrolment)."""
        self.path = path
        self.keyring = Keyring.load(path) if path.exists() else Keyring()
        self._stamp = self._file_stamp()
        self._lock = asyncio.Lock()

    def _file_stamp(self) -> tuple[int, int]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return (0, -1)
        return (info.st_mtime_ns, info.st_size)

    def refresh(self) -> None:
        """Add keys that appeared in the file since the last look (existing keys are kept)."""
        stamp = self._file_stamp()
        if stamp == self._stamp or stamp[1] < 0:
            return
        try:
            loaded = Keyring.load(self.path)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            _log.error("governance.keyring_file_invalid", path=str(self.path), error=str(error))
            return
        known = set(self.keyring.principals())
        for principal in loaded.principals():
            if principal not in known:
                self.keyring.add(loaded.key_for(principal))
        self._stamp = stamp

    async def ensure(self, principal: str) -> None:
        """Make sure ``principal`` can sign: pick up the file's keys, else enrol a new key and save it."""
        self.refresh()
        if principal in self.keyring.principals():
            return
        async with self._lock:
            self.refresh()
            if principal in self.keyring.principals():
                return
            key = self.keyring.generate(principal)
            await asyncio.to_thread(self._save)
            _log.info("governance.signer_enrolled", principal=principal, key_id=key.key_id)

    def _save(self) -> None:
        # Merge with what others wrote meanwhile, never dropping a key.
        on_disk = Keyring.load(self.path) if self.path.exists() else Keyring()
        known = set(on_disk.principals())
        for principal in self.keyring.principals():
            if principal not in known:
                on_disk.add(self.keyring.key_for(principal))
        on_disk.save(self.path)
        self._stamp = self._file_stamp()
