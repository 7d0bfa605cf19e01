"""RadguardServer on a real port: health, reflection, request ids, errors, streaming, spans, metrics."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from services.runtime.interceptors import REQUEST_ID_ATTRIBUTE
from services.runtime.server import RadguardServer, ServerStartError
from services.runtime.telemetry import configure_logging
from tests.contract.runtime import echo_service
from tests.contract.runtime.conftest import Running, metadata_dict, serving, settings, start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _check(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# --- health and reflection -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_health_is_serving_overall_and_per_service(running: Running) -> None:
    assert await _check(running.channel) == SERVING
    assert await _check(running.channel, echo_service.SERVICE) == SERVING
    assert running.server.ready is True


@pytest.mark.asyncio
async def test_health_follows_readiness_checks() -> None:
    dependency_up = False

    async def dependency_ready() -> bool:
        return dependency_up

    async def broken_check() -> bool:
        raise ConnectionError("probe failed")

    server, _, _ = await start_server(
        settings(), customise=lambda s: s.add_readiness_check("dependency", dependency_ready)
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        assert await _check(channel) == NOT_SERVING
        assert await _check(channel, echo_service.SERVICE) == NOT_SERVING
        dependency_up = True
        assert await server.refresh_readiness() is True
        assert await _check(channel) == SERVING
        assert await _check(channel, echo_service.SERVICE) == SERVING
    finally:
        await channel.close(None)
        await server.stop(0)

    # A check that raises counts as not ready rather than crashing the server.
    server, _, _ = await start_server(settings(), customise=lambda s: s.add_readiness_check("broken", broken_check))
    try:
        assert server.ready is False
    finally:
        await server.stop(0)


@pytest.mark.asyncio
async def test_health_turns_not_serving_when_the_drain_starts() -> None:
    server, _, _ = await start_server(settings(drain_notice_s="0.5"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == SERVING

        stopping = asyncio.create_task(server.stop(grace_s=0.2))
        second = await asyncio.wait_for(watch.read(), 5)
        assert second.status == NOT_SERVING
        # During the notice period calls are still accepted, and Check agrees with Watch.
        assert await _check(channel) == NOT_SERVING
        assert await _check(channel, echo_service.SERVICE) == NOT_SERVING
        await asyncio.wait_for(stopping, 10)
        assert server.ready is False
    finally:
        await channel.close(None)
        await server.stop(0)


@pytest.mark.asyncio
async def test_reflection_lists_registered_services(running: Running) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    responses = stub.ServerReflectionInfo(_requests(reflection_pb2.ServerReflectionRequest(list_services="")))
    names = set()
    async for response in responses:
        names |= {service.name for service in response.list_services_response.service}
    assert names == {
        echo_service.SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def _requests(
    *requests: reflection_pb2.ServerReflectionRequest,
) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
    for request in requests:
        yield request


# --- request id ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_request_id_from_the_caller_is_echoed(running: Running) -> None:
    call = running.unary("Unary")(b"hello", metadata=(("x-request-id", "req-42.a"),))
    assert await call == b"hello"
    assert metadata_dict(await call.trailing_metadata())["x-request-id"] == "req-42.a"


@pytest.mark.asyncio
async def test_request_id_is_generated_when_missing_or_unsafe(running: Running) -> None:
    generated = running.unary("Unary")(b"hello")
    await generated
    generated_id = metadata_dict(await generated.trailing_metadata())["x-request-id"]
    assert len(generated_id) == 32
    assert int(generated_id, 16) >= 0

    for unsafe_id in ("id with spaces", "x" * 129, "-leading-dash"):
        unsafe = running.unary("Unary")(b"hello", metadata=(("x-request-id", unsafe_id),))
        await unsafe
        replaced = metadata_dict(await unsafe.trailing_metadata())["x-request-id"]
        assert replaced != unsafe_id
        assert len(replaced) == 32


@pytest.mark.asyncio
async def test_request_id_survives_handler_trailers(running: Running) -> None:
    call = running.unary("SetTrailers")(b"x", metadata=(("x-request-id", "keep-me"),))
    await call
    trailers = metadata_dict(await call.trailing_metadata())
    assert trailers["x-handler"] == "yes"
    assert trailers["x-request-id"] == "keep-me"


# --- error mapping -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_invalid_argument_names_the_field(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.unary("Unary")(b"invalid", metadata=(("x-request-id", "r-invalid"),))
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{echo_service.INVALID_FIELD}: must not be empty"
    assert metadata_dict(error.trailing_metadata())["x-request-id"] == "r-invalid"


@pytest.mark.asyncio
async def test_not_found_maps_to_not_found(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.unary("Unary")(b"missing")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "model 'chest-xray' version 7 not found"


@pytest.mark.asyncio
async def test_unexpected_exception_is_internal_without_its_text(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.unary("Unary")(b"boom", metadata=(("x-request-id", "r-boom"),))
    error = raised.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error (request id r-boom)"
    assert echo_service.SECRET not in (error.details() or "")
    assert "RuntimeError" not in (error.details() or "")


@pytest.mark.asyncio
async def test_unknown_method_is_unimplemented(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.channel.unary_unary(echo_service.method("Nope"), None, None)(b"x")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- streaming handlers --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["ServerStream", "ServerStreamWrites"])
async def test_server_streaming_echo_and_errors(running: Running, name: str) -> None:
    ok = running.unary_stream(name)(b"abc", metadata=(("x-request-id", f"r-{name}"),))
    received = [message async for message in ok]
    assert received[:2] == [b"first", b"abc"]
    assert metadata_dict(await ok.trailing_metadata())["x-request-id"] == f"r-{name}"

    for request, code, details in (
        (b"invalid", grpc.StatusCode.INVALID_ARGUMENT, f"{echo_service.INVALID_FIELD}: must not be empty"),
        (b"boom", grpc.StatusCode.INTERNAL, "internal error (request id r-s)"),
    ):
        failing = running.unary_stream(name)(request, metadata=(("x-request-id", "r-s"),))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for message in failing:
                received.append(message)
        assert received == [b"first"]
        assert raised.value.code() == code
        assert raised.value.details() == details


@pytest.mark.asyncio
async def test_client_streaming_echo_and_errors(running: Running) -> None:
    assert await running.stream_unary("ClientStream")(_chunks(b"ab", b"cd")) == b"abcd"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stream_unary("ClientStream")(_chunks(b"ab", b"invalid"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == f"{echo_service.INVALID_FIELD}: must not be empty"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stream_unary("ClientStream")(_chunks(b"boom"), metadata=(("x-request-id", "r-cs"),))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error (request id r-cs)"


@pytest.mark.asyncio
async def test_bidirectional_streaming_echo_and_errors(running: Running) -> None:
    call = running.stream_stream("Bidi")(_chunks(b"ab", b"cd"), metadata=(("x-request-id", "r-bidi"),))
    assert [message async for message in call] == [b"AB", b"CD"]
    assert metadata_dict(await call.trailing_metadata())["x-request-id"] == "r-bidi"

    failing = running.stream_stream("Bidi")(_chunks(b"ok", b"boom"), metadata=(("x-request-id", "r-b2"),))
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for message in failing:
            received.append(message)
    assert received == [b"OK"]
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error (request id r-b2)"
    assert echo_service.SECRET not in (raised.value.details() or "")


# --- spans ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_server_span_per_call_with_the_request_id(running: Running) -> None:
    running.spans.clear()
    await running.unary("Unary")(b"hello", metadata=(("x-request-id", "span-1"),))
    with pytest.raises(grpc.aio.AioRpcError):
        await running.unary("Unary")(b"boom", metadata=(("x-request-id", "span-2"),))
    call = running.stream_stream("Bidi")(_chunks(b"a"), metadata=(("x-request-id", "span-3"),))
    assert [message async for message in call] == [b"A"]

    finished = running.spans.get_finished_spans()
    spans = [span for span in finished if span.name.startswith(echo_service.SERVICE)]
    assert len(spans) == 3
    by_id = {span.attributes[REQUEST_ID_ATTRIBUTE]: span for span in spans if span.attributes}
    assert set(by_id) == {"span-1", "span-2", "span-3"}

    ok = by_id["span-1"]
    assert ok.name == f"{echo_service.SERVICE}/Unary"
    assert ok.kind == SpanKind.SERVER
    assert ok.attributes is not None
    assert ok.attributes["rpc.service"] == echo_service.SERVICE
    assert ok.attributes["rpc.method"] == "Unary"
    assert ok.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert ok.status.status_code == StatusCode.UNSET

    failed = by_id["span-2"]
    assert failed.attributes is not None
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert failed.status.status_code == StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert echo_service.SECRET not in str(failed.events[0].attributes)

    assert by_id["span-3"].name == f"{echo_service.SERVICE}/Bidi"


@pytest.mark.asyncio
async def test_server_span_continues_the_callers_trace(running: Running) -> None:
    running.spans.clear()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_span_id = "00f067aa0ba902b7"
    traceparent = f"00-{trace_id}-{parent_span_id}-01"
    await running.unary("Unary")(b"x", metadata=(("traceparent", traceparent),))
    (span,) = [s for s in running.spans.get_finished_spans() if s.name == f"{echo_service.SERVICE}/Unary"]
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_span_id


# --- metrics -------------------------------------------------------------------------------------


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.asyncio
async def test_metrics_endpoint_serves_rpc_counters() -> None:
    async with serving(settings(metrics_enabled="true")) as running:
        await _exercise_and_scrape(running)


async def _exercise_and_scrape(running: Running) -> None:
    await running.unary("Unary")(b"a")
    await running.unary("Unary")(b"b")
    with pytest.raises(grpc.aio.AioRpcError):
        await running.unary("Unary")(b"invalid")

    port = running.server.metrics_port
    assert port is not None and port > 0
    samples = await asyncio.to_thread(_scrape, port)

    def handled(code: str) -> float:
        labels = (("grpc_code", code), ("grpc_method", "Unary"), ("grpc_service", echo_service.SERVICE))
        return samples[("radguard_grpc_server_handled_total", labels)]

    assert handled("OK") == 2.0
    assert handled("INVALID_ARGUMENT") == 1.0
    method_labels = (("grpc_method", "Unary"), ("grpc_service", echo_service.SERVICE))
    assert samples[("radguard_grpc_server_started_total", method_labels)] == 3.0
    assert samples[("radguard_grpc_server_handling_seconds_count", method_labels)] == 3.0
    assert samples[("radguard_grpc_server_in_flight", method_labels)] == 0.0


@pytest.mark.asyncio
async def test_stop_runs_shutdown_hooks_in_order_and_closes_metrics() -> None:
    order: list[str] = []

    def hook(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            order.append(name)

        return run

    async def failing() -> None:
        raise RuntimeError("hook failure must not stop the others")

    def customise(server: RadguardServer) -> None:
        server.add_shutdown_hook(hook("producer"), "producer")
        server.add_shutdown_hook(failing, "failing")
        server.add_shutdown_hook(hook("pool"), "pool")

    server, _, _ = await start_server(settings(metrics_enabled="true"), customise=customise)
    metrics_port = server.metrics_port
    assert metrics_port is not None
    await server.stop(0)
    await server.stop(0)  # a second stop waits for the first and does nothing more
    assert order == ["producer", "pool"]
    with pytest.raises(OSError):
        await asyncio.to_thread(_scrape, metrics_port)


# --- logs, limits, start-up failures ---------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging(level="info", fmt="json", service_name="runtime-contract", stream=stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.mark.asyncio
async def test_each_call_is_logged_once_with_ids_and_without_payload(running: Running, log_lines: io.StringIO) -> None:
    running.spans.clear()
    await running.unary("Unary")(b"payload-must-not-be-logged", metadata=(("x-request-id", "log-1"),))
    with pytest.raises(grpc.aio.AioRpcError):
        await running.unary("Unary")(b"boom", metadata=(("x-request-id", "log-2"),))

    events = [json.loads(line) for line in log_lines.getvalue().splitlines() if line]
    rpc = [event for event in events if event["event"] == "rpc"]
    assert [(event["request_id"], event["code"], event["level"]) for event in rpc] == [
        ("log-1", "OK", "info"),
        ("log-2", "INTERNAL", "error"),
    ]
    spans = {(span.attributes or {})[REQUEST_ID_ATTRIBUTE]: span for span in running.spans.get_finished_spans()}
    for event in rpc:
        assert event["method"] == echo_service.method("Unary")
        assert event["duration_ms"] >= 0
        span = spans[event["request_id"]]
        assert event["trace_id"] == format(span.context.trace_id, "032x")
        assert event["span_id"] == format(span.context.span_id, "016x")
    assert "payload-must-not-be-logged" not in log_lines.getvalue()
    (unexpected,) = [event for event in events if event["event"] == "rpc.unexpected_error"]
    assert unexpected["error_type"] == "RuntimeError"
    assert unexpected["request_id"] == "log-2"


@pytest.mark.asyncio
async def test_messages_above_the_limit_are_refused() -> None:
    async with serving(settings(grpc_max_receive_message_bytes="1024")) as small:
        assert await small.unary("Unary")(b"x" * 512) == b"x" * 512
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await small.unary("Unary")(b"x" * 4096)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.asyncio
async def test_a_taken_port_fails_start_clearly(running: Running) -> None:
    with pytest.raises(ServerStartError, match=f"127.0.0.1:{running.server.port}"):
        await start_server(settings(grpc_port=str(running.server.port)))


@pytest.mark.asyncio
async def test_cancelled_and_timed_out_calls_are_recorded_as_such(running: Running) -> None:
    cancelled = running.unary("Slow")(b"5")
    await asyncio.sleep(0.2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.unary("Slow")(b"5", timeout=0.3)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    def handled(code: str) -> float:
        text = running.metrics.render().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "radguard_grpc_server_handled_total"
                    and sample.labels["grpc_method"] == "Slow"
                    and sample.labels["grpc_code"] == code
                ):
                    return sample.value
        return 0.0

    # The server learns of both a moment after the client does.
    for _ in range(50):
        if handled("CANCELLED") and handled("DEADLINE_EXCEEDED"):
            break
        await asyncio.sleep(0.05)
    assert handled("CANCELLED") == 1.0
    assert handled("DEADLINE_EXCEEDED") == 1.0
