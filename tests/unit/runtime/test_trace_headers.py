"""Trace context carried in Kafka record headers."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.runtime.kafka import extract_context, inject_context


def test_inject_then_extract_continues_the_same_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("produce") as producer_span:
        headers = inject_context([("event-type", b"prediction")])
    producer = producer_span.get_span_context()

    assert headers[0] == ("event-type", b"prediction")
    names = [name for name, _ in headers]
    assert "traceparent" in names
    assert all(isinstance(value, bytes) for _, value in headers)

    context = extract_context(headers)
    remote = trace.get_current_span(context).get_span_context()
    assert remote.is_remote
    assert remote.trace_id == producer.trace_id
    assert remote.span_id == producer.span_id

    with tracer.start_as_current_span("consume", context=context) as consumer_span:
        assert consumer_span.get_span_context().trace_id == producer.trace_id
    assert consumer_span.parent is not None  # type: ignore[attr-defined]
    assert consumer_span.parent.span_id == producer.span_id  # type: ignore[attr-defined]


def test_traceparent_has_the_w3c_layout() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("produce") as span:
        headers = dict(inject_context())
    context = span.get_span_context()
    flags = int(context.trace_flags)
    assert flags & 0x01  # sampled
    assert headers["traceparent"].decode() == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"


def test_caller_headers_win_over_injected_ones() -> None:
    tracer = TracerProvider().get_tracer("test")
    chosen = b"00-11111111111111111111111111111111-2222222222222222-01"
    with tracer.start_as_current_span("produce"):
        headers = inject_context([("traceparent", chosen)])
    assert [value for name, value in headers if name == "traceparent"] == [chosen]


def test_no_span_no_context() -> None:
    assert inject_context() == []
    context = extract_context([("unrelated", b"x"), ("traceparent", b"\xff\xfe not utf-8")])
    assert not trace.get_current_span(context).get_span_context().is_valid
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid
