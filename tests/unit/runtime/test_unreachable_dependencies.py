"""Unreachable Kafka and PostgreSQL surface as Unavailable naming the dependency (no servers needed)."""

from __future__ import annotations

import socket

import pytest

from services.runtime.errors import Unavailable
from services.runtime.kafka import AsyncKafkaConsumer, AsyncKafkaProducer, list_topics
from services.runtime.migrate import run_migrations
from services.runtime.postgres import create_pool


def _closed_port() -> int:
    # Bind and release: nothing listens there afterwards (the OS does not hand it out again at once).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.asyncio
async def test_postgres_pool_on_a_closed_port() -> None:
    port = _closed_port()
    with pytest.raises(Unavailable) as raised:
        await create_pool(f"postgresql://radguard:secret-pw@127.0.0.1:{port}/radguard", connect_timeout=2)
    assert raised.value.dependency == "postgres"
    assert raised.value.message.startswith("postgres is unavailable: ")
    assert "secret-pw" not in raised.value.message


@pytest.mark.asyncio
async def test_migrations_on_a_closed_port() -> None:
    with pytest.raises(Unavailable) as raised:
        await run_migrations(f"postgresql://radguard@127.0.0.1:{_closed_port()}/radguard", [])
    assert raised.value.dependency == "postgres"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_kafka_clients_on_a_closed_port() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    producer = AsyncKafkaProducer(bootstrap, bootstrap_timeout_ms=300)
    with pytest.raises(Unavailable) as raised:
        await producer.start()
    assert raised.value.dependency == "kafka"
    await producer.close()

    consumer = AsyncKafkaConsumer(["t"], bootstrap_servers=bootstrap, group_id="g", bootstrap_timeout_ms=300)
    with pytest.raises(Unavailable):
        await consumer.start()
    await consumer.close()

    with pytest.raises(Unavailable):
        list_topics(bootstrap, bootstrap_timeout_ms=300)


@pytest.mark.asyncio
async def test_kafka_clients_must_be_started_first() -> None:
    producer = AsyncKafkaProducer("127.0.0.1:1")
    with pytest.raises(RuntimeError, match="not started"):
        await producer.send("t", b"v")
    consumer = AsyncKafkaConsumer(["t"], bootstrap_servers="127.0.0.1:1", group_id=None)
    with pytest.raises(RuntimeError, match="not started"):
        await consumer.getmany()
    with pytest.raises(ValueError, match="at least one topic"):
        AsyncKafkaConsumer([], bootstrap_servers="127.0.0.1:1", group_id=None)
