"""Process settings read from ``RADGUARD_*`` environment variables, with errors that name the variable.

Every process defines one settings class deriving from :class:`ServiceSettings` and loads it once in its
composition root with :func:`load_settings`. Every timeout, size limit and pool size is a named setting
here with a default that works on a developer machine.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from services.runtime.kafka_security import KafkaSecuritySettings
from services.runtime.validators import readable_file

ENV_PREFIX = "RADGUARD_"

Port = Annotated[int, Field(ge=0, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
NonNegativeSeconds = Annotated[float, Field(ge=0)]
PositiveMillis = Annotated[int, Field(gt=0)]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["json", "logfmt"]

_MIB = 1024 * 1024

# When load_settings is given an explicit mapping, the settings class reads it instead of os.environ.
# A context variable (not a class attribute) keeps concurrent loads in other threads or tasks apart.
_env_override: ContextVar[Mapping[str, str] | None] = ContextVar("radguard_env_override", default=None)


class ConfigError(Exception):
    """Settings could not be loaded; ``problems`` holds one line per bad variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class _MappingEnvSource(EnvSettingsSource):
    """The standard environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (key if self.case_sensitive else key.lower()): value
            for key, value in self._mapping.items()
            if not (self.env_ignore_empty and value == "")
        }


class ServiceSettings(KafkaSecuritySettings):
    """Settings every radguard process shares; a process subclasses it to add its own.

    Each field ``name`` is read from ``RADGUARD_NAME``. Empty variables count as unset. The Kafka TLS/SASL
    fields (``kafka_security_protocol`` ...) come from :class:`KafkaSecuritySettings`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # Identity and logs.
    service_name: str = Field(default="radguard", min_length=1, description="service.name in traces, logs")
    log_level: LogLevel = "info"
    access_log_level: LogLevel = Field(default="info", description="level of successful calls' access-log lines")
    log_format: LogFormat = Field(default="json", description="json or logfmt (key=value), one event a line")

    # gRPC server.
    grpc_host: str = Field(default="0.0.0.0", description="interface the gRPC server binds")  # noqa: S104
    grpc_port: Port = Field(default=19051, description="0 lets the OS pick a free port")
    grpc_max_receive_message_bytes: int = Field(default=64 * _MIB, ge=1024)
    grpc_max_send_message_bytes: int = Field(default=64 * _MIB, ge=1024)
    grpc_max_concurrent_rpcs: int | None = Field(default=None, ge=1, description="unset means no limit")
    drain_notice_s: NonNegativeSeconds = Field(
        default=0.0, description="time between health NOT_SERVING and refusing new calls on shutdown"
    )
    drain_grace_s: NonNegativeSeconds = Field(default=10.0, description="time in-flight calls get to finish")
    shutdown_hook_timeout_s: PositiveSeconds = Field(default=10.0, description="time each shutdown hook gets")
    readiness_interval_s: PositiveSeconds = Field(default=5.0, description="time between readiness checks")
    readiness_timeout_s: PositiveSeconds = Field(default=2.0, description="time one readiness check gets")

    # TLS: a certificate and key enable TLS; a CA plus require_client_cert enables mutual TLS.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_require_client_cert: bool = False

    # Telemetry.
    otlp_endpoint: str | None = Field(default=None, description="OTLP/gRPC collector; unset disables export")
    otlp_timeout_s: PositiveSeconds = 10.0
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    metrics_enabled: bool = True
    metrics_host: str = "0.0.0.0"  # noqa: S104
    metrics_port: Port = Field(default=9464, description="Prometheus endpoint; 0 lets the OS pick a port")

    # Kafka.
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1, description="host:port,...")
    kafka_bootstrap_timeout_ms: PositiveMillis = 10_000
    kafka_request_timeout_ms: PositiveMillis = 30_000
    kafka_delivery_timeout_ms: PositiveMillis = 120_000
    kafka_max_block_ms: PositiveMillis = 10_000
    kafka_linger_ms: int = Field(default=5, ge=0)
    kafka_batch_size_bytes: int = Field(default=64 * 1024, ge=1)
    kafka_max_request_bytes: int = Field(default=_MIB, ge=1024)
    kafka_session_timeout_ms: PositiveMillis = 45_000
    kafka_max_poll_interval_ms: PositiveMillis = 300_000
    kafka_max_poll_records: int = Field(default=500, ge=1)
    kafka_close_timeout_s: PositiveSeconds = 10.0

    # PostgreSQL. The DSN may hold a password, so it is a secret: printed settings show '**********'.
    postgres_dsn: SecretStr = SecretStr("postgresql://radguard@127.0.0.1:5432/radguard")
    postgres_pool_min_size: int = Field(default=1, ge=0)
    postgres_pool_max_size: int = Field(default=10, ge=1)
    postgres_command_timeout_s: PositiveSeconds = 10.0
    postgres_connect_timeout_s: PositiveSeconds = 5.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read constructor arguments, then the environment (or the mapping given to load_settings)."""
        override = _env_override.get()
        if override is None:
            return init_settings, env_settings
        return init_settings, _MappingEnvSource(settings_cls, override)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("tls_cert_file", "tls_key_file", "tls_ca_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        return readable_file(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            pair = ("TLS_CERT_FILE", "TLS_KEY_FILE")
            given, missing = pair if self.tls_key_file is None else pair[::-1]
            problems.append(f"{ENV_PREFIX}{missing}: must be set when {ENV_PREFIX}{given} is set")
        if self.tls_require_client_cert and (self.tls_ca_file is None or self.tls_cert_file is None):
            names = ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE")
            needed = ", ".join(f"{ENV_PREFIX}{name}" for name in names)
            problems.append(f"{ENV_PREFIX}TLS_REQUIRE_CLIENT_CERT: needs {needed}")
        if self.postgres_pool_min_size > self.postgres_pool_max_size:
            problems.append(
                f"{ENV_PREFIX}POSTGRES_POOL_MIN_SIZE: must not exceed {ENV_PREFIX}POSTGRES_POOL_MAX_SIZE "
                f"({self.postgres_pool_min_size} > {self.postgres_pool_max_size})"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def tls_enabled(self) -> bool:
        """True when the server should listen with TLS."""
        return self.tls_cert_file is not None


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@contextmanager
def _reading(env: Mapping[str, str] | None) -> Iterator[None]:
    token = _env_override.set(env)
    try:
        yield
    finally:
        _env_override.reset(token)


def load_settings(cls: type[SettingsT], env: Mapping[str, str] | None = None) -> SettingsT:
    """Load and validate a process's settings.

    Args:
        cls: The settings class (``ServiceSettings`` or a subclass).
        env: Variables to read instead of ``os.environ`` (tests pass a dict to stay hermetic).

    Returns:
        The validated, frozen settings.

    Raises:
        ConfigError: One line per bad variable, each starting with the variable's name, e.g.
            ``RADGUARD_GRPC_PORT: must be an integer between 0 and 65535, got 'abc'``.
    """
    with _reading(env):
        try:
            return cls()
        except ValidationError as error:
            raise ConfigError(_describe(cls, error)) from None


def env_var_name(cls: type[BaseSettings], field_name: str) -> str:
    """Return the environment variable a settings field is read from.

    Args:
        cls: The settings class.
        field_name: The field's attribute name.

    Returns:
        E.g. ``RADGUARD_GRPC_PORT`` for ``grpc_port``.
    """
    field = cls.model_fields.get(field_name)
    if field is not None and isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


def _describe(cls: type[BaseSettings], error: ValidationError) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for item in error.errors(include_url=False):
        loc = item.get("loc", ())
        if not loc:
            # Model-level checks already name their variables, one per line.
            for line in _error_text(item).splitlines():
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
            continue
        field_name = str(loc[0])
        var = env_var_name(cls, field_name)
        if var in seen:
            continue
        seen.add(var)
        field = cls.model_fields.get(field_name)
        lines.append(f"{var}: {_field_problem(field, item)}")
    return lines


def _error_text(item: Mapping[str, Any]) -> str:
    ctx = item.get("ctx") or {}
    if "error" in ctx:
        return str(ctx["error"])
    return str(item.get("msg", "invalid value"))


# Pydantic error types that mean "wrong type or out of bounds": reported as what the field expects.
_TYPE_ERRORS_PREFIXES = (
    "int_",
    "float_",
    "bool_",
    "string_",
    "literal_",
    "greater_",
    "less_",
    "path_",
    "too_",
)


def _field_problem(field: FieldInfo | None, item: Mapping[str, Any]) -> str:
    kind = str(item.get("type", ""))
    if kind == "missing":
        return "is required"
    if kind in ("value_error", "assertion_error"):
        return _error_text(item)
    expected = _expectation(field) if field is not None else None
    secret = field is not None and _plain_type(field.annotation) is SecretStr
    got = "" if secret else f", got {_show(item.get('input'))}"
    if expected is not None and kind.startswith(_TYPE_ERRORS_PREFIXES):
        return f"must be {expected}{got}"
    message = str(item.get("msg", "invalid value"))
    return f"{message[:1].lower()}{message[1:]}{got}"


def _show(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _plain_type(annotation: Any) -> Any:
    """Strip ``X | None`` and ``Annotated`` down to X."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _plain_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _plain_type(members[0])
    return annotation


_NOUNS: Mapping[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
    SecretStr: "text",
    Path: "a file path",
}


_LIMIT_PHRASES: Mapping[str, str] = {
    "ge": "at least {}",
    "gt": "greater than {}",
    "le": "at most {}",
    "lt": "less than {}",
    "min_length": "at least {} characters long",
    "max_length": "at most {} characters long",
}


def _expectation(field: FieldInfo) -> str | None:
    annotation = _plain_type(field.annotation)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(annotation))
    noun = _NOUNS.get(annotation)
    if noun is None:
        return None
    limits: dict[str, object] = {}
    for constraint in field.metadata:
        for name in _LIMIT_PHRASES:
            value = getattr(constraint, name, None)
            if value is not None:
                limits[name] = value
    if "ge" in limits and "le" in limits:
        return f"{noun} between {limits['ge']} and {limits['le']}"
    phrases = [_LIMIT_PHRASES[name].format(value) for name, value in limits.items()]
    return " ".join([noun, " and ".join(phrases)]) if phrases else noun
