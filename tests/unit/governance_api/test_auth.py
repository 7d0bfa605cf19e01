"""Bearer-token authentication: the tokens file, the store, and the interceptor on a real aio server."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from services.governance_api.auth import (
    BearerAuthInterceptor,
    Identity,
    TokenFileError,
    TokenStore,
    add_token,
    bearer_token,
    current_identity,
    hash_token,
    load_tokens,
    parse_tokens,
)
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.errors import Unauthenticated
from services.runtime.server import RadguardServer


def test_add_token_stores_only_the_hash_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "tokens.json"
    first = add_token(path, "alice", "board")
    second = add_token(path, "bob", "operator")
    text = path.read_text()
    assert first not in text and second not in text
    data = json.loads(text)
    assert data == {
        hash_token(first): {"principal": "alice", "role": "board"},
        hash_token(second): {"principal": "bob", "role": "operator"},
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_tokens(path)[hash_token(second)] == Identity("bob", "operator")


@pytest.mark.parametrize(
    ("principal", "role", "message"),
    [("", "board", "principal: required"), ("carol", "admin", "role: must be one of clinician, board")],
)
def test_add_token_refuses_bad_input(tmp_path: Path, principal: str, role: str, message: str) -> None:
    with pytest.raises(TokenFileError, match=message):
        add_token(tmp_path / "t.json", principal, role)
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"abc": {"principal": "x", "role": "board"}}, "not a lowercase sha256"),
        ({"a" * 64: "board"}, "must be an object"),
        ({"a" * 64: {"role": "board"}}, r"principal: required"),
        ({"a" * 64: {"principal": "x", "role": "root"}}, r"role: must be one of"),
    ],
)
def test_parse_tokens_names_the_bad_entry(data: Any, message: str) -> None:
    with pytest.raises(TokenFileError, match=message):
        parse_tokens(data, "tokens.json")


def test_missing_file_has_no_tokens_and_invalid_json_is_an_error(tmp_path: Path) -> None:
    assert load_tokens(tmp_path / "none.json") == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TokenFileError, match="not JSON"):
        load_tokens(bad)


def test_store_rereads_the_file_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    alice = add_token(path, "alice", "board")
    store = TokenStore(path)
    assert store.identify(alice) == Identity("alice", "board")
    assert store.identify("nope") is None
    bob = add_token(path, "bob", "clinician")
    assert store.identify(bob) == Identity("bob", "clinician")  # added without a restart
    path.write_text("{broken")
    assert store.identify(alice) == Identity("alice", "board")  # a half-edited file locks nobody out


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer_token_parsing(header: str, token: str | None) -> None:
    assert bearer_token({"authorization": header}) == token
    assert bearer_token({}) is None


# --- the interceptor on a real server ----------------------------------------------------------

_SERVICE = "radguard.governance.v1.Governance"


async def _whoami(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    identity = current_identity()
    return f"{identity.principal}/{identity.role}".encode()


async def _open(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return b"open"


@pytest_asyncio.fixture(loop_scope="session")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    settings = load_settings(
        ServiceSettings,
        {
            "RADGUARD_GRPC_HOST": "127.0.0.1",
            "RADGUARD_GRPC_PORT": "0",
            "RADGUARD_METRICS_ENABLED": "false",
            "RADGUARD_LOG_LEVEL": "warning",
        },
    )
    store = TokenStore(tokens={hash_token("good-token"): Identity("alice", "board")})
    server = RadguardServer(settings, interceptors=[BearerAuthInterceptor(store)])
    protected = grpc.method_handlers_generic_handler(_SERVICE, {"WhoAmI": grpc.unary_unary_rpc_method_handler(_whoami)})
    other = grpc.method_handlers_generic_handler("test.Open", {"Ping": grpc.unary_unary_rpc_method_handler(_open)})
    server.add_generic_handler(protected)
    server.add_generic_handler(other)
    await server.start()
    chan = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield chan
    finally:
        await chan.close()
        await server.stop(0)


async def _call(channel: grpc.aio.Channel, method: str, token: str | None) -> bytes:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    result: bytes = await channel.unary_unary(method)(b"", metadata=metadata)
    return result


@pytest.mark.asyncio(loop_scope="session")
async def test_known_token_acts_as_its_identity(channel: grpc.aio.Channel) -> None:
    assert await _call(channel, f"/{_SERVICE}/WhoAmI", "good-token") == b"alice/board"


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(("token", "message"), [(None, "missing bearer token"), ("bad-token", "unknown bearer token")])
async def test_missing_or_unknown_token_is_unauthenticated(
    channel: grpc.aio.Channel, token: str | None, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, f"/{_SERVICE}/WhoAmI", token)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert message in (raised.value.details() or "")


@pytest.mark.asyncio(loop_scope="session")
async def test_other_services_need_no_token(channel: grpc.aio.Channel) -> None:
    assert await _call(channel, "/test.Open/Ping", None) == b"open"


def test_no_identity_outside_a_call() -> None:
    with pytest.raises(Unauthenticated):
        current_identity()
