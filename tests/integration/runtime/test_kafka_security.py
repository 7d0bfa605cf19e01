"""radguard's Kafka clients through a broker that demands SASL or TLS, configured only by environment variables.

The module starts a second, throw-away KRaft broker from the jars the stack uses, with four listeners:
plaintext (only for the broker itself), SASL_PLAINTEXT with the PLAIN mechanism, SSL that requires a client
certificate, and SASL_SSL with SCRAM-SHA-512 (what the chart's ``external-tls`` values describe). The CA,
the broker's and the client's certificates are made here with ``cryptography`` and given to the broker as
PEM files. About 30 s in all, most of it the broker's start.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.runtime.config import ServiceSettings, load_settings
from services.runtime.errors import Unavailable
from services.runtime.kafka import (
    AsyncKafkaConsumer,
    AsyncKafkaProducer,
    ConsumedRecord,
    KafkaAuthenticationError,
    ensure_topics,
    list_topics,
)
from stack.components.base import Layout
from stack.components.kafka import Kafka, new_cluster_id
from stack.processes import port_in_use, port_open
from stack.settings import StackSettings, load_stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio, pytest.mark.timeout(180)]

HOST = "127.0.0.1"
USER, PASSWORD = "radguard-svc", "correct-horse-battery"
BROKER_START_S = 60.0


@dataclass(frozen=True)
class Spec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SecureBroker:
    plaintext: str
    sasl: str
    ssl: str
    sasl_ssl: str
    ca: Path
    client_cert: Path
    client_key: Path


def _free_ports(n: int) -> list[int]:
    taken = {f.default for name, f in StackSettings.model_fields.items() if name.endswith("_port")}
    ports: list[int] = []
    for port in range(27000 + (uuid.uuid4().int % 2000), 32000):
        if port not in taken and not port_in_use(HOST, port):
            ports.append(port)
            if len(ports) == n:
                return ports
    raise AssertionError("no free ports")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_pki(folder: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("radguard test CA", ca_key, _name("radguard test CA"), ca_key, ca=True)
    paths = {name: folder / f"{name}.pem" for name in ("ca", "broker", "client", "client-key")}
    paths["ca"].write_bytes(_pem_cert(ca_cert))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = _issue("broker", broker_key, ca_cert.subject, ca_key, ca=False)
    # A PEM keystore: the private key followed by the certificate chain.
    paths["broker"].write_bytes(_pem_key(broker_key) + _pem_cert(broker_cert) + _pem_cert(ca_cert))
    client_key = ec.generate_private_key(ec.SECP256R1())
    paths["client"].write_bytes(_pem_cert(_issue("radguard-client", client_key, ca_cert.subject, ca_key, ca=False)))
    paths["client-key"].write_bytes(_pem_key(client_key))
    return paths


def _jars(settings: StackSettings, home: Path) -> Path:
    # The same cache the stack fills (resolved with Maven once per pom hash).
    return Kafka(settings, Layout(home)).resolve_libs()


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    home = tmp_path_factory.mktemp("secure-kafka")
    stack_settings = load_stack_settings()
    libs = _jars(stack_settings, home)
    pki = _make_pki(home)
    plain, sasl, ssl, sasl_ssl, controller = _free_ports(5)
    jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller}",
        "listeners": f"INTERNAL://{HOST}:{plain},SASL_PLAINTEXT://{HOST}:{sasl},SSL://{HOST}:{ssl},"
        f"SASL_SSL://{HOST}:{sasl_ssl},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"INTERNAL://{HOST}:{plain},SASL_PLAINTEXT://{HOST}:{sasl},SSL://{HOST}:{ssl},"
        f"SASL_SSL://{HOST}:{sasl_ssl}",
        "listener.security.protocol.map": "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki["broker"]),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki["ca"]),
        "listener.name.ssl.ssl.client.auth": "required",
        "log.dirs": str(home / "data"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    config = home / "server.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    java = ["java", "-Xms256m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", f"{libs}/*"]
    formatted = subprocess.run(
        [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(config),
            # The SCRAM credential lives in the cluster metadata, written when the storage is formatted.
            "--add-scram",
            f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log_path = home / "kafka.log"
    with log_path.open("wb") as log:
        broker = subprocess.Popen([*java, "kafka.Kafka", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + BROKER_START_S
        while True:
            assert broker.poll() is None, f"the broker exited: {log_path.read_text()[-3000:]}"
            if all(port_open(HOST, port) for port in (plain, sasl, ssl, sasl_ssl)):
                try:
                    list_topics(f"{HOST}:{plain}", bootstrap_timeout_ms=2000)
                    break
                except Unavailable:
                    pass
            assert time.monotonic() < deadline, f"the broker did not start: {log_path.read_text()[-3000:]}"
            time.sleep(0.3)
        yield SecureBroker(
            plaintext=f"{HOST}:{plain}",
            sasl=f"{HOST}:{sasl}",
            ssl=f"{HOST}:{ssl}",
            sasl_ssl=f"{HOST}:{sasl_ssl}",
            ca=pki["ca"],
            client_cert=pki["client"],
            client_key=pki["client-key"],
        )
    finally:
        broker.terminate()
        try:
            broker.wait(15)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait(5)


def _settings_from_environment(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], *, bootstrap_timeout_ms: int = 5000
) -> ServiceSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RADGUARD_KAFKA_BOOTSTRAP_TIMEOUT_MS", str(bootstrap_timeout_ms))
    return load_settings(ServiceSettings)


async def _round_trip(settings: ServiceSettings) -> list[ConsumedRecord]:
    topic = f"radguard.test.secure.{uuid.uuid4().hex[:10]}"
    created = await asyncio.to_thread(
        ensure_topics, settings.kafka_bootstrap_servers, [Spec(topic, 2)], security=settings
    )
    assert created == [topic]
    async with AsyncKafkaProducer.from_settings(settings) as producer:
        for n in range(3):
            await producer.send(topic, f"study-{n}".encode(), key=b"k")
    records: list[ConsumedRecord] = []
    async with AsyncKafkaConsumer.from_settings(settings, [topic], None) as consumer:
        deadline = time.monotonic() + 15
        while len(records) < 3 and time.monotonic() < deadline:
            records += await consumer.getmany(timeout_s=0.5)
    return records


async def test_sasl_plain_producer_consumer_and_topic_creation(
    secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from_environment(
        monkeypatch,
        {
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": secure_broker.sasl,
            "RADGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "RADGUARD_KAFKA_SASL_MECHANISM": "PLAIN",
            "RADGUARD_KAFKA_SASL_USERNAME": USER,
            "RADGUARD_KAFKA_SASL_PASSWORD": PASSWORD,
        },
    )
    records = await _round_trip(settings)
    assert [r.value for r in records] == [b"study-0", b"study-1", b"study-2"]


async def test_ssl_with_a_client_certificate(secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from_environment(
        monkeypatch,
        {
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": secure_broker.ssl,
            "RADGUARD_KAFKA_SECURITY_PROTOCOL": "SSL",
            "RADGUARD_KAFKA_SSL_CAFILE": str(secure_broker.ca),
            "RADGUARD_KAFKA_SSL_CERTFILE": str(secure_broker.client_cert),
            "RADGUARD_KAFKA_SSL_KEYFILE": str(secure_broker.client_key),
        },
    )
    records = await _round_trip(settings)
    assert [r.value for r in records] == [b"study-0", b"study-1", b"study-2"]


async def test_sasl_ssl_with_scram_sha_512(secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from_environment(
        monkeypatch,
        {
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": secure_broker.sasl_ssl,
            "RADGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "RADGUARD_KAFKA_SSL_CAFILE": str(secure_broker.ca),
            "RADGUARD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "RADGUARD_KAFKA_SASL_USERNAME": USER,
            "RADGUARD_KAFKA_SASL_PASSWORD": PASSWORD,
        },
    )
    records = await _round_trip(settings)
    assert [r.value for r in records] == [b"study-0", b"study-1", b"study-2"]


async def test_a_wrong_password_fails_fast_with_a_clear_error(
    secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from_environment(
        monkeypatch,
        {
            "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": secure_broker.sasl,
            "RADGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "RADGUARD_KAFKA_SASL_USERNAME": USER,
            "RADGUARD_KAFKA_SASL_PASSWORD": "wrong-password",
        },
        bootstrap_timeout_ms=3000,
    )
    refused = (Unavailable, KafkaAuthenticationError)
    started = time.monotonic()
    producer = AsyncKafkaProducer.from_settings(settings)
    with pytest.raises(refused) as raised:
        await producer.start()
    await producer.close()
    assert "credentials" in str(raised.value)
    if isinstance(raised.value, Unavailable):
        assert f"SASL_PLAINTEXT (PLAIN as '{USER}')" in str(raised.value)
    with pytest.raises(refused):
        await asyncio.to_thread(
            ensure_topics,
            settings.kafka_bootstrap_servers,
            [Spec("radguard.test.never", 1)],
            bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
            security=settings,
        )
    consumer = AsyncKafkaConsumer.from_settings(settings, ["radguard.test.never"], "g")
    with pytest.raises(refused) as raised:
        await consumer.start()
    await consumer.close()
    assert "wrong-password" not in str(raised.value)
    # Three clients, each bounded by the bootstrap timeout (3 s): a clear error, not a hang.
    assert time.monotonic() - started < 3 * 3 + 4


async def test_plaintext_client_to_a_tls_listener_gives_up_within_the_bootstrap_timeout(
    secure_broker: SecureBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from_environment(
        monkeypatch, {"RADGUARD_KAFKA_BOOTSTRAP_SERVERS": secure_broker.ssl}, bootstrap_timeout_ms=3000
    )
    started = time.monotonic()
    producer = AsyncKafkaProducer.from_settings(settings)
    with pytest.raises(Unavailable):
        await producer.start()
    await producer.close()
    assert time.monotonic() - started < 3 + 3
