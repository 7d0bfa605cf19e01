"""An in-process gateway wired to the real stack (Triton, Kafka), with its own spool folder."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest_asyncio

from kernel.topics import PREDICTIONS_TOPIC
from radguard.events.v1 import events_pb2
from radguard.inference.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.adapters.routes import publish_route
from services.gateway.app import Gateway, build_gateway, start_gateway
from services.gateway.routing import Route
from services.gateway.settings import GatewaySettings
from services.runtime.config import load_settings
from services.runtime.kafka import AsyncKafkaConsumer, TopicPartition
from stack.components.services import client_tokens
from stack.manager import Stack
from tests.integration.conftest import StackEndpoints

PSEUDONYM_KEY = "integration-test-key-0123456789"


def gateway_settings(stack: StackEndpoints, spool_dir: Path, **extra: str) -> GatewaySettings:
    env = {
        "RADGUARD_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_PORT": "0",
        "RADGUARD_TRITON_GRPC_URL": stack.triton_grpc_url,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "RADGUARD_SPOOL_DIR": str(spool_dir),
        "RADGUARD_LOG_LEVEL": "warning",
        "RADGUARD_INSTANCE_ID": f"gw-test-{uuid.uuid4().hex[:6]}",
        # In-process gateways skip caller authentication; tests/integration/security checks it on the stack's.
        "RADGUARD_AUTH_MODE": "insecure-dev",
        **extra,
    }
    return load_settings(GatewaySettings, env)


async def set_route(
    gateway: Gateway,
    bootstrap: str,
    model: str,
    stable: str,
    canary: str = "",
    weight_bp: int = 0,
    shadows: tuple[str, ...] = (),
) -> Route:
    """Publish the next revision of a model's route and wait until the gateway applies it."""
    current = gateway.routes.get(model)
    route = Route(model, stable, canary, weight_bp, shadows, (current.revision if current else 0) + 1, "test")
    await publish_route(bootstrap, route, producer="tests")
    deadline = time.monotonic() + 10
    while (got := gateway.routes.get(model)) is None or got.revision < route.revision:
        assert time.monotonic() < deadline, "the gateway did not apply the route within 10 s"
        await asyncio.sleep(0.05)
    return route


def stack_credentials(real_stack: Stack, variable: str = "RADGUARD_OPERATOR_TOKEN") -> tuple[tuple[str, str], ...]:
    """Call metadata carrying one of the stack's generated client tokens (see ``radguard stack env``)."""
    return (("authorization", f"Bearer {client_tokens(real_stack.settings.state_dir)[variable]}"),)


async def stack_gateway_revision(real_stack: Stack, model: str, at_least: int, within_s: float) -> int | None:
    """Poll the stack's own gateway process until its route for ``model`` reaches ``at_least``.

    Returns the revision it reported, or None when it did not get there within ``within_s``.
    """
    channel = grpc.aio.insecure_channel(real_stack.settings.gateway_url)
    stub = inference_pb2_grpc.InferenceGatewayStub(channel)
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                table = await stub.GetRoute(
                    inference_pb2.GetRouteRequest(model_name=model), timeout=1.0, metadata=stack_credentials(real_stack)
                )
                if table.revision >= at_least:
                    return int(table.revision)
            await asyncio.sleep(0.05)
        return None
    finally:
        await channel.close(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(stack: StackEndpoints, tmp_path_factory: object) -> AsyncIterator[Gateway]:
    import tempfile

    spool = Path(tempfile.mkdtemp(prefix="gw-spool-"))
    gw = build_gateway(gateway_settings(stack, spool, RADGUARD_HTTP_PORT="0"))
    await start_gateway(gw)
    await asyncio.wait_for(gw.follower.caught_up.wait(), 30)
    await set_route(gw, stack.kafka_bootstrap, "placeholder", "1")
    yield gw
    await gw.server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def gateway_stub(gateway: Gateway) -> AsyncIterator[inference_pb2_grpc.InferenceGatewayStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.server.port}")
    yield inference_pb2_grpc.InferenceGatewayStub(channel)
    await channel.close(None)


async def end_offsets(bootstrap: str, topic: str = PREDICTIONS_TOPIC) -> dict[TopicPartition, int]:
    """Current end offset of every partition of ``topic``."""
    from kafka import KafkaConsumer

    def read() -> dict[TopicPartition, int]:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            return dict(consumer.end_offsets(parts))
        finally:
            consumer.close()

    return await asyncio.to_thread(read)


async def read_events(
    bootstrap: str, start: dict[TopicPartition, int], expect: int, timeout_s: float = 60.0
) -> list[events_pb2.PredictionEvent]:
    """PredictionEvents written after ``start``; waits until ``expect`` arrived, then reads 1 s more."""
    consumer = AsyncKafkaConsumer(
        [PREDICTIONS_TOPIC], bootstrap_servers=bootstrap, group_id=None, client_id="tests-reader"
    )
    await consumer.start()
    try:
        for tp, offset in start.items():
            await consumer.seek(tp, offset)
        events: list[events_pb2.PredictionEvent] = []
        deadline = time.monotonic() + timeout_s
        quiet_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_s=0.25)
            events += [events_pb2.PredictionEvent.FromString(r.value) for r in batch if r.value is not None]
            if len(events) >= expect:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
        return events
    finally:
        await consumer.close()
