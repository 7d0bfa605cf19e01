"""How the CLI reaches radguard's gRPC servers: plaintext by default, TLS or mutual TLS when configured.

The servers turn TLS on with ``RADGUARD_TLS_CERT_FILE``/``RADGUARD_TLS_KEY_FILE`` (and require client
certificates with ``RADGUARD_TLS_REQUIRE_CLIENT_CERT``). The CLI side is configured by environment:

- ``RADGUARD_CLI_TLS_CA``: the CA bundle that signed the servers' certificates; setting it turns TLS on.
- ``RADGUARD_CLI_TLS``: ``1`` for TLS trusting the system's roots instead of a bundle.
- ``RADGUARD_CLI_TLS_CERT`` and ``RADGUARD_CLI_TLS_KEY``: this client's certificate and key, for servers that
  require one (both, or neither; they imply TLS).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from stack.processes import StackError

if TYPE_CHECKING:
    from services.runtime.kafka_security import KafkaSecuritySettings

TLS_ENV = "RADGUARD_CLI_TLS"
TLS_CA_ENV = "RADGUARD_CLI_TLS_CA"
TLS_CERT_ENV = "RADGUARD_CLI_TLS_CERT"
TLS_KEY_ENV = "RADGUARD_CLI_TLS_KEY"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ClientTls:
    """The CLI's TLS material; a field is None when the environment does not name it."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials trusting ``ca_file`` (or the system roots) and presenting the client certificate."""
        from services.runtime.tls import channel_credentials  # imports the settings classes: only when TLS is on

        return channel_credentials(self.ca_file, self.cert_file, self.key_file)


def _readable(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise StackError(f"{name}={value}: no such file")
    if not os.access(path, os.R_OK):
        raise StackError(f"{name}={value}: not readable")
    return path


def client_tls(env: Mapping[str, str] | None = None) -> ClientTls | None:
    """The TLS settings the environment asks for; None for plaintext. Errors name the variable."""
    env = os.environ if env is None else env
    switch = env.get(TLS_ENV, "").strip().lower()
    if switch not in _TRUE | _FALSE:
        raise StackError(f"{TLS_ENV}={env[TLS_ENV]}: expected 1 or 0")
    ca_file = _readable(env, TLS_CA_ENV)
    cert_file = _readable(env, TLS_CERT_ENV)
    key_file = _readable(env, TLS_KEY_ENV)
    if (cert_file is None) != (key_file is None):
        given, missing = (TLS_CERT_ENV, TLS_KEY_ENV) if key_file is None else (TLS_KEY_ENV, TLS_CERT_ENV)
        raise StackError(f"{given} is set but {missing} is not: a client certificate needs both")
    if switch in _FALSE and ca_file is None and cert_file is None:
        return None
    return ClientTls(ca_file, cert_file, key_file)


def channel(address: str, env: Mapping[str, str] | None = None) -> grpc.Channel:
    """A blocking channel to ``address``, secure when the environment configures TLS."""
    tls = client_tls(env)
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, tls.credentials())


def aio_channel(address: str, env: Mapping[str, str] | None = None) -> grpc.aio.Channel:
    """An asyncio channel to ``address``, secure when the environment configures TLS."""
    tls = client_tls(env)
    if tls is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, tls.credentials())


def kafka_security() -> KafkaSecuritySettings:
    """The Kafka TLS/SASL settings from ``RADGUARD_KAFKA_*`` (plaintext when unset), as the services read them.

    Raises:
        StackError: A setting is invalid (one line naming the variable).
    """
    from pydantic import ValidationError

    from services.runtime.kafka_security import KafkaSecuritySettings

    try:
        return KafkaSecuritySettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "_".join(str(part) for part in first.get("loc", ())).upper()
        name = f"RADGUARD_KAFKA_{where}" if where else "RADGUARD_KAFKA_*"
        raise StackError(f"{name}: {first.get('msg', 'invalid')}") from None
