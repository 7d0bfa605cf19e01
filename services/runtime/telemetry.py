"""Tracing and structured logging, set up once per process.

Traces go to an OTLP/gRPC collector when one is configured (or to an in-memory exporter in tests).
Logs are one event per line, JSON or logfmt, and every line written while a call is handled carries
its ``trace_id``, ``span_id`` and ``request_id``. Libraries that log through :mod:`logging` (grpc,
kafka-python, asyncpg) are rendered the same way.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from services.runtime.config import LogFormat, LogLevel, ServiceSettings
from services.runtime.request_id import current_request_id

# Libraries that are chatty at INFO; their warnings still come through.
_QUIET_LOGGERS = ("kafka", "asyncio", "grpc._cython", "urllib3")


@dataclass(frozen=True)
class Telemetry:
    """What :func:`setup_telemetry` configured.

    Attributes:
        tracer_provider: The process's tracer provider (also installed as the global one).
        span_exporter: The in-memory exporter when requested (tests read finished spans from it).
    """

    tracer_provider: TracerProvider
    span_exporter: InMemorySpanExporter | None = None


class _ProcessTelemetry:
    """The one configuration of this process (a holder, so no module global is rebound)."""

    lock = threading.Lock()
    configured: Telemetry | None = None


def build_tracer_provider(
    service_name: str,
    *,
    otlp_endpoint: str | None = None,
    otlp_timeout_s: float = 10.0,
    sample_ratio: float = 1.0,
    in_memory: bool = False,
) -> Telemetry:
    """Build a tracer provider without installing it globally.

    Args:
        service_name: Recorded as the ``service.name`` resource attribute.
        otlp_endpoint: OTLP/gRPC collector address (``http://host:4317`` for plaintext); None exports
            nothing.
        otlp_timeout_s: Time one export may take.
        sample_ratio: Fraction of new traces recorded; a sampled parent is always followed.
        in_memory: Also keep finished spans in an in-memory exporter, exported synchronously.

    Returns:
        The provider and, when ``in_memory``, its exporter.
    """
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    if otlp_endpoint:
        # Imported here: the exporter pulls in its own gRPC channel machinery, unused without a collector.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=otlp_endpoint,
            insecure=otlp_endpoint.startswith("http://"),
            timeout=otlp_timeout_s,
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    memory: InMemorySpanExporter | None = None
    if in_memory:
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
    return Telemetry(tracer_provider=provider, span_exporter=memory)


def setup_telemetry(
    settings: ServiceSettings,
    *,
    in_memory: bool = False,
    log_stream: TextIO | None = None,
) -> Telemetry:
    """Configure tracing and logging for this process; later calls return the first result.

    Args:
        settings: Supplies service name, OTLP endpoint, sample ratio, log level and format.
        in_memory: Keep finished spans in memory (tests).
        log_stream: Where log lines go; standard output by default.

    Returns:
        The configured :class:`Telemetry`.
    """
    with _ProcessTelemetry.lock:
        if _ProcessTelemetry.configured is not None:
            return _ProcessTelemetry.configured
        telemetry = build_tracer_provider(
            settings.service_name,
            otlp_endpoint=settings.otlp_endpoint,
            otlp_timeout_s=settings.otlp_timeout_s,
            sample_ratio=settings.trace_sample_ratio,
            in_memory=in_memory,
        )
        trace.set_tracer_provider(telemetry.tracer_provider)
        configure_logging(
            level=settings.log_level,
            fmt=settings.log_format,
            service_name=settings.service_name,
            stream=log_stream,
        )
        _ProcessTelemetry.configured = telemetry
        return telemetry


async def shutdown_telemetry() -> None:
    """Flush and stop span export; add it as the last shutdown hook so that it runs last."""

    def shutdown() -> None:
        with _ProcessTelemetry.lock:
            if _ProcessTelemetry.configured is not None:
                _ProcessTelemetry.configured.tracer_provider.shutdown()

    # The exporter blocks while it flushes; keep the event loop free meanwhile.
    await asyncio.to_thread(shutdown)


EventDict = MutableMapping[str, Any]


def _add_call_context(_logger: Any, _method: str, event: EventDict) -> EventDict:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event.setdefault("span_id", format(span_context.span_id, "016x"))
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


class _AddService:
    def __init__(self, service_name: str) -> None:
        self._service_name = service_name

    def __call__(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        event.setdefault("service", self._service_name)
        return event


class _RadguardHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the root handler this module installed, so reconfiguring replaces it."""


def configure_logging(
    *,
    level: LogLevel = "info",
    fmt: LogFormat = "json",
    service_name: str = "radguard",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and standard-library logging to one line-per-event handler.

    Calling it again replaces the handler it installed before (never adds a second one).

    Args:
        level: Minimum level written.
        fmt: ``json`` (one JSON object per line) or ``logfmt`` (``key=value`` pairs).
        service_name: Added to every line as ``service``.
        stream: Destination; standard output by default.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _AddService(service_name),
        _add_call_context,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = _RadguardHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, _RadguardHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(numeric_level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging (tests, reconfiguration) must reach existing loggers.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structured logger; use event names and key=value fields, never patient data.

    Args:
        name: Usually the module's ``__name__``.
    """
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
