"""Settings from RADGUARD_* variables, and errors that name the variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, SecretStr

from services.runtime.config import ConfigError, ServiceSettings, env_var_name, load_settings


class GatewayLikeSettings(ServiceSettings):
    """A process's own settings on top of the shared ones."""

    triton_url: str
    triton_timeout_s: float = 2.0


def test_defaults_without_variables() -> None:
    settings = load_settings(ServiceSettings, {})
    assert settings.grpc_port == 19051
    assert settings.drain_grace_s == 10.0
    assert settings.metrics_port == 9464
    assert settings.tls_enabled is False
    assert settings.otlp_endpoint is None
    assert settings.postgres_dsn.get_secret_value() == "postgresql://radguard@127.0.0.1:5432/radguard"


def test_variables_are_read_with_prefix_and_case_insensitively() -> None:
    settings = load_settings(
        ServiceSettings,
        {
            "RADGUARD_GRPC_PORT": "6000",
            "radguard_log_level": "DEBUG",
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": "10.0.0.1:9092,10.0.0.2:9092",
            "RADGUARD_TRACE_SAMPLE_RATIO": "0.25",
            "RADGUARD_METRICS_ENABLED": "false",
            "RADGUARD_OTLP_ENDPOINT": "",  # empty counts as unset
            "GRPC_PORT": "1",  # no prefix: not ours
        },
    )
    assert settings.grpc_port == 6000
    assert settings.log_level == "debug"
    assert settings.kafka_bootstrap_servers == "10.0.0.1:9092,10.0.0.2:9092"
    assert settings.trace_sample_ratio == 0.25
    assert settings.metrics_enabled is False
    assert settings.otlp_endpoint is None


def test_explicit_mapping_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADGUARD_GRPC_PORT", "7000")
    assert load_settings(ServiceSettings, {}).grpc_port == 19051
    assert load_settings(ServiceSettings).grpc_port == 7000
    assert os.environ["RADGUARD_GRPC_PORT"] == "7000"


def test_the_dsn_is_a_secret_in_printed_settings() -> None:
    settings = load_settings(ServiceSettings, {"RADGUARD_POSTGRES_DSN": "postgresql://u:hunter2@db/radguard"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    assert settings.postgres_dsn.get_secret_value() == "postgresql://u:hunter2@db/radguard"


def test_example_error_message() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(ServiceSettings, {"RADGUARD_GRPC_PORT": "abc"})
    assert str(raised.value) == "RADGUARD_GRPC_PORT: must be an integer between 0 and 65535, got 'abc'"


def test_several_bad_variables_one_line_each() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            GatewayLikeSettings,
            {
                "RADGUARD_GRPC_PORT": "70000",
                "RADGUARD_LOG_LEVEL": "loud",
                "RADGUARD_DRAIN_GRACE_S": "-1",
                "RADGUARD_METRICS_ENABLED": "maybe",
                "RADGUARD_TRACE_SAMPLE_RATIO": "2",
                "RADGUARD_KAFKA_LINGER_MS": "1.5",
            },
        )
    problems = raised.value.problems
    assert str(raised.value).splitlines() == list(problems)
    assert sorted(problems) == [
        "RADGUARD_DRAIN_GRACE_S: must be a number at least 0, got '-1'",
        "RADGUARD_GRPC_PORT: must be an integer between 0 and 65535, got '70000'",
        "RADGUARD_KAFKA_LINGER_MS: must be an integer at least 0, got '1.5'",
        "RADGUARD_LOG_LEVEL: must be one of 'debug', 'info', 'warning', 'error', 'critical', got 'loud'",
        "RADGUARD_METRICS_ENABLED: must be true or false, got 'maybe'",
        "RADGUARD_TRACE_SAMPLE_RATIO: must be a number between 0.0 and 1.0, got '2'",
        "RADGUARD_TRITON_URL: is required",
    ]


def test_cert_paths_must_be_readable_files(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(ConfigError) as raised:
        load_settings(
            ServiceSettings,
            {
                "RADGUARD_TLS_CERT_FILE": str(tmp_path / "missing.crt"),
                "RADGUARD_TLS_KEY_FILE": str(directory),
            },
        )
    assert sorted(raised.value.problems) == [
        f"RADGUARD_TLS_CERT_FILE: must be a readable file, got '{tmp_path / 'missing.crt'}' (no such file)",
        f"RADGUARD_TLS_KEY_FILE: must be a readable file, got '{directory}' (not a regular file)",
    ]


def test_cross_field_problems_name_every_variable_involved(tmp_path: Path) -> None:
    cert = tmp_path / "server.crt"
    cert.write_text("not checked here")
    with pytest.raises(ConfigError) as raised:
        load_settings(
            ServiceSettings,
            {
                "RADGUARD_TLS_CERT_FILE": str(cert),
                "RADGUARD_POSTGRES_POOL_MIN_SIZE": "20",
                "RADGUARD_POSTGRES_POOL_MAX_SIZE": "5",
            },
        )
    assert raised.value.problems == (
        "RADGUARD_TLS_KEY_FILE: must be set when RADGUARD_TLS_CERT_FILE is set",
        "RADGUARD_POSTGRES_POOL_MIN_SIZE: must not exceed RADGUARD_POSTGRES_POOL_MAX_SIZE (20 > 5)",
    )


def test_secret_values_are_not_echoed_in_errors() -> None:
    class WithSigningKey(ServiceSettings):
        signing_key: SecretStr = Field(min_length=16)

    with pytest.raises(ConfigError) as raised:
        load_settings(WithSigningKey, {"RADGUARD_SIGNING_KEY": "hunter2"})
    assert raised.value.problems == ("RADGUARD_SIGNING_KEY: must be text at least 16 characters long",)
    assert "hunter2" not in str(raised.value)


def test_env_var_names() -> None:
    assert env_var_name(ServiceSettings, "grpc_port") == "RADGUARD_GRPC_PORT"
    assert env_var_name(GatewayLikeSettings, "triton_url") == "RADGUARD_TRITON_URL"


@given(st.text(min_size=1, max_size=12).filter(lambda text: not text.strip().isdigit()))
def test_any_non_numeric_port_is_reported_with_its_variable(value: str) -> None:
    try:
        load_settings(ServiceSettings, {"RADGUARD_GRPC_PORT": value})
    except ConfigError as error:
        (line,) = error.problems
        assert line.startswith("RADGUARD_GRPC_PORT: must be an integer between 0 and 65535, got ")
    else:
        # pydantic accepts a few spellings of whole numbers (e.g. '1_0', ' 7 ', '٣'); they must be in range.
        assert 0 <= load_settings(ServiceSettings, {"RADGUARD_GRPC_PORT": value}).grpc_port <= 65535
