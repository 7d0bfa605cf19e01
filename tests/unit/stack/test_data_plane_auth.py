"""The stack's generated client tokens and pseudonymisation key: made once, private, and consistent."""

from __future__ import annotations

from pathlib import Path

from services.runtime.auth import Credentials
from stack.components.services import CLIENT_TOKENS, client_tokens, data_plane_tokens, pseudonym_key


def test_tokens_and_key_are_made_once_and_private(tmp_path: Path) -> None:
    assert client_tokens(tmp_path) == {}
    hashes = data_plane_tokens(tmp_path)
    tokens = client_tokens(tmp_path)
    assert set(tokens) == set(CLIENT_TOKENS)
    credentials = Credentials(hashes)
    for variable, (principal, role) in CLIENT_TOKENS.items():
        caller = credentials.by_token(tokens[variable])
        assert caller is not None and (caller.principal, caller.role) == (principal, role)
        assert tokens[variable] not in hashes.read_text()
    for path in (hashes, tmp_path / "auth" / "client-tokens.json"):
        assert path.stat().st_mode & 0o777 == 0o600
    # A second stack up keeps what the first one made.
    assert data_plane_tokens(tmp_path) == hashes and client_tokens(tmp_path) == tokens
    key = pseudonym_key(tmp_path)
    assert len(key) == 64 and pseudonym_key(tmp_path) == key
    assert (tmp_path / "gateway" / "pseudonym.key").stat().st_mode & 0o777 == 0o600
