"""Wiring of the gateway process: settings → adapters → handler → servicers → server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from kernel.topics import ROUTES_TOPIC
from services.gateway import oip_servicer as oip_api
from services.gateway import servicer as gateway_api
from services.gateway.adapters.catalog import RepositoryCatalog
from services.gateway.adapters.events import SinkTuning, SpooledKafkaSink
from services.gateway.adapters.routes import RouteFollower
from services.gateway.adapters.triton import TritonBackend
from services.gateway.deadletter import DeadLetterWriter
from services.gateway.handlers import HandlerLimits, PredictHandler
from services.gateway.idempotency import ANSWERS_DIRNAME, AnswerJournal
from services.gateway.oip_servicer import OpenInferenceServicer
from services.gateway.pseudonym import Pseudonymiser
from services.gateway.rest import Authenticate, RestEndpoint
from services.gateway.routing import RouteBook
from services.gateway.servicer import InferenceGatewayServicer, RequestLimits, RequestTranslator
from services.gateway.settings import GatewaySettings
from services.gateway.spool import Spool, SpooledRecord
from services.gateway.targets import RoutedBackend, RoutedCatalog
from services.runtime.auth import (
    AUTHORIZATION_HEADER,
    HOSPITAL_SYSTEM,
    OPERATOR,
    AccessPolicy,
    CallerAuthInterceptor,
    auth_interceptors,
)
from services.runtime.kafka import AsyncKafkaConsumer, AsyncKafkaProducer, OutgoingRecord
from services.runtime.metrics import Metrics
from services.runtime.server import RadguardServer

if TYPE_CHECKING:
    from services.runtime.interceptors import Interceptor

_log = logging.getLogger(__name__)
_SCORE = frozenset({HOSPITAL_SYSTEM})
_LOOK = frozenset({HOSPITAL_SYSTEM, OPERATOR})
_RADIOLOGY = "/radguard.inference.v1.InferenceGateway/"
_OIP = "/inference.GRPCInferenceService/"
#: Who may call what: hospital systems score; operators (and hospital systems) look at routes and models.
#: The inference protocol's liveness and readiness calls stay open, like the health service.
ACCESS_POLICY = AccessPolicy(
    protected_prefixes=(_RADIOLOGY, _OIP),
    allowed={
        f"{_RADIOLOGY}Predict": _SCORE,
        f"{_RADIOLOGY}PredictStream": _SCORE,
        f"{_RADIOLOGY}GetRoute": _LOOK,
        f"{_OIP}ModelInfer": _SCORE,
        f"{_OIP}ServerMetadata": _LOOK,
        f"{_OIP}ModelReady": _LOOK,
        f"{_OIP}ModelMetadata": _LOOK,
        f"{_OIP}ModelConfig": _LOOK,
        f"{_OIP}ModelStreamInfer": _SCORE,
        # Read-only administration is forwarded; the rest is refused by the servicer with a reason.
        **{
            f"{_OIP}{name}": _LOOK
            for name in (
                "ModelStatistics",
                "RepositoryIndex",
                "TraceSetting",
                "LogSettings",
                "RepositoryModelLoad",
                "RepositoryModelUnload",
                "SystemSharedMemoryStatus",
                "SystemSharedMemoryRegister",
                "SystemSharedMemoryUnregister",
                "CudaSharedMemoryStatus",
                "CudaSharedMemoryRegister",
                "CudaSharedMemoryUnregister",
            )
        },
    },
    open_methods=frozenset({f"{_OIP}ServerLive", f"{_OIP}ServerReady"}),
)


@dataclass
class Gateway:
    """The assembled gateway: its server and the parts tests and benchmarks look at."""

    server: RadguardServer
    handler: PredictHandler
    routes: RouteBook
    sink: SpooledKafkaSink
    follower: RouteFollower
    backend: TritonBackend
    rest: RestEndpoint | None = None
    answers: AnswerJournal | None = None

    def start_background(self) -> None:
        """Start the parts that run beside the server: the sink, and the sibling-answer follower."""
        self.sink.start()
        answers = self.answers
        if answers is not None and answers.has_siblings:
            task = asyncio.get_running_loop().create_task(_follow_answers(answers))

            async def stop_following() -> None:
                task.cancel()

            self.server.add_shutdown_hook(stop_following, "answer-follower")


#: How often a multi-process gateway's process reads the answers its siblings gave (a retry that reaches
#: another process than its first call is answered from there within this lag).
ANSWER_FOLLOW_INTERVAL_S = 0.05


async def _follow_answers(answers: AnswerJournal) -> None:
    while True:
        await asyncio.sleep(ANSWER_FOLLOW_INTERVAL_S)
        try:
            answers.follow_siblings()
        except Exception:  # never let the follower die; the next pass retries
            _log.exception("following the sibling processes' answers failed")


def build_gateway(settings: GatewaySettings) -> Gateway:
    """Assemble (but do not start) a gateway; its start and shutdown are server hooks."""
    backend = TritonBackend(
        settings.triton_grpc_url,
        settings.grpc_max_receive_message_bytes,
        reconnect_backoff_max_ms=settings.triton_reconnect_backoff_max_ms,
    )
    catalog = RepositoryCatalog.load(settings.model_repo)
    routes = RouteBook()
    producer = AsyncKafkaProducer.from_settings(settings)
    spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes, fsync=settings.spool_fsync)

    pseudonymiser = Pseudonymiser(settings.pseudonym_key.get_secret_value().encode())
    producer_started = False
    starting = asyncio.Lock()

    async def started_producer() -> AsyncKafkaProducer:
        # Connect lazily: a gateway must start (and answer, spooling) while Kafka is down. The publisher and
        # the probe share one producer; the lock keeps them from building two.
        nonlocal producer_started
        async with starting:
            if not producer_started:
                await producer.start()
                producer_started = True
        return producer

    async def send_many(records: list[SpooledRecord]) -> list[object]:
        kafka = await started_producer()
        return list(await kafka.send_many([OutgoingRecord(r.topic, r.value, r.key, r.headers) for r in records]))

    async def kafka_answers() -> bool:
        kafka = await started_producer()
        return await kafka.probe(timeout_s=settings.kafka_probe_interval_s)

    sink = SpooledKafkaSink(
        spool,
        send_many,
        producer_name=f"gateway/{settings.instance_id}",
        age_edges=settings.age_band_edges,
        tuning=SinkTuning(
            sync_interval_s=settings.spool_sync_interval_s,
            publish_interval_s=settings.events_publish_interval_s,
            probe_interval_s=settings.kafka_probe_interval_s,
        ),
        topic=settings.predictions_topic,
        max_event_bytes=settings.events_max_bytes,
        dead_letters=DeadLetterWriter(settings.spool_dir, fsync=settings.spool_fsync),
        probe=kafka_answers,
        pseudonymiser=pseudonymiser,
    )
    consumer = AsyncKafkaConsumer(
        [ROUTES_TOPIC],
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        client_id=f"gateway-{settings.instance_id}-routes",
        auto_offset_reset="earliest",
        bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
        security=settings,
    )
    follower = RouteFollower(consumer, routes, settings.routes_poll_s)
    answers = AnswerJournal(
        settings.spool_dir / ANSWERS_DIRNAME,
        settings.pseudonym_key.get_secret_value().encode(),
        window_s=settings.idempotency_window_s,
        max_entries=settings.idempotency_max_entries,
        siblings=[folder / ANSWERS_DIRNAME for folder in settings.sibling_spool_dirs],
    )
    # Callers name governance's models: these resolve a name and label to the Triton version serving it.
    routed_backend = RoutedBackend(backend, routes)
    routed_catalog = RoutedCatalog(catalog, routes)
    handler = PredictHandler(
        routed_backend,
        routed_catalog,
        routes,
        sink,
        HandlerLimits(infer_timeout_s=settings.infer_timeout_s, shadow_timeout_s=settings.shadow_timeout_s),
        answers,
    )
    translator = RequestTranslator(
        routed_catalog, pseudonymiser, RequestLimits(settings.max_image_bytes, settings.stream_concurrency)
    )
    gateway_servicer = InferenceGatewayServicer(translator, handler, routes)
    oip = OpenInferenceServicer(
        backend.stub,
        routed_backend,
        routed_catalog,
        handler,
        pseudonymiser,
        settings.max_image_bytes,
        settings.infer_timeout_s,
        settings.stream_concurrency,
    )

    metrics = Metrics()
    interceptors = auth_interceptors(settings, ACCESS_POLICY, metrics)
    server = RadguardServer(settings, metrics=metrics, interceptors=interceptors, reuse_port=settings.reuse_port)
    rest = _rest_endpoint(settings, oip, server, interceptors)
    _export_gauges(metrics, sink, handler)
    _export_dead_letters(metrics, sink)
    gateway_api.register(server, gateway_servicer)
    oip_api.register(server, oip)

    _add_readiness_checks(server, backend, sink, routes)

    async def close_producer() -> None:
        if producer_started:
            await producer.close()

    # Hooks run after the server has drained, in this order.
    server.add_shutdown_hook(handler.drain_shadows, "shadow-calls")
    server.add_shutdown_hook(sink.stop, "event-spool")
    server.add_shutdown_hook(follower.stop, "route-follower")
    server.add_shutdown_hook(close_producer, "kafka-producer")
    server.add_shutdown_hook(backend.close, "triton-channel")

    async def close_answers() -> None:
        answers.close()

    server.add_shutdown_hook(close_answers, "answer-journal")
    return Gateway(server, handler, routes, sink, follower, backend, rest, answers)


def _add_readiness_checks(
    server: RadguardServer, backend: TritonBackend, sink: SpooledKafkaSink, routes: RouteBook
) -> None:
    async def triton_ready() -> bool:
        return await backend.ready()

    async def spool_ok() -> bool:
        return sink.accepting()

    async def routes_loaded() -> bool:
        return routes.loaded

    server.add_readiness_check("triton", triton_ready)
    server.add_readiness_check("event-spool", spool_ok)
    server.add_readiness_check("routes", routes_loaded)


def _rest_endpoint(
    settings: GatewaySettings, oip: OpenInferenceServicer, server: RadguardServer, interceptors: list[Interceptor]
) -> RestEndpoint | None:
    """The REST/HTTP endpoint when a port is set; it stops first, so no REST call starts once the drain has."""
    if settings.http_port is None:
        return None
    rest = RestEndpoint(
        oip,
        http_authenticator(interceptors),
        host=settings.grpc_host,
        port=settings.http_port,
        max_body_bytes=settings.grpc_max_receive_message_bytes,
        reuse_port=settings.reuse_port,
    )
    server.add_shutdown_hook(rest.stop, "rest-endpoint")
    return rest


def _export_gauges(metrics: Metrics, sink: SpooledKafkaSink, handler: PredictHandler) -> None:
    """Prometheus views of the event path: a full spool or a Kafka outage must show, not hide."""
    metrics.gauge(
        "gateway_spool_pending_bytes", "prediction events on disk not yet acknowledged by Kafka"
    ).set_function(lambda: sink.spool.pending_bytes)
    metrics.gauge("gateway_spool_full", "1 while the spool refuses new events (predictions refused)").set_function(
        lambda: 0.0 if sink.accepting() else 1.0
    )
    metrics.gauge(
        "gateway_kafka_ok", "1 when Kafka answered the last probe or publish (probed every few seconds)"
    ).set_function(lambda: 1.0 if sink.kafka_ok else 0.0)
    metrics.gauge("gateway_events_published", "prediction events acknowledged by Kafka since start").set_function(
        lambda: sink.published
    )
    metrics.gauge("gateway_publish_failures", "failed publish attempts since start (each retried)").set_function(
        lambda: sink.publish_failures
    )
    metrics.gauge(
        "gateway_kafka_probe_failures", "Kafka probes (metadata requests) that went unanswered since start"
    ).set_function(lambda: sink.probe_failures)
    metrics.gauge(
        "gateway_spool_sync_failures", "failed fsyncs of the event spool since start (each retried)"
    ).set_function(lambda: sink.sync_failures)
    metrics.gauge("gateway_shadow_failures", "shadow calls that failed or were skipped since start").set_function(
        lambda: handler.shadow_failures
    )


class _DeadLetterCollector(Collector):
    """Exports the sink's count of quarantined records as the counter ``radguard_gateway_dead_letters_total``."""

    def __init__(self, sink: SpooledKafkaSink, namespace: str) -> None:
        self._sink = sink
        self._name = f"{namespace}_gateway_dead_letters"

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self._name, "records Kafka refused for good, moved to the spool's dead-letter folder since start"
        )
        family.add_metric([], float(self._sink.dead_letters))
        yield family


def _export_dead_letters(metrics: Metrics, sink: SpooledKafkaSink) -> None:
    metrics.registry.register(_DeadLetterCollector(sink, metrics.namespace))


async def start_gateway(gateway: Gateway) -> None:
    """Start the background parts, then the server."""
    gateway.start_background()
    await gateway.follower.start()
    await gateway.server.start()
    if gateway.rest is not None:
        await gateway.rest.start()


def http_authenticator(interceptors: list[Interceptor]) -> Authenticate | None:
    """The REST endpoint's caller check: the gRPC interceptor's, with HTTP headers as call metadata."""
    checks = [i for i in interceptors if isinstance(i, CallerAuthInterceptor)]
    if not checks:
        return None  # insecure development mode: nothing is checked
    check = checks[0].authenticate

    def authenticate(method: str, headers: Mapping[str, str]) -> None:
        value = headers.get("Authorization")
        metadata = () if value is None else ((AUTHORIZATION_HEADER, value),)
        check(method, _HttpCall(metadata))

    return authenticate


class _HttpCall:
    """What the caller check reads from a call, for an HTTP request (headers; no client certificate)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}
