"""The gRPC aio server every radguard process runs: health, reflection, interceptors, TLS and drain.

A composition root builds a :class:`RadguardServer` from its settings, adds its services, readiness
checks and shutdown hooks, and hands it to :func:`serve`::

    server = RadguardServer(settings, metrics=metrics)
    server.add_service(GATEWAY_SERVICE, lambda s: add_InferenceGatewayServicer_to_server(servicer, s))
    server.add_readiness_check("triton", triton.is_ready)
    server.add_shutdown_hook(producer.close)
    await serve(server)

Health (``grpc.health.v1``) reports NOT_SERVING until every readiness check passes, is re-evaluated
every ``readiness_interval_s``, and turns NOT_SERVING for good when the drain starts. On SIGTERM or
SIGINT the server drains: health NOT_SERVING, wait ``drain_notice_s`` so load balancers notice, stop
accepting calls and give in-flight ones ``drain_grace_s``, then run the shutdown hooks one after the
other in the order they were added (add them in the order things must close, e.g. a consumer before the
pool it writes into, and telemetry last so that it flushes everyone's spans).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # missing in stubs
from grpc_reflection.v1alpha import reflection, reflection_pb2
from opentelemetry.trace import TracerProvider

from services.runtime.config import ServiceSettings
from services.runtime.interceptors import default_interceptors
from services.runtime.metrics import Metrics, MetricsEndpoint, start_metrics_endpoint
from services.runtime.telemetry import get_logger
from services.runtime.tls import server_credentials

if TYPE_CHECKING:
    from services.runtime.interceptors import Interceptor

#: A dependency probe: True when the dependency can serve. Exceptions and timeouts count as False.
ReadinessCheck = Callable[[], Awaitable[bool]]
#: Releases a resource on shutdown (close a pool, flush a producer).
ShutdownHook = Callable[[], Awaitable[None]]

HEALTH_SERVICE_NAME = "grpc.health.v1.Health"

_log = get_logger(__name__)


#: Server reflection's released name; its messages are field for field those of ``v1alpha``.
REFLECTION_V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"


def _reflection_v1(service_names: Sequence[str]) -> grpc.GenericRpcHandler[Any, Any]:
    """Reflection under its v1 name, answered by grpcio-reflection's v1alpha servicer.

    The two versions' messages have the same fields and numbers, so a v1 client's bytes decode as v1alpha
    messages and the answers decode as v1 ones; clients that ask only for v1 (grpcurl, Postman, recent
    grpc_cli) list and describe the services like the others.
    """
    servicer = reflection.aio.ReflectionServicer(service_names)  # type: ignore[attr-defined]  # not re-exported
    return grpc.method_handlers_generic_handler(
        REFLECTION_V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )


class ServerStartError(RuntimeError):
    """The server could not start (e.g. the port is taken)."""


@dataclass(frozen=True)
class _Registration:
    name: str
    register: Callable[[grpc.aio.Server], object]


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class RadguardServer:
    """A grpc.aio server with radguard's standard services, interceptors and lifecycle."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        metrics: Metrics | None = None,
        tracer_provider: TracerProvider | None = None,
        interceptors: Sequence[Interceptor] = (),
        reuse_port: bool = False,
    ) -> None:
        """Prepare a server; nothing listens until :meth:`start`.

        Args:
            settings: Address, message limits, TLS, drain and readiness timings, metrics endpoint.
            metrics: The process's registry (RPC metrics are recorded and served from it); a fresh
                one when None.
            tracer_provider: Where server spans go; the global provider when None.
            interceptors: Extra interceptors (e.g. authentication) run inside the error mapping.
            reuse_port: Bind with SO_REUSEPORT, so that several processes of one service share the port
                (the kernel spreads connections over them). Off by default: a second process started by
                mistake must fail to bind, not silently share.
        """
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self._tracer_provider = tracer_provider
        self._extra_interceptors = tuple(interceptors)
        self._reuse_port = reuse_port
        self._registrations: list[_Registration] = []
        self._checks: dict[str, ReadinessCheck] = {}
        self._hooks: list[tuple[str, ShutdownHook]] = []
        self._server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._port: int | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._ready = False
        self._readiness_task: asyncio.Task[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._terminated = asyncio.Event()

    # --- assembly -------------------------------------------------------------------------------

    def add_service(self, service: str | ServiceDescriptor, register: Callable[[grpc.aio.Server], object]) -> None:
        """Register a service; it gets a health status and appears in reflection.

        Args:
            service: The service's descriptor (``foo_pb2.DESCRIPTOR.services_by_name["Foo"]``) or full name.
            register: Adds the service's handlers to the grpc server, e.g.
                ``lambda s: foo_pb2_grpc.add_FooServicer_to_server(servicer, s)``.
        """
        self._require_not_started()
        name = service if isinstance(service, str) else service.full_name
        self._registrations.append(_Registration(name, register))

    def add_generic_handler(self, handler: grpc.GenericRpcHandler[Any, Any], service_name: str | None = None) -> None:
        """Register a hand-built handler (e.g. from ``grpc.method_handlers_generic_handler``).

        Args:
            handler: The handler.
            service_name: Full service name for health and reflection; by default the handler's own
                ``service_name()``.
        """
        name = service_name if service_name is not None else getattr(handler, "service_name", lambda: None)()
        if not isinstance(name, str):
            raise TypeError("the handler has no service_name(); pass service_name")
        self.add_service(name, lambda server: server.add_generic_rpc_handlers((handler,)))

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Serve only while ``check`` passes (together with every other check).

        Args:
            name: Dependency name, used in logs.
            check: Probe returning True when the dependency is ready.
        """
        self._require_not_started()
        self._checks[name] = check

    def add_shutdown_hook(self, hook: ShutdownHook, name: str | None = None) -> None:
        """Run ``hook`` after the drain; hooks run in the order added, each within its timeout.

        Args:
            hook: Coroutine function releasing a resource; gets ``shutdown_hook_timeout_s``. A hook
                that fails or times out is logged and the next one still runs.
            name: Used in logs; the function's name when None.
        """
        self._hooks.append((name or str(getattr(hook, "__qualname__", repr(hook))), hook))

    def _require_not_started(self) -> None:
        if self._server is not None:
            raise RuntimeError("the server is already started")

    # --- state ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound gRPC port (the real one when port 0 was configured)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port, or None when the endpoint is disabled or not started."""
        return self._metrics_endpoint.port if self._metrics_endpoint is not None else None

    @property
    def ready(self) -> bool:
        """Whether the last readiness evaluation passed (health SERVING)."""
        return self._ready

    @property
    def service_names(self) -> tuple[str, ...]:
        """Full names of the registered application services."""
        return tuple(registration.name for registration in self._registrations)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind, start serving, start the metrics endpoint and evaluate readiness once.

        Raises:
            ServerStartError: The gRPC or metrics port cannot be bound.
        """
        self._require_not_started()
        settings = self.settings
        server = grpc.aio.server(
            interceptors=default_interceptors(
                metrics=self.metrics,
                tracer_provider=self._tracer_provider,
                inner=self._extra_interceptors,
                ok_level=logging.getLevelName(settings.access_log_level.upper()),
            ),
            options=[
                ("grpc.max_receive_message_length", settings.grpc_max_receive_message_bytes),
                ("grpc.max_send_message_length", settings.grpc_max_send_message_bytes),
                # Without this, a second process can silently share the port on Linux.
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
            ],
            maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        )
        self._server = server

        health = health_aio.HealthServicer()
        self._health = health
        for name in ("", *self.service_names):
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        for registration in self._registrations:
            registration.register(server)
        names = (*self.service_names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1_SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        server.add_generic_rpc_handlers((_reflection_v1(names),))

        address = _address(settings.grpc_host, settings.grpc_port)
        credentials = server_credentials(settings)
        try:
            if credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, credentials)
        except RuntimeError as error:
            raise ServerStartError(f"cannot listen on {address}: {error}") from error
        if port == 0:
            raise ServerStartError(f"cannot listen on {address}")
        self._port = port
        await server.start()

        if settings.metrics_enabled:
            try:
                self._metrics_endpoint = start_metrics_endpoint(
                    self.metrics, settings.metrics_host, settings.metrics_port
                )
            except OSError as error:
                await server.stop(0)
                where = _address(settings.metrics_host, settings.metrics_port)
                raise ServerStartError(f"cannot serve metrics on {where}: {error}") from error

        _log.info(
            "server.started",
            port=port,
            tls=credentials is not None,
            mutual_tls=settings.tls_require_client_cert,
            services=list(self.service_names),
            metrics_port=self.metrics_port,
        )
        await self.refresh_readiness()
        if self._checks:
            self._readiness_task = asyncio.create_task(self._watch_readiness(), name="radguard-readiness")

    async def refresh_readiness(self) -> bool:
        """Evaluate the readiness checks now and set every health status accordingly.

        Returns:
            True when all checks passed (health is SERVING).
        """
        checks = self._checks.items()
        results = await asyncio.gather(*(self._run_check(name, check) for name, check in checks))
        ready = all(results)
        if ready != self._ready:
            _log.info("server.readiness_changed", ready=ready)
        self._ready = ready
        if self._health is not None:
            serving = health_pb2.HealthCheckResponse
            status = serving.SERVING if ready else serving.NOT_SERVING
            for name in ("", *self.service_names):
                await self._health.set(name, status)
        return ready

    async def _run_check(self, name: str, check: ReadinessCheck) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), self.settings.readiness_timeout_s))
        except Exception as error:
            _log.warning("server.readiness_check_failed", check=name, error_type=type(error).__name__)
            return False

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(self.settings.readiness_interval_s)
            await self.refresh_readiness()

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain and stop; safe to call more than once (later calls wait for the first).

        Args:
            grace_s: Time in-flight calls get to finish; ``drain_grace_s`` when None.
        """
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._run_drain(grace_s))
        await asyncio.shield(self._drain)

    async def _run_drain(self, grace_s: float | None) -> None:
        settings = self.settings
        grace = settings.drain_grace_s if grace_s is None else grace_s
        if self._readiness_task is not None:
            self._readiness_task.cancel()
        self._ready = False
        try:
            if self._server is not None and self._health is not None:
                await self._health.enter_graceful_shutdown()
                _log.info("server.draining", notice_s=settings.drain_notice_s, grace_s=grace)
                if settings.drain_notice_s > 0:
                    await asyncio.sleep(settings.drain_notice_s)
                await self._server.stop(grace)
            for name, hook in self._hooks:
                try:
                    await asyncio.wait_for(hook(), settings.shutdown_hook_timeout_s)
                except Exception as error:
                    _log.error("server.shutdown_hook_failed", hook=name, error_type=type(error).__name__)
            if self._metrics_endpoint is not None:
                await asyncio.to_thread(self._metrics_endpoint.close)
            _log.info("server.stopped")
        finally:
            self._terminated.set()

    async def wait_for_termination(self) -> None:
        """Return once the server has been stopped."""
        await self._terminated.wait()


async def serve(
    server: RadguardServer,
    *,
    stop_signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Start ``server``, run until a stop signal arrives, then drain and stop it.

    Signals that arrive during the drain are ignored, so a second Ctrl-C does not cut it short.
    Shutdown hooks also run when start-up fails, so resources opened before it are released.

    Args:
        server: The assembled server.
        stop_signals: Signals that start the drain.
    """
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        _log.info("server.signal", signal=sig.name)
        stop_requested.set()

    for sig in stop_signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await server.start()
        waiters = {
            asyncio.create_task(stop_requested.wait()),
            asyncio.create_task(server.wait_for_termination()),
        }
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    finally:
        await server.stop()
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
