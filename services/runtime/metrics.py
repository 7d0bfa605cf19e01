"""A per-process Prometheus registry, helpers to define metrics on it, and its HTTP endpoint.

Each process builds one :class:`Metrics` in its composition root and hands it to whatever records
metrics. A registry per instance (instead of prometheus_client's global one) lets tests run several
servers in one interpreter without duplicate-registration errors.

The endpoint follows gRPC's port convention: port 0 asks the OS for a free port (read it back from
:attr:`MetricsEndpoint.port`); turn the endpoint off with ``RADGUARD_METRICS_ENABLED=false``.
Label values must never carry patient data: use method names, codes, model names and versions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

#: Latency buckets in seconds, dense in the milliseconds where inference calls should land.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)

_MetricT = TypeVar("_MetricT", bound=MetricWrapperBase)


class Metrics:
    """One process's metrics registry.

    Defining a metric twice with the same name returns the first definition, so modules may declare
    what they record without coordinating who goes first.
    """

    def __init__(self, namespace: str = "radguard", *, process_metrics: bool = True) -> None:
        """Create an empty registry.

        Args:
            namespace: Prefix of every metric name (``radguard_...``).
            process_metrics: Also export CPU, memory, file descriptor, GC and Python version metrics.
        """
        self.namespace = namespace
        self.registry = CollectorRegistry(auto_describe=True)
        self._defined: dict[str, MetricWrapperBase] = {}
        self._lock = threading.Lock()
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            if GC_COLLECTOR is not None:
                GCCollector(registry=self.registry)

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        """Define (or fetch) a counter; the exported name gets the namespace and a ``_total`` suffix.

        Args:
            name: Metric name without namespace, e.g. ``"events_spooled"``.
            documentation: One-line help text.
            labelnames: Label names; keep their value sets small and free of patient data.
        """
        return self._define(Counter, name, documentation, labelnames)

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        """Define (or fetch) a gauge.

        Args:
            name: Metric name without namespace.
            documentation: One-line help text.
            labelnames: Label names.
        """
        return self._define(Gauge, name, documentation, labelnames)

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> Histogram:
        """Define (or fetch) a histogram.

        Args:
            name: Metric name without namespace; end it with the unit, e.g. ``"_seconds"``.
            documentation: One-line help text.
            labelnames: Label names.
            buckets: Upper bounds; latency buckets in seconds by default.
        """
        return self._define(Histogram, name, documentation, labelnames, buckets=tuple(buckets))

    def _define(
        self,
        kind: type[_MetricT],
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        **extra: object,
    ) -> _MetricT:
        with self._lock:
            existing = self._defined.get(name)
            if existing is not None:
                if not isinstance(existing, kind):
                    raise ValueError(f"metric {name!r} is already defined as a {type(existing).__name__}")
                return existing
            metric = kind(
                name,
                documentation,
                labelnames=tuple(labelnames),
                namespace=self.namespace,
                registry=self.registry,
                **extra,  # type: ignore[arg-type]
            )
            self._defined[name] = metric
            return metric

    @cached_property
    def rpc(self) -> RpcMetrics:
        """The gRPC server metrics recorded by the metrics interceptor."""
        return RpcMetrics(self)

    def render(self) -> bytes:
        """Return the registry in Prometheus text format (what the endpoint serves)."""
        return generate_latest(self.registry)


class RpcMetrics:
    """Call counts, latencies and in-flight calls of a gRPC server, labelled by service and method."""

    def __init__(self, metrics: Metrics) -> None:
        labels = ("grpc_service", "grpc_method")
        self.started = metrics.counter("grpc_server_started", "gRPC calls started.", labels)
        self.handled = metrics.counter(
            "grpc_server_handled", "gRPC calls completed, by status code.", (*labels, "grpc_code")
        )
        self.duration = metrics.histogram(
            "grpc_server_handling_seconds", "Time from call start to status, in seconds.", labels
        )
        self.in_flight = metrics.gauge("grpc_server_in_flight", "gRPC calls being handled now.", labels)

    def call_started(self, service: str, method: str) -> None:
        """Record that a call began.

        Args:
            service: Full service name, e.g. ``radguard.inference.v1.InferenceGateway``.
            method: Method name, e.g. ``Predict``.
        """
        self.started.labels(service, method).inc()
        self.in_flight.labels(service, method).inc()

    def call_finished(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Record how a call ended.

        Args:
            service: Full service name.
            method: Method name.
            code: Final status code.
            seconds: Time from start to status.
        """
        self.in_flight.labels(service, method).dec()
        self.handled.labels(service, method, code.name).inc()
        self.duration.labels(service, method).observe(seconds)


class MetricsEndpoint:
    """A running Prometheus HTTP endpoint (serves every path, conventionally scraped at ``/metrics``)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when 0 was requested)."""
        return int(self._server.server_port)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop serving and release the port.

        Args:
            timeout_s: Time to wait for the serving thread to end.
        """
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout_s)


def start_metrics_endpoint(metrics: Metrics, host: str = "0.0.0.0", port: int = 0) -> MetricsEndpoint:  # noqa: S104
    """Serve ``metrics`` over HTTP on a daemon thread.

    Args:
        metrics: The registry to expose.
        host: Interface to bind.
        port: TCP port; 0 lets the OS choose.

    Returns:
        The running endpoint.

    Raises:
        OSError: The port cannot be bound.
    """
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsEndpoint(server, thread)
