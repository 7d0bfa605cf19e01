"""Structured log lines carry trace, span and request ids."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.runtime.request_id import bind_request_id, reset_request_id
from services.runtime.telemetry import build_tracer_provider, configure_logging, get_logger


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_trace_span_and_request_ids(log_stream: io.StringIO) -> None:
    configure_logging(level="info", fmt="json", service_name="gateway", stream=log_stream)
    tracer = TracerProvider().get_tracer("test")
    token = bind_request_id("req-7")
    try:
        with tracer.start_as_current_span("call") as span:
            get_logger("test").info("prediction.served", model="chest-xray", latency_ms=3.5)
    finally:
        reset_request_id(token)

    (line,) = _lines(log_stream)
    event = json.loads(line)
    context = span.get_span_context()
    assert event["event"] == "prediction.served"
    assert event["level"] == "info"
    assert event["service"] == "gateway"
    assert event["model"] == "chest-xray"
    assert event["latency_ms"] == 3.5
    assert event["request_id"] == "req-7"
    assert event["trace_id"] == f"{context.trace_id:032x}"
    assert event["span_id"] == f"{context.span_id:016x}"
    assert event["timestamp"].endswith("Z")


def test_logfmt_and_standard_library_loggers_share_the_format(log_stream: io.StringIO) -> None:
    configure_logging(level="warning", fmt="logfmt", service_name="monitor", stream=log_stream)
    logging.getLogger("kafka.consumer").warning("rebalance took %d ms", 1200)
    get_logger("test").info("not written: below the level")
    get_logger("test").warning("lag.high", partitions=3)

    lines = _lines(log_stream)
    assert len(lines) == 2
    assert lines[0].startswith("timestamp=")
    assert 'event="rebalance took 1200 ms"' in lines[0]
    assert "level=warning" in lines[0]
    assert "service=monitor" in lines[0]
    assert "event=lag.high" in lines[1]
    assert "partitions=3" in lines[1]
    assert "trace_id" not in lines[1]  # no span, no trace id


def test_reconfiguring_replaces_the_handler(log_stream: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging(stream=other)
    configure_logging(stream=log_stream)
    get_logger("test").info("once")
    assert other.getvalue() == ""
    assert len(_lines(log_stream)) == 1


def test_in_memory_tracer_provider_keeps_finished_spans() -> None:
    telemetry = build_tracer_provider("unit", in_memory=True)
    assert telemetry.span_exporter is not None
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("work"):
        pass
    (span,) = telemetry.span_exporter.get_finished_spans()
    assert span.name == "work"
    assert span.resource.attributes["service.name"] == "unit"


_SETUP_SCRIPT = """
import asyncio, io, json
from opentelemetry import trace
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.telemetry import get_logger, setup_telemetry, shutdown_telemetry

stream = io.StringIO()
settings = load_settings(ServiceSettings, {"RADGUARD_SERVICE_NAME": "setup-test"})
first = setup_telemetry(settings, in_memory=True, log_stream=stream)
second = setup_telemetry(load_settings(ServiceSettings, {"RADGUARD_SERVICE_NAME": "other"}))
assert second is first
assert trace.get_tracer_provider() is first.tracer_provider
with trace.get_tracer("t").start_as_current_span("work"):
    get_logger("t").info("inside")
asyncio.run(shutdown_telemetry())
(span,) = first.span_exporter.get_finished_spans()
event = json.loads(stream.getvalue().splitlines()[-1])
print(json.dumps({"service": span.resource.attributes["service.name"], "log_service": event["service"],
                  "same_trace": event["trace_id"] == format(span.context.trace_id, "032x")}))
"""


def test_setup_telemetry_is_once_per_process() -> None:
    # In a subprocess: the global tracer provider can be set only once per interpreter.
    result = subprocess.run(
        [sys.executable, "-c", _SETUP_SCRIPT],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "service": "setup-test",
        "log_service": "setup-test",
        "same_trace": True,
    }
