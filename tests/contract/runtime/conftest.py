"""A real grpc.aio RadguardServer on 127.0.0.1 port 0 with the echo service, spans kept in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.runtime.config import ServiceSettings, load_settings
from services.runtime.metrics import Metrics
from services.runtime.server import RadguardServer
from services.runtime.telemetry import build_tracer_provider
from tests.contract.runtime import echo_service
from tests.contract.runtime.certs import Pki, make_pki

BASE_ENV = {
    "RADGUARD_SERVICE_NAME": "runtime-contract",
    "RADGUARD_GRPC_HOST": "127.0.0.1",
    "RADGUARD_GRPC_PORT": "0",
    # The metrics endpoint takes half a second to shut down; only the tests about it turn it on.
    "RADGUARD_METRICS_ENABLED": "false",
    "RADGUARD_METRICS_HOST": "127.0.0.1",
    "RADGUARD_METRICS_PORT": "0",
    "RADGUARD_DRAIN_GRACE_S": "1",
    "RADGUARD_READINESS_INTERVAL_S": "60",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with server and client certificates, made once per test module."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def settings(**overrides: str) -> ServiceSettings:
    """Test settings; keyword names are variable names without the RADGUARD_ prefix, lowercase."""
    env = dict(BASE_ENV)
    env.update({f"RADGUARD_{name.upper()}": value for name, value in overrides.items()})
    return load_settings(ServiceSettings, env)


@dataclass
class Running:
    """A started server, a channel to it, and where its telemetry went."""

    server: RadguardServer
    channel: grpc.aio.Channel
    spans: InMemorySpanExporter
    metrics: Metrics

    # Raw bytes in and out: no (de)serializers.
    def unary(self, name: str) -> grpc.aio.UnaryUnaryMultiCallable:  # type: ignore[type-arg]
        return self.channel.unary_unary(echo_service.method(name), None, None)

    def unary_stream(self, name: str) -> grpc.aio.UnaryStreamMultiCallable:  # type: ignore[type-arg]
        return self.channel.unary_stream(echo_service.method(name), None, None)

    def stream_unary(self, name: str) -> grpc.aio.StreamUnaryMultiCallable:  # type: ignore[type-arg]
        return self.channel.stream_unary(echo_service.method(name), None, None)

    def stream_stream(self, name: str) -> grpc.aio.StreamStreamMultiCallable:  # type: ignore[type-arg]
        return self.channel.stream_stream(echo_service.method(name), None, None)


async def start_server(
    config: ServiceSettings,
    *,
    customise: Callable[[RadguardServer], None] | None = None,
) -> tuple[RadguardServer, InMemorySpanExporter, Metrics]:
    telemetry = build_tracer_provider(config.service_name, in_memory=True)
    assert telemetry.span_exporter is not None
    metrics = Metrics(process_metrics=False)
    server = RadguardServer(config, metrics=metrics, tracer_provider=telemetry.tracer_provider)
    server.add_generic_handler(echo_service.handler())
    if customise is not None:
        customise(server)
    await server.start()
    return server, telemetry.span_exporter, metrics


@asynccontextmanager
async def serving(config: ServiceSettings) -> AsyncIterator[Running]:
    """Start a server with ``config`` and open a plaintext channel to it."""
    server, spans, metrics = await start_server(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Running(server, channel, spans, metrics)
    finally:
        await channel.close(None)
        await server.stop(0)


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    """A plaintext server (metrics endpoint off) and a channel to it."""
    async with serving(settings()) as started:
        yield started


def metadata_dict(metadata: Any) -> dict[str, str]:
    """Trailing or initial metadata (pairs when iterated) as a plain dict of text values."""
    return {key: value for key, value in (metadata or ()) if isinstance(value, str)}
