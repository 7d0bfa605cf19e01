"""The signers' keyring file: enrolment by the CLI, pick-up by a running service, enrolment on first signature."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from governance.domain.signing import Keyring
from services.governance_api.adapters.keyring import KeyringFile, enrol


def test_enrol_adds_once(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    assert enrol(path, "bert") is True
    key_id = Keyring.load(path).key_for("bert").key_id
    assert enrol(path, "bert") is False
    assert Keyring.load(path).key_for("bert").key_id == key_id  # never replaced
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.asyncio(loop_scope="session")
async def test_running_keyring_picks_up_new_signers_and_enrols_on_demand(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    live = KeyringFile(path)
    assert live.keyring.principals() == []
    enrol(path, "bert")  # e.g. `radguard governance tokens add` while the service runs
    await live.ensure("bert")
    assert live.keyring.key_for("bert").key_id == Keyring.load(path).key_for("bert").key_id
    await live.ensure("clara")  # a signer whose token was made elsewhere
    on_disk = Keyring.load(path)
    assert on_disk.principals() == ["bert", "clara"]
    assert on_disk.key_for("clara").key_id == live.keyring.key_for("clara").key_id
