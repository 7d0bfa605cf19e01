"""Hostile messages over every RPC of every radguard service, on the real stack.

For each method of the gateway (radiology API and Open Inference Protocol), feedback, governance, the
monitor runner's query API (radguard.monitoring.v1) and the health service, the suite sends undecodable
bytes, an empty message, seeded random hostile messages and an oversized one, through generic calls with
raw bytes (so nothing on the client side validates). Every answer must come within the time limit with a
status that is not INTERNAL or UNKNOWN; stream items' errors likewise; and afterwards every service must
still report SERVING.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2
from tritonclient.grpc import service_pb2

from radguard.feedback.v1 import feedback_pb2
from radguard.governance.v1 import governance_pb2
from radguard.inference.v1 import inference_pb2
from radguard.monitoring.v1 import monitoring_pb2
from services.feedback.app import Feedback
from services.gateway.app import Gateway
from tests.fuzz.conftest import MonitoringHarness
from tests.fuzz.messages import UNDECODABLE, MessageFuzzer, oversized
from tests.integration.governance_api.conftest import GovHarness

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.integration, pytest.mark.timeout(300)]

#: No answer may take longer (the acceptance bound).
ANSWER_LIMIT_S = 5.0
#: Random messages per method.
RANDOM_CASES = 2
BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})

GATEWAY = inference_pb2.DESCRIPTOR.services_by_name["InferenceGateway"]
OIP = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
FEEDBACK = feedback_pb2.DESCRIPTOR.services_by_name["Feedback"]
GOVERNANCE = governance_pb2.DESCRIPTOR.services_by_name["Governance"]
MONITORING = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringQuery"]
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]


@dataclass(frozen=True)
class Target:
    """Where one service listens and what metadata its calls carry."""

    address: str
    metadata: tuple[tuple[str, str], ...] = ()


def _methods(*services: tuple[str, ServiceDescriptor]) -> list[tuple[str, MethodDescriptor]]:
    return [(where, method) for where, service in services for method in service.methods]


METHODS = _methods(
    ("gateway", GATEWAY),
    ("gateway", OIP),
    ("feedback", FEEDBACK),
    ("governance", GOVERNANCE),
    ("monitoring", MONITORING),
    ("gateway", HEALTH),
    ("feedback", HEALTH),
    ("governance", HEALTH),
    ("monitoring", HEALTH),
)
KINDS = ("undecodable", "empty", "random", "oversized")


def _cases(kind: str, method: MethodDescriptor, seed: int) -> list[bytes]:
    if kind == "undecodable":
        return list(UNDECODABLE)
    if kind == "empty":
        return [b""]
    if kind == "oversized":
        return [oversized(method.input_type)]
    fuzzer = MessageFuzzer(seed)
    return [fuzzer.message(method.input_type).SerializeToString() for _ in range(RANDOM_CASES)]


def _params() -> list[object]:
    params: list[object] = []
    for where, method in METHODS:
        for kind in KINDS:
            name = f"{where}-{method.containing_service.name}.{method.name}-{kind}"
            params.append(pytest.param(where, method, kind, id=name))
    return params


@pytest.fixture(scope="module")
def targets(
    fuzz_gateway: Gateway, fuzz_feedback: Feedback, fuzz_governance: GovHarness, fuzz_monitoring: MonitoringHarness
) -> dict[str, Target]:
    return {
        "monitoring": Target(f"127.0.0.1:{fuzz_monitoring.server.port}"),
        "gateway": Target(f"127.0.0.1:{fuzz_gateway.server.port}"),
        "feedback": Target(f"127.0.0.1:{fuzz_feedback.server.port}"),
        "governance": Target(fuzz_governance.target, fuzz_governance.md("olga")),
    }


async def _requests(bodies: Sequence[bytes]) -> AsyncIterator[bytes]:
    for body in bodies:
        yield body


def _item_codes(method: MethodDescriptor, answers: Sequence[bytes]) -> list[int]:
    """Status codes carried inside stream items (an answer per item with its own error)."""
    codes: list[int] = []
    for answer in answers:
        if method.full_name == "radguard.inference.v1.InferenceGateway.PredictStream":
            item = inference_pb2.PredictResponse.FromString(answer)
            if item.HasField("error"):
                codes.append(item.error.code)
        elif method.full_name == "inference.GRPCInferenceService.ModelStreamInfer":
            streamed = service_pb2.ModelStreamInferResponse.FromString(answer)
            if streamed.error_message:
                codes.append(-1 if "internal" in streamed.error_message.lower() else 0)
    return codes


async def _call(channel: grpc.aio.Channel, target: Target, method: MethodDescriptor, body: bytes) -> str | None:
    """One call; returns what is wrong with its answer, or None."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    started = time.monotonic()
    code = grpc.StatusCode.OK
    details = ""
    answers: list[bytes] = []
    try:
        if method.client_streaming:
            call = channel.stream_stream(path)(
                _requests([body, body]), timeout=ANSWER_LIMIT_S, metadata=target.metadata
            )
            answers = [answer async for answer in call]
        elif method.server_streaming:
            stream = channel.unary_stream(path)(body, timeout=ANSWER_LIMIT_S, metadata=target.metadata)
            first = await stream.read()
            if first is not grpc.aio.EOF:
                answers.append(first)
            stream.cancel()
        else:
            answers.append(await channel.unary_unary(path)(body, timeout=ANSWER_LIMIT_S, metadata=target.metadata))
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    elapsed = time.monotonic() - started
    if code in BAD_CODES:
        return f"{code.name}: {details[:200]}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and not (method.server_streaming and not method.client_streaming):
        return f"no answer within {ANSWER_LIMIT_S} s"
    if elapsed > ANSWER_LIMIT_S + 1.0:
        return f"answered after {elapsed:.1f} s"
    bad = (-1, grpc.StatusCode.INTERNAL.value[0], grpc.StatusCode.UNKNOWN.value[0])
    bad_items = [c for c in _item_codes(method, answers) if c in bad]
    if bad_items:
        return f"stream items with codes {bad_items}"
    return None


@pytest.mark.parametrize(("where", "method", "kind"), _params())
async def test_hostile_messages_get_a_proper_answer_in_time(
    targets: dict[str, Target], where: str, method: MethodDescriptor, kind: str
) -> None:
    target = targets[where]
    seed = sum(map(ord, method.full_name + kind))
    async with grpc.aio.insecure_channel(
        target.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        problems = [
            problem for body in _cases(kind, method, seed) if (problem := await _call(channel, target, method, body))
        ]
    assert problems == []


async def test_every_service_is_still_serving(targets: dict[str, Target]) -> None:
    for where, target in targets.items():
        async with grpc.aio.insecure_channel(target.address) as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            answer = await asyncio.wait_for(check(health_pb2.HealthCheckRequest(), timeout=ANSWER_LIMIT_S), 10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, where
