"""Kafka TLS/SASL settings: what the variables become as kafka-python arguments, and what is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kafka
import pytest

from services.runtime import kafka as rg_kafka
from services.runtime.config import ConfigError, ServiceSettings, load_settings
from services.runtime.errors import Unavailable
from services.runtime.kafka_security import PLAINTEXT

SASL = {
    "RADGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "RADGUARD_KAFKA_SASL_USERNAME": "radguard",
    "RADGUARD_KAFKA_SASL_PASSWORD": "s3cret-pw",
}


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    return files


def test_defaults_are_plaintext_exactly_as_before() -> None:
    settings = load_settings(ServiceSettings, {})
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert PLAINTEXT.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    # kafka-python's own default, so a plaintext client is configured as it always was.
    assert kafka.KafkaProducer.DEFAULT_CONFIG["security_protocol"] == "PLAINTEXT"
    assert rg_kafka.client_config(None, bootstrap_servers="b:1") == {
        "bootstrap_servers": "b:1",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_plaintext_maps_to_sasl_kwargs() -> None:
    settings = load_settings(ServiceSettings, {**SASL, "RADGUARD_KAFKA_SASL_MECHANISM": "scram-sha-512"})
    assert settings.client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "radguard",
        "sasl_plain_password": "s3cret-pw",
    }
    assert settings.describe_kafka_security() == "SASL_PLAINTEXT (SCRAM-SHA-512 as 'radguard')"


def test_ssl_maps_to_ssl_kwargs(pem_files: dict[str, Path]) -> None:
    env = {
        "RADGUARD_KAFKA_SECURITY_PROTOCOL": "ssl",
        "RADGUARD_KAFKA_SSL_CAFILE": str(pem_files["ca"]),
        "RADGUARD_KAFKA_SSL_CERTFILE": str(pem_files["cert"]),
        "RADGUARD_KAFKA_SSL_KEYFILE": str(pem_files["key"]),
    }
    assert load_settings(ServiceSettings, env).client_kwargs() == {
        "security_protocol": "SSL",
        "ssl_cafile": str(pem_files["ca"]),
        "ssl_certfile": str(pem_files["cert"]),
        "ssl_keyfile": str(pem_files["key"]),
        "ssl_check_hostname": True,
    }


def test_sasl_ssl_maps_to_both_and_a_missing_ca_means_system_roots() -> None:
    env = {**SASL, "RADGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RADGUARD_KAFKA_SSL_CHECK_HOSTNAME": "false"}
    assert load_settings(ServiceSettings, env).client_kwargs() == {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": None,
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "ssl_check_hostname": False,
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "radguard",
        "sasl_plain_password": "s3cret-pw",
    }


def test_security_overrides_what_a_caller_passes() -> None:
    settings = load_settings(ServiceSettings, SASL)
    config = rg_kafka.client_config(settings, bootstrap_servers="b:1", security_protocol="PLAINTEXT")
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert config["bootstrap_servers"] == "b:1"


def _problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        load_settings(ServiceSettings, env)
    return raised.value.problems


def test_an_unknown_protocol_names_the_variable_and_the_choices() -> None:
    assert _problems({"RADGUARD_KAFKA_SECURITY_PROTOCOL": "TLS"}) == (
        "RADGUARD_KAFKA_SECURITY_PROTOCOL: must be one of 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL', got 'TLS'",
    )


def test_an_unknown_mechanism_names_the_variable() -> None:
    (problem,) = _problems({**SASL, "RADGUARD_KAFKA_SASL_MECHANISM": "GSSAPI"})
    assert problem.startswith("RADGUARD_KAFKA_SASL_MECHANISM: must be one of 'PLAIN', 'SCRAM-SHA-256'")


def test_ssl_files_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    problems = _problems({"RADGUARD_KAFKA_SECURITY_PROTOCOL": "SSL", "RADGUARD_KAFKA_SSL_CAFILE": str(missing)})
    assert problems == (f"RADGUARD_KAFKA_SSL_CAFILE: must be a readable file, got '{missing}' (no such file)",)


def test_sasl_needs_a_username_and_a_password() -> None:
    assert _problems({"RADGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}) == (
        "RADGUARD_KAFKA_SASL_USERNAME: is required when RADGUARD_KAFKA_SECURITY_PROTOCOL is SASL_SSL",
        "RADGUARD_KAFKA_SASL_PASSWORD: is required when RADGUARD_KAFKA_SECURITY_PROTOCOL is SASL_SSL",
    )


def test_a_client_certificate_needs_its_key(pem_files: dict[str, Path]) -> None:
    env = {"RADGUARD_KAFKA_SECURITY_PROTOCOL": "SSL", "RADGUARD_KAFKA_SSL_CERTFILE": str(pem_files["cert"])}
    assert _problems(env) == ("RADGUARD_KAFKA_SSL_KEYFILE: must be set when RADGUARD_KAFKA_SSL_CERTFILE is set",)


def test_tls_or_sasl_settings_without_the_protocol_are_refused(pem_files: dict[str, Path]) -> None:
    env = {"RADGUARD_KAFKA_SSL_CAFILE": str(pem_files["ca"]), "RADGUARD_KAFKA_SASL_USERNAME": "radguard"}
    assert _problems(env) == (
        "RADGUARD_KAFKA_SSL_CAFILE: is set but RADGUARD_KAFKA_SECURITY_PROTOCOL is PLAINTEXT (use SSL or SASL_SSL)",
        "RADGUARD_KAFKA_SASL_USERNAME: is set but RADGUARD_KAFKA_SECURITY_PROTOCOL is PLAINTEXT "
        "(use SASL_PLAINTEXT or SASL_SSL)",
    )


def test_the_password_never_shows() -> None:
    settings = load_settings(ServiceSettings, SASL)
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings.model_dump())
    assert "s3cret-pw" not in settings.describe_kafka_security()
    kwargs = settings.client_kwargs()
    # kafka-python's admin client logs its configuration dict at DEBUG.
    assert "s3cret-pw" not in "configuration: %s" % (kwargs,)  # noqa: UP031
    assert kwargs["sasl_plain_password"].encode() == b"s3cret-pw"


def test_every_client_the_wrappers_build_gets_the_security(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, dict[str, Any]]] = []

    def recorder(kind: str) -> Any:
        def build(**config: Any) -> Any:
            built.append((kind, config))
            raise kafka.errors.KafkaTimeoutError("no broker")

        return build

    monkeypatch.setattr(rg_kafka, "KafkaProducer", recorder("producer"))
    monkeypatch.setattr(rg_kafka, "KafkaConsumer", recorder("consumer"))
    monkeypatch.setattr(rg_kafka, "KafkaAdminClient", recorder("admin"))
    settings = load_settings(ServiceSettings, SASL)

    async def start_both() -> None:
        for client in (
            rg_kafka.AsyncKafkaProducer.from_settings(settings),
            rg_kafka.AsyncKafkaConsumer.from_settings(settings, ["t"], "g"),
        ):
            with pytest.raises(Unavailable):
                await client.start()
            await client.close()

    asyncio.run(start_both())
    with pytest.raises(Unavailable):
        rg_kafka.list_topics("b:1", security=settings)
    with pytest.raises(Unavailable):
        rg_kafka.describe_topic_config("b:1", "t", security=settings)
    assert [kind for kind, _ in built] == ["producer", "consumer", "admin", "admin"]
    for _, config in built:
        assert config["security_protocol"] == "SASL_PLAINTEXT"
        assert config["sasl_plain_password"] == "s3cret-pw"
