"""The per-process metrics registry."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.runtime.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_defining_twice_returns_the_same_metric() -> None:
    metrics = Metrics(process_metrics=False)
    first = metrics.counter("events_spooled", "Events written to the local spool.", ["topic"])
    second = metrics.counter("events_spooled", "Events written to the local spool.", ["topic"])
    assert first is second
    first.labels("radguard.predictions.v1").inc(3)
    assert _samples(metrics)[("radguard_events_spooled_total", (("topic", "radguard.predictions.v1"),))] == 3.0


def test_a_name_cannot_change_kind() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.gauge("spool_depth", "Events waiting in the spool.")
    with pytest.raises(ValueError, match="already defined as a Gauge"):
        metrics.counter("spool_depth", "oops")


def test_registries_are_independent() -> None:
    one, two = Metrics(process_metrics=False), Metrics(process_metrics=False)
    one.counter("calls", "Calls.").inc()
    assert ("radguard_calls_total", ()) in _samples(one)
    assert ("radguard_calls_total", ()) not in _samples(two)


def test_rpc_metrics_record_counts_codes_and_latency() -> None:
    metrics = Metrics(process_metrics=False)
    rpc = metrics.rpc
    assert metrics.rpc is rpc
    service = "radguard.inference.v1.InferenceGateway"
    for code, seconds in (
        (grpc.StatusCode.OK, 0.002),
        (grpc.StatusCode.OK, 0.004),
        (grpc.StatusCode.INTERNAL, 0.2),
    ):
        rpc.call_started(service, "Predict")
        rpc.call_finished(service, "Predict", code, seconds)
    samples = _samples(metrics)
    labels = (("grpc_method", "Predict"), ("grpc_service", service))
    assert samples[("radguard_grpc_server_started_total", labels)] == 3.0
    assert samples[("radguard_grpc_server_handled_total", (("grpc_code", "OK"), *labels))] == 2.0
    assert samples[("radguard_grpc_server_handled_total", (("grpc_code", "INTERNAL"), *labels))] == 1.0
    assert samples[("radguard_grpc_server_handling_seconds_count", labels)] == 3.0
    assert samples[("radguard_grpc_server_handling_seconds_sum", labels)] == pytest.approx(0.206)
    bucket = tuple(sorted((("le", "0.005"), *labels)))
    assert samples[("radguard_grpc_server_handling_seconds_bucket", bucket)] == 2.0
    assert samples[("radguard_grpc_server_in_flight", labels)] == 0.0


def test_process_metrics_are_optional() -> None:
    with_process = {name for name, _ in _samples(Metrics())}
    without = {name for name, _ in _samples(Metrics(process_metrics=False))}
    assert "process_cpu_seconds_total" in with_process
    assert "process_cpu_seconds_total" not in without
