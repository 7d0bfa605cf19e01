"""How radguard's Kafka clients authenticate and encrypt: TLS and/or SASL, read from ``RADGUARD_KAFKA_*``.

A managed Kafka usually accepts only TLS (``SSL``), SASL over TLS (``SASL_SSL``) or, on a trusted network,
SASL without TLS (``SASL_PLAINTEXT``). :class:`KafkaSecuritySettings` holds those settings; every process's
settings class derives from it (through :class:`services.runtime.config.ServiceSettings`), and
:meth:`KafkaSecuritySettings.client_kwargs` turns them into the keyword arguments kafka-python's producer,
consumer and admin client take. :mod:`services.runtime.kafka` applies them to every client it builds.

The defaults are today's behaviour: plaintext, no authentication.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.validators import readable_file

__all__ = ["PLAINTEXT", "KafkaSecuritySettings", "SaslMechanism", "SecurityProtocol"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_PREFIX = "RADGUARD_"
_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def _var(field_name: str) -> str:
    return f"{_PREFIX}{field_name.upper()}"


class KafkaSecuritySettings(BaseSettings):
    """Kafka client security; each field ``name`` is read from ``RADGUARD_NAME``. Empty variables count as unset.

    The password is a secret: printed settings show ``'**********'`` and it is never logged.
    """

    model_config = SettingsConfigDict(env_prefix=_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_ssl_cafile: Path | None = Field(default=None, description="PEM CA bundle; the system roots when unset")
    kafka_ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="PEM private key of the client certificate")
    kafka_ssl_check_hostname: bool = Field(default=True, description="verify the broker's name in its certificate")
    kafka_sasl_mechanism: SaslMechanism = Field(default="PLAIN", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(default=None, min_length=1)
    kafka_sasl_password: SecretStr | None = None

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        return readable_file(value)

    @model_validator(mode="after")
    def _consistent_kafka_security(self) -> Self:
        protocol = self.kafka_security_protocol
        protocol_var = _var("kafka_security_protocol")
        problems: list[str] = []
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            if getattr(self, name) is not None and protocol not in _TLS_PROTOCOLS:
                problems.append(f"{_var(name)}: is set but {protocol_var} is {protocol} (use SSL or SASL_SSL)")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            given, missing = ("kafka_ssl_certfile", "kafka_ssl_keyfile")
            if self.kafka_ssl_certfile is None:
                given, missing = missing, given
            problems.append(f"{_var(missing)}: must be set when {_var(given)} is set")
        if protocol in _SASL_PROTOCOLS:
            if self.kafka_sasl_username is None:
                problems.append(f"{_var('kafka_sasl_username')}: is required when {protocol_var} is {protocol}")
            if self.kafka_sasl_password is None:
                problems.append(f"{_var('kafka_sasl_password')}: is required when {protocol_var} is {protocol}")
        else:
            for name in ("kafka_sasl_username", "kafka_sasl_password"):
                if getattr(self, name) is not None:
                    problems.append(
                        f"{_var(name)}: is set but {protocol_var} is {protocol} (use SASL_PLAINTEXT or SASL_SSL)"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def client_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments that give a kafka-python client this security.

        The same for ``KafkaProducer``, ``KafkaConsumer`` and ``KafkaAdminClient``. Plaintext gives only
        ``security_protocol="PLAINTEXT"`` (kafka-python's default). The SASL password is a ``str`` whose
        ``repr`` is masked, so a logged configuration (kafka-python's admin client logs its own at DEBUG)
        does not show it; still, never log the result.

        Returns:
            ``security_protocol`` plus, for SSL and SASL_SSL, ``ssl_cafile``, ``ssl_certfile``,
            ``ssl_keyfile`` and ``ssl_check_hostname``; for SASL_PLAINTEXT and SASL_SSL,
            ``sasl_mechanism``, ``sasl_plain_username`` and ``sasl_plain_password``.
        """
        protocol = self.kafka_security_protocol
        kwargs: dict[str, Any] = {"security_protocol": protocol}
        if protocol in _TLS_PROTOCOLS:
            kwargs.update(
                ssl_cafile=_text(self.kafka_ssl_cafile),
                ssl_certfile=_text(self.kafka_ssl_certfile),
                ssl_keyfile=_text(self.kafka_ssl_keyfile),
                ssl_check_hostname=self.kafka_ssl_check_hostname,
            )
        if protocol in _SASL_PROTOCOLS:
            assert self.kafka_sasl_password is not None  # checked by the validator
            kwargs.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=_MaskedStr(self.kafka_sasl_password.get_secret_value()),
            )
        return kwargs

    def describe_kafka_security(self) -> str:
        """A one-line, loggable summary (never the password), e.g. ``SASL_SSL (SCRAM-SHA-512 as 'radguard')``."""
        protocol = self.kafka_security_protocol
        if protocol in _SASL_PROTOCOLS:
            return f"{protocol} ({self.kafka_sasl_mechanism} as {self.kafka_sasl_username!r})"
        return protocol


class _MaskedStr(str):
    """A string that prints as ``'**********'`` in ``repr`` (and so inside a printed dict)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


#: Plaintext without authentication: what a client gets when it is given no security settings.
PLAINTEXT = KafkaSecuritySettings.model_construct()
