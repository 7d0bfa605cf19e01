"""gRPC aio server interceptors: request id, tracing, metrics, access log and domain-error mapping.

Each interceptor is written as an async context manager around one call (:class:`ScopedInterceptor`);
:func:`wrap_handler` applies it to all four handler kinds (unary-unary, unary-stream, stream-unary,
stream-stream), including response-streaming handlers written either as async generators or as
coroutines that call ``context.write``. Handlers must be ``async``; synchronous handlers are not used
in radguard.

The order of :func:`default_interceptors` matters and is outermost first: the request id must exist
before the span and the log line that carry it, and errors are mapped innermost so that spans,
metrics and logs all see the status the caller sees.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
import grpc.aio
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    Unavailable,
    bounded_message,
    internal_error_message,
    status_for,
)
from services.runtime.metrics import Metrics, RpcMetrics
from services.runtime.postgres import CONNECTION_LOST
from services.runtime.request_id import (
    REQUEST_ID_HEADER,
    bind_request_id,
    current_request_id,
    is_valid_request_id,
    new_request_id,
    reset_request_id,
)
from services.runtime.telemetry import get_logger

#: Span attribute holding the call's request id.
REQUEST_ID_ATTRIBUTE = "radguard.request_id"

# Codes that mean the server failed (as opposed to the caller's request being refused); they mark
# spans as errors and are logged at error level.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

#: Method prefixes logged at debug level only: probes would otherwise drown the access log.
QUIET_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/", "/grpc.reflection.")

if TYPE_CHECKING:
    # grpc's classes are generic only in the type stubs.
    Handler = grpc.RpcMethodHandler[Any, Any]
    Interceptor = grpc.aio.ServerInterceptor[Any, Any]
    ServicerContext = grpc.aio.ServicerContext[Any, Any]
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor

Behavior = Callable[[Any, Any], Any]


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call an interceptor scope is wrapped around.

    Attributes:
        method: Full method name, ``/package.Service/Method``.
        context: The call's servicer context.
    """

    method: str
    context: ServicerContext

    @property
    def service_name(self) -> str:
        """The full service name, e.g. ``radguard.inference.v1.InferenceGateway``."""
        return split_method(self.method)[0]

    @property
    def method_name(self) -> str:
        """The bare method name, e.g. ``Predict``."""
        return split_method(self.method)[1]


def split_method(full_method: str) -> tuple[str, str]:
    """Split ``/package.Service/Method`` into service and method names.

    Args:
        full_method: The method path as gRPC reports it.

    Returns:
        ``(service, method)``; the service is empty when the path has no slash-separated parts.
    """
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


def final_code(context: ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """Return the status a call ended with, as the caller sees it.

    Args:
        context: The call's servicer context (carries codes set by ``abort`` or ``set_code``).
        error: What the handler raised, or None when it returned.

    Returns:
        The final status code.
    """
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    code = cast(grpc.StatusCode | None, context.code())
    if code is not None:
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


CallScope = Callable[[CallInfo], AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request message whose bytes do not parse; the wrapped handler refuses it.

    gRPC itself would answer UNKNOWN (with an internal class name) before any interceptor scope runs, so
    the call would be neither counted nor logged. Parsing into this marker instead lets the call's scope
    turn it into INVALID_ARGUMENT like any other bad input.

    Attributes:
        message_type: Full protobuf name of the expected message, when known.
    """

    message_type: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    message_type = str(getattr(descriptor, "full_name", "") or "")

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # any parse failure: DecodeError, RecursionError on absurd nesting, ...
            return Undecodable(message_type)

    return parse


def undecodable_error(marker: Undecodable) -> InvalidArgument:
    """The error a call gets for a request that does not parse."""
    expected = f"a valid {marker.message_type} message" if marker.message_type else "a valid message"
    return InvalidArgument("request", f"cannot be decoded as {expected}")


def wrap_handler(handler: Handler, method: str, scope: CallScope, *, refuse_undecodable: bool = False) -> Handler:
    """Return a handler that runs ``scope`` around every call of ``handler``.

    Args:
        handler: The handler found for the call.
        method: Full method name.
        scope: Builds the async context manager for one call.
        refuse_undecodable: Parse requests tolerantly and, inside the scope, refuse a message that does not
            parse with INVALID_ARGUMENT. In a request stream the stream is ended for the handler at the
            bad message (it answers what it read before), then the call ends with INVALID_ARGUMENT.

    Returns:
        An equivalent handler (same streaming kind and (de)serializers) with the scope applied.
    """
    if handler.request_streaming and handler.response_streaming:
        behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if behavior is None:
        return handler
    deserializer = handler.request_deserializer
    if refuse_undecodable:
        deserializer = _tolerant(deserializer)
        behavior = _refusing_undecodable(cast(Behavior, behavior), handler.request_streaming)
    return factory(
        _wrap_behavior(cast(Behavior, behavior), method, scope),
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )


class _RequestStream:
    """A request iterator that ends at the first undecodable message and remembers it."""

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self._requests = requests
        self.bad: Undecodable | None = None

    def __aiter__(self) -> _RequestStream:
        return self

    async def __anext__(self) -> Any:
        if self.bad is not None:
            raise StopAsyncIteration
        item = await self._requests.__anext__()
        if isinstance(item, Undecodable):
            self.bad = item
            raise StopAsyncIteration
        return item


def _refusing_undecodable(behavior: Behavior, request_streaming: bool) -> Behavior:
    if not request_streaming:
        if inspect.isasyncgenfunction(behavior):

            async def unary_stream(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
                if isinstance(request, Undecodable):
                    raise undecodable_error(request)
                async with aclosing(behavior(request, context)) as responses:
                    async for response in responses:
                        yield response

            return unary_stream

        async def unary(request: Any, context: ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                raise undecodable_error(request)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return unary

    if inspect.isasyncgenfunction(behavior):

        async def stream_stream(requests: AsyncIterator[Any], context: ServicerContext) -> AsyncIterator[Any]:
            stream = _RequestStream(requests)
            async with aclosing(behavior(stream, context)) as responses:
                async for response in responses:
                    yield response
            if stream.bad is not None:
                raise undecodable_error(stream.bad)

        return stream_stream

    async def stream_unary(requests: AsyncIterator[Any], context: ServicerContext) -> Any:
        stream = _RequestStream(requests)
        result = behavior(stream, context)
        value = await result if inspect.isawaitable(result) else result
        if stream.bad is not None:
            raise undecodable_error(stream.bad)
        return value

    return stream_unary


def _wrap_behavior(behavior: Behavior, method: str, scope: CallScope) -> Behavior:
    # gRPC decides how to drive a handler from what kind of function it is (async generator or
    # coroutine function), so the wrapper must be the same kind as what it wraps.
    if inspect.isasyncgenfunction(behavior):

        async def streaming(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
            async with scope(CallInfo(method, context)), aclosing(behavior(request, context)) as responses:
                async for response in responses:
                    yield response

        return streaming

    async def single(request: Any, context: ServicerContext) -> Any:
        async with scope(CallInfo(method, context)):
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

    return single


class ScopedInterceptor(_InterceptorBase, abc.ABC):
    """An interceptor expressed as an async context manager entered around each call."""

    #: Parse requests tolerantly and refuse undecodable ones inside this interceptor's scope.
    refuse_undecodable: bool = False

    @abc.abstractmethod
    def scope(self, call: CallInfo) -> AbstractAsyncContextManager[None]:
        """Return the context manager for one call.

        Args:
            call: The call about to be handled.
        """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler the rest of the chain finds."""
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        method = handler_call_details.method
        # Registered handlers are the same objects call after call: wrap each once, not per call.
        cache: dict[str, tuple[Handler, Handler]] = self.__dict__.setdefault("_wrapped", {})
        hit = cache.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = wrap_handler(handler, method, self.scope, refuse_undecodable=self.refuse_undecodable)
        cache[method] = (handler, wrapped)
        return wrapped


def _text_metadata(context: ServicerContext) -> dict[str, str]:
    pairs = cast(Iterable[tuple[str, str | bytes]], context.invocation_metadata() or ())
    return {key: value for key, value in pairs if isinstance(value, str)}


class RequestIdInterceptor(ScopedInterceptor):
    """Adopts the caller's ``x-request-id`` (or makes one), makes it current, and echoes it in trailers."""

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Bind the request id for the duration of the call."""
        incoming = _text_metadata(call.context).get(REQUEST_ID_HEADER)
        request_id = incoming if incoming is not None and is_valid_request_id(incoming) else new_request_id()
        token = bind_request_id(request_id)
        call.context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        try:
            yield
            # A handler that sets its own trailers replaces ours; put the id back.
            trailers = cast(Sequence[tuple[str, str | bytes]], tuple(call.context.trailing_metadata() or ()))
            if all(key != REQUEST_ID_HEADER for key, _ in trailers):
                call.context.set_trailing_metadata((*trailers, (REQUEST_ID_HEADER, request_id)))
        finally:
            reset_request_id(token)


class TracingInterceptor(ScopedInterceptor):
    """Opens a SERVER span per call, continuing the caller's trace from W3C ``traceparent`` metadata."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        """Create the interceptor.

        Args:
            tracer_provider: Where spans go; the global provider when None.
        """
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Run the call inside its span and record the final status on it."""
        service, method = split_method(call.method)
        attributes: dict[str, str] = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        request_id = current_request_id()
        if request_id is not None:
            attributes[REQUEST_ID_ATTRIBUTE] = request_id
        parent = propagate.extract(_text_metadata(call.context))
        with self._tracer.start_as_current_span(
            call.method.lstrip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            error: BaseException | None = None
            try:
                yield
            except BaseException as exc:
                error = exc
                raise
            finally:
                code = final_code(call.context, error)
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_ERROR_CODES:
                    span.set_status(Status(StatusCode.ERROR, code.name))


class MetricsInterceptor(ScopedInterceptor):
    """Counts calls and measures their latency by service, method and status code."""

    def __init__(self, rpc_metrics: RpcMetrics) -> None:
        """Create the interceptor.

        Args:
            rpc_metrics: Where to record (``Metrics.rpc``).
        """
        self._metrics = rpc_metrics

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Record the call's start, end, status and duration."""
        service, method = split_method(call.method)
        self._metrics.call_started(service, method)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            code = final_code(call.context, error)
            self._metrics.call_finished(service, method, code, time.perf_counter() - started)


class AccessLogInterceptor(ScopedInterceptor):
    """Writes one log event per call: method, status code and duration (never request payloads)."""

    def __init__(self, quiet_prefixes: Sequence[str] = QUIET_METHOD_PREFIXES) -> None:
        """Create the interceptor.

        Args:
            quiet_prefixes: Methods starting with one of these are logged at debug level.
        """
        self._log = get_logger("radguard.rpc")
        self._quiet = tuple(quiet_prefixes)

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Log the call once it has a final status."""
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            code = final_code(call.context, error)
            if call.method.startswith(self._quiet):
                level = logging.DEBUG
            elif code in SERVER_ERROR_CODES:
                level = logging.ERROR
            else:
                level = logging.INFO
            self._log.log(
                level,
                "rpc",
                method=call.method,
                code=code.name,
                duration_ms=round((time.perf_counter() - started) * 1000.0, 3),
            )


class ErrorInterceptor(ScopedInterceptor):
    """Turns domain errors into their status and anything unexpected into a detail-free INTERNAL."""

    def __init__(self) -> None:
        """Create the interceptor."""
        self._log = get_logger("radguard.rpc")

    @asynccontextmanager
    async def scope(self, call: CallInfo) -> AsyncIterator[None]:
        """Map what the handler raises to a status."""
        try:
            yield
        except DomainError as error:
            await call.context.abort(status_for(error), bounded_message(error.message))
        except grpc.aio.AbortError:
            raise
        except NotImplementedError:
            await call.context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
        except CONNECTION_LOST as error:
            lost = Unavailable("postgres")
            self._log.warning("rpc.dependency_lost", method=call.method, error_type=type(error).__qualname__)
            await call.context.abort(status_for(lost), lost.message)
        except Exception as error:
            # The text stays in the server log; the caller gets the request id to quote.
            self._log.error(
                "rpc.unexpected_error",
                method=call.method,
                error_type=type(error).__qualname__,
                exc_info=error,
            )
            trace.get_current_span().add_event("exception", {"exception.type": type(error).__qualname__})
            await call.context.abort(grpc.StatusCode.INTERNAL, internal_error_message(current_request_id()))


class _ObservedCall:
    """One call's request id, span, metrics, access-log line and error mapping, entered as one scope.

    A plain class rather than five nested generator-based context managers: this runs on every call
    of every service, and the gateway's latency budget is about a millisecond.
    """

    __slots__ = (
        "_call",
        "_method",
        "_owner",
        "_request_id",
        "_service",
        "_span",
        "_span_cm",
        "_started",
        "_token",
    )

    def __init__(self, owner: ObservedCallInterceptor, call: CallInfo) -> None:
        self._owner = owner
        self._call = call
        self._service, self._method = split_method(call.method)

    async def __aenter__(self) -> None:
        owner, call = self._owner, self._call
        metadata = _text_metadata(call.context)
        incoming = metadata.get(REQUEST_ID_HEADER)
        request_id = incoming if incoming is not None and is_valid_request_id(incoming) else new_request_id()
        self._request_id = request_id
        self._token = bind_request_id(request_id)
        call.context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        parent = propagate.extract(metadata) if "traceparent" in metadata else None
        self._span_cm = owner.tracer.start_as_current_span(
            call.method.lstrip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": self._service,
                "rpc.method": self._method,
                REQUEST_ID_ATTRIBUTE: request_id,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = self._span_cm.__enter__()
        if owner.rpc_metrics is not None:
            owner.rpc_metrics.call_started(self._service, self._method)
        self._started = time.perf_counter()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        owner, call = self._owner, self._call
        error: BaseException | None = exc
        try:
            if isinstance(exc, DomainError):
                await call.context.abort(status_for(exc), bounded_message(exc.message))
            elif isinstance(exc, NotImplementedError):
                # A generated servicer base's method the service does not implement.
                await call.context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
            elif isinstance(exc, CONNECTION_LOST):
                # The database went away under a query no adapter mapped: the caller may retry.
                owner.log.warning("rpc.dependency_lost", method=call.method, error_type=type(exc).__qualname__)
                lost = Unavailable("postgres")
                await call.context.abort(status_for(lost), lost.message)
            elif exc is not None and isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
                owner.log.error(
                    "rpc.unexpected_error", method=call.method, error_type=type(exc).__qualname__, exc_info=exc
                )
                self._span.add_event("exception", {"exception.type": type(exc).__qualname__})
                await call.context.abort(grpc.StatusCode.INTERNAL, internal_error_message(self._request_id))
        except BaseException as mapped:  # the AbortError carrying the mapped status
            error = mapped
            raise
        finally:
            self._finish(error)
        return False

    def _finish(self, error: BaseException | None) -> None:
        owner, call = self._owner, self._call
        elapsed = time.perf_counter() - self._started
        code = final_code(call.context, error)
        try:
            if owner.rpc_metrics is not None:
                owner.rpc_metrics.call_finished(self._service, self._method, code, elapsed)
            self._span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERROR_CODES:
                self._span.set_status(Status(StatusCode.ERROR, code.name))
            if call.method.startswith(owner.quiet_prefixes):
                level = logging.DEBUG
            elif code in SERVER_ERROR_CODES:
                level = logging.ERROR
            else:
                level = owner.ok_level
            if owner.log_enabled(level):
                owner.log.log(level, "rpc", method=call.method, code=code.name, duration_ms=round(elapsed * 1000.0, 3))
            # A handler that sets its own trailers replaces ours; put the id back.
            trailers = cast(Sequence[tuple[str, str | bytes]], tuple(call.context.trailing_metadata() or ()))
            if all(key != REQUEST_ID_HEADER for key, _ in trailers):
                call.context.set_trailing_metadata((*trailers, (REQUEST_ID_HEADER, self._request_id)))
        finally:
            self._span_cm.__exit__(None, None, None)
            reset_request_id(self._token)


class ObservedCallInterceptor(ScopedInterceptor):
    """Request id, SERVER span, RPC metrics, access log and domain-error mapping in one scope per call.

    Behaves like the chain request id → tracing → metrics → access log → errors (the separate
    interceptors above), at a fraction of the per-call cost. A request that does not parse becomes
    INVALID_ARGUMENT inside this scope, so it is traced, counted and logged like any refused call.
    """

    refuse_undecodable = True

    def __init__(
        self,
        *,
        metrics: Metrics | None = None,
        tracer_provider: TracerProvider | None = None,
        quiet_prefixes: Sequence[str] = QUIET_METHOD_PREFIXES,
        ok_level: int = logging.INFO,
    ) -> None:
        """Create the interceptor.

        Args:
            metrics: Where RPC metrics go; none recorded when None.
            tracer_provider: Where server spans go; the global provider when None.
            quiet_prefixes: Methods logged at debug level only.
            ok_level: Log level of successful calls (busy data-plane services use DEBUG).
        """
        self.rpc_metrics = metrics.rpc if metrics is not None else None
        self.tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self.quiet_prefixes = tuple(quiet_prefixes)
        self.ok_level = ok_level
        self.log = get_logger("radguard.rpc")
        self._std_log = logging.getLogger("radguard.rpc")

    def log_enabled(self, level: int) -> bool:
        """Whether a line at ``level`` would be written (skips building it otherwise)."""
        return self._std_log.isEnabledFor(level)

    def scope(self, call: CallInfo) -> AbstractAsyncContextManager[None]:
        """The combined scope for one call."""
        return _ObservedCall(self, call)


def default_interceptors(
    *,
    metrics: Metrics | None = None,
    tracer_provider: TracerProvider | None = None,
    inner: Sequence[Interceptor] = (),
    ok_level: int = logging.INFO,
) -> list[Interceptor]:
    """Return radguard's interceptor chain, outermost first.

    Args:
        metrics: Record RPC metrics here; none recorded when None.
        tracer_provider: Where server spans go; the global provider when None.
        inner: Interceptors run inside the error mapping (e.g. authentication), so the domain errors
            they raise become statuses and are logged like any other.
        ok_level: Log level of successful calls' access-log lines.

    Returns:
        The combined request id → tracing → metrics → access log → errors interceptor, then ``inner``.
    """
    return [ObservedCallInterceptor(metrics=metrics, tracer_provider=tracer_provider, ok_level=ok_level), *inner]
