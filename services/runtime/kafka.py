"""Asyncio wrappers over kafka-python's synchronous producer, consumer and admin client.

kafka-python blocks, so each producer and consumer owns one worker thread and every call into the
client happens on it; the event loop only awaits. One thread per producer also keeps records in the
order ``send`` was called, which keeps a study's events ordered within its partition.

Trace context travels in record headers (W3C ``traceparent`` through the global propagator):
:meth:`AsyncKafkaProducer.send` injects it and consumers call :func:`extract_context` to continue the
trace. Retriable client failures (broker unreachable, timeouts) surface as
:class:`services.runtime.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self

import kafka.errors
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.structs import OffsetAndMetadata, TopicPartition
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from services.runtime.config import ServiceSettings
from services.runtime.errors import Unavailable
from services.runtime.telemetry import get_logger

__all__ = [
    "AsyncKafkaConsumer",
    "AsyncKafkaProducer",
    "ConsumedRecord",
    "Headers",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpecLike",
    "describe_topic_config",
    "ensure_topics",
    "extract_context",
    "inject_context",
    "list_topics",
]

#: Record headers as kafka-python takes and returns them.
Headers = Sequence[tuple[str, bytes]]
#: Called with newly assigned partitions; returns the offset to resume each from (omit to keep Kafka's).
AssignCallback = Callable[[frozenset[TopicPartition]], Coroutine[Any, Any, Mapping[TopicPartition, int]]]
#: Called with partitions about to be taken away (e.g. to flush state first).
RevokeCallback = Callable[[frozenset[TopicPartition]], Coroutine[Any, Any, None]]

#: Longest wait between reconnection attempts to a broker. kafka-python's default (30 s) doubles the wait on
#: every failed attempt, so a client that lived through a broker restart could stay away for half a minute
#: after the broker was back; routes, findings and events should resume within a couple of seconds.
RECONNECT_BACKOFF_MAX_MS = 2000

_log = get_logger(__name__)


def _unavailable(error: Exception) -> Exception:
    """Translate retriable client failures into the domain error; leave the others as they are."""
    if getattr(error, "retriable", False):
        return Unavailable("kafka", f"{type(error).__name__}: {error}")
    return error


# --- trace context in headers ------------------------------------------------------------------


def inject_context(headers: Headers | None = None, context: Context | None = None) -> list[tuple[str, bytes]]:
    """Return ``headers`` plus the trace context of ``context`` (the current one by default).

    Headers the caller already set win over injected ones of the same name.

    Args:
        headers: Headers to keep.
        context: The OpenTelemetry context to propagate.

    Returns:
        A new header list.
    """
    result = list(headers or ())
    present = {name for name, _ in result}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    result.extend((name, value.encode("utf-8")) for name, value in carrier.items() if name not in present)
    return result


def extract_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """Return the OpenTelemetry context carried by a record's headers.

    Use it as the parent of the consumer's span:
    ``tracer.start_as_current_span("process", context=extract_context(record.headers))``.

    Args:
        headers: The record's headers; undecodable values are ignored.

    Returns:
        The extracted context (an empty one when the headers carry none).
    """
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            continue
        try:
            carrier[name.lower()] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return propagate.extract(carrier, context=Context())


# --- producer ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where the broker stored a record.

    Attributes:
        topic: Topic name.
        partition: Partition number.
        offset: Offset within the partition.
        timestamp_ms: Record timestamp (create or log-append time), milliseconds since the epoch.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record for :meth:`AsyncKafkaProducer.send_many`."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def _settle(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    # The awaiting task may have been cancelled meanwhile; then nobody wants the outcome.
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class AsyncKafkaProducer:
    """An idempotent, acks=all producer with an asyncio interface.

    ``send`` resolves once the broker acknowledged the record. Cancelling a ``send`` stops the wait,
    not the delivery: the record may still be written.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        client_id: str = "radguard",
        linger_ms: int = 5,
        batch_size_bytes: int = 64 * 1024,
        max_request_bytes: int = 1024 * 1024,
        request_timeout_ms: int = 30_000,
        delivery_timeout_ms: int = 120_000,
        max_block_ms: int = 10_000,
        bootstrap_timeout_ms: int = 10_000,
        compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Configure the producer; :meth:`start` connects.

        Args:
            bootstrap_servers: ``host:port`` entries, comma-separated or as a list.
            client_id: Shown in broker logs and quotas.
            linger_ms: Time a record may wait for others to share its batch.
            batch_size_bytes: Upper bound of one partition batch.
            max_request_bytes: Largest request (and so largest record) sent.
            request_timeout_ms: Time one broker request may take.
            delivery_timeout_ms: Time from ``send`` to acknowledgement, retries included.
            max_block_ms: Time ``send`` may wait for metadata or buffer space.
            bootstrap_timeout_ms: Time :meth:`start` waits for the first broker.
            compression_type: Batch compression, none by default.
            tracer_provider: Where PRODUCER spans go; the global provider when None.
        """
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": linger_ms,
            "batch_size": batch_size_bytes,
            "max_request_size": max_request_bytes,
            "request_timeout_ms": request_timeout_ms,
            "delivery_timeout_ms": delivery_timeout_ms,
            "max_block_ms": max_block_ms,
            "bootstrap_timeout_ms": bootstrap_timeout_ms,
            "compression_type": compression_type,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")
        self._producer: KafkaProducer | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: ServiceSettings, *, tracer_provider: TracerProvider | None = None) -> Self:
        """Build a producer from the process settings.

        Args:
            settings: Kafka addresses, batching and timeouts.
            tracer_provider: Where PRODUCER spans go; the global provider when None.
        """
        return cls(
            settings.kafka_bootstrap_servers,
            client_id=settings.service_name,
            linger_ms=settings.kafka_linger_ms,
            batch_size_bytes=settings.kafka_batch_size_bytes,
            max_request_bytes=settings.kafka_max_request_bytes,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            delivery_timeout_ms=settings.kafka_delivery_timeout_ms,
            max_block_ms=settings.kafka_max_block_ms,
            bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
            tracer_provider=tracer_provider,
        )

    async def start(self) -> None:
        """Connect to the cluster.

        Raises:
            Unavailable: No broker answered within ``bootstrap_timeout_ms``.
        """
        if self._producer is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._producer = await loop.run_in_executor(self._executor, lambda: KafkaProducer(**self._config))
        except kafka.errors.KafkaError as error:
            raise _unavailable(error) from error

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _require_producer(self) -> KafkaProducer:
        if self._producer is None or self._closed:
            raise RuntimeError("the producer is not started or already closed")
        return self._producer

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """Send one record and wait for the broker's acknowledgement.

        Args:
            topic: Destination topic.
            value: Serialized payload (a protobuf message's bytes).
            key: Partitioning key; records with equal keys stay in order.
            headers: Extra headers; the current trace context is added.
            partition: Explicit partition instead of the key's.
            timestamp_ms: Record timestamp; now by default.

        Returns:
            Where the record was stored.

        Raises:
            Unavailable: The cluster could not be reached in time (retriable failures).
            kafka.errors.KafkaError: Other failures, e.g. a record larger than allowed.
        """
        producer = self._require_producer()
        loop = asyncio.get_running_loop()
        with self._tracer.start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.operation.type": "send",
            },
        ) as span:
            record_headers = inject_context(headers)
            acked: asyncio.Future[Any] = loop.create_future()

            def on_success(metadata: Any) -> None:
                loop.call_soon_threadsafe(_settle, acked, metadata)

            def on_error(error: BaseException) -> None:
                loop.call_soon_threadsafe(_settle, acked, None, error)

            def submit() -> None:
                future = producer.send(
                    topic,
                    value=value,
                    key=key,
                    headers=record_headers,
                    partition=partition,
                    timestamp_ms=timestamp_ms,
                )
                future.add_callback(on_success)
                future.add_errback(on_error)

            try:
                await loop.run_in_executor(self._executor, submit)
                metadata = await acked
            except kafka.errors.KafkaError as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise _unavailable(error) from error
            span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
            span.set_attribute("messaging.kafka.offset", metadata.offset)
            return RecordMetadata(
                topic=metadata.topic,
                partition=metadata.partition,
                offset=metadata.offset,
                timestamp_ms=metadata.timestamp,
            )

    async def send_many(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata | Exception]:
        """Send a batch with one hop to the producer thread and wait for every acknowledgement.

        The bulk path for relays (the gateway's event spool): records keep the headers they carry —
        including the trace context captured when the event was made — and no span is opened per
        record. Each record's outcome is reported separately, in order; a failed record does not fail
        the others. Waiting is bounded by the producer's delivery timeout.

        Args:
            records: What to send, in order.

        Returns:
            Per record, its metadata or the exception it failed with (retriable failures as
            :class:`Unavailable`).
        """
        producer = self._require_producer()

        def submit_and_wait() -> list[RecordMetadata | Exception]:
            futures: list[Any] = []
            for rec in records:
                try:
                    futures.append(producer.send(rec.topic, value=rec.value, key=rec.key, headers=list(rec.headers)))
                except kafka.errors.KafkaError as error:
                    futures.append(error)
            outcomes: list[RecordMetadata | Exception] = []
            for future in futures:
                if isinstance(future, Exception):
                    outcomes.append(_unavailable(future) if isinstance(future, kafka.errors.KafkaError) else future)
                    continue
                try:
                    meta = future.get()
                except kafka.errors.KafkaError as error:
                    outcomes.append(_unavailable(error))
                    continue
                outcomes.append(RecordMetadata(meta.topic, meta.partition, meta.offset, meta.timestamp))
            return outcomes

        return await asyncio.get_running_loop().run_in_executor(self._executor, submit_and_wait)

    async def probe(self, timeout_s: float = 2.0) -> bool:
        """Ask the cluster for fresh metadata; True when a broker answered within ``timeout_s``.

        Runs on a thread of its own, not the producer's: while the broker is away the producer's thread
        may sit in a long delivery wait, and an outage should show within seconds.

        Args:
            timeout_s: How long a broker may take to answer.
        """
        producer = self._require_producer()

        def ask() -> bool:
            answered = threading.Event()
            future = producer._metadata.request_update()
            future.add_both(lambda *_: answered.set())
            producer._sender.wakeup()
            return answered.wait(timeout_s) and bool(future.succeeded())

        return await asyncio.to_thread(ask)

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every record sent so far is acknowledged or failed.

        Args:
            timeout_s: Upper bound of the wait; none by default.

        Raises:
            Unavailable: The timeout passed first.
        """
        producer = self._require_producer()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, producer.flush, timeout_s)
        except kafka.errors.KafkaError as error:
            raise _unavailable(error) from error

    async def close(self, timeout_s: float | None = 10.0) -> None:
        """Flush pending records (up to ``timeout_s``), disconnect and end the worker thread.

        Args:
            timeout_s: Time pending records get; records not acknowledged by then fail.
        """
        if self._closed:
            return
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, producer.close, timeout_s)
        self._executor.shutdown(wait=False)


# --- consumer ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """One record read from Kafka.

    Attributes:
        topic: Topic name.
        partition: Partition number.
        offset: Offset within the partition; commit ``offset + 1`` once it is processed.
        key: Key bytes, if any.
        value: Payload bytes (None for a tombstone).
        headers: Record headers, including the trace context.
        timestamp_ms: Record timestamp, milliseconds since the epoch.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    timestamp_ms: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        """The record's topic and partition."""
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """Return the first header called ``name``, or None."""
        return next((value for key, value in self.headers if key == name), None)


class _RebalanceBridge(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs the owner's async callbacks on its event loop while kafka-python waits for them.

    kafka-python calls these from its own network thread and holds the group join until they
    return, so the callbacks must be quick (e.g. read the stored offsets), well within the session
    timeout. They must not call the consumer's own methods: its worker thread is busy in ``poll``.
    """

    def __init__(
        self,
        owner: AsyncKafkaConsumer,
        loop: asyncio.AbstractEventLoop,
        on_assign: AssignCallback | None,
        on_revoke: RevokeCallback | None,
        timeout_s: float,
    ) -> None:
        self._owner = owner
        self._loop = loop
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._timeout_s = timeout_s

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        partitions = frozenset(revoked)
        if self._on_revoke is not None and partitions:
            asyncio.run_coroutine_threadsafe(self._on_revoke(partitions), self._loop).result(self._timeout_s)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = frozenset(assigned)
        if self._on_assign is None or not partitions:
            return
        future = asyncio.run_coroutine_threadsafe(self._on_assign(partitions), self._loop)
        offsets = future.result(self._timeout_s)
        consumer = self._owner._consumer
        if consumer is None:
            return
        for partition, offset in offsets.items():
            consumer.seek(partition, offset)


class AsyncKafkaConsumer:
    """A consumer with an asyncio interface; by default in a group, committing only when told to.

    Without a ``group_id`` it reads every partition of its topics and commits nothing (each process
    sees the whole stream, e.g. the route table every gateway applies).
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str | None,
        client_id: str = "radguard",
        enable_auto_commit: bool = False,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed",
        max_poll_records: int = 500,
        session_timeout_ms: int = 45_000,
        max_poll_interval_ms: int = 300_000,
        request_timeout_ms: int = 30_000,
        bootstrap_timeout_ms: int = 10_000,
        on_assign: AssignCallback | None = None,
        on_revoke: RevokeCallback | None = None,
        rebalance_callback_timeout_s: float = 30.0,
        metadata_max_age_ms: int = 300_000,
        partitions_wait_s: float = 0.0,
        rejoin_unassigned_after_s: float | None = None,
    ) -> None:
        """Configure the consumer; :meth:`start` connects and subscribes.

        Args:
            topics: Topics to read.
            bootstrap_servers: ``host:port`` entries, comma-separated or as a list.
            group_id: Consumer group; None reads all partitions without a group.
            client_id: Shown in broker logs.
            enable_auto_commit: Commit positions periodically in the background. Off by default:
                commit with :meth:`commit` after processing (or store offsets yourself).
            auto_offset_reset: Where to start without a committed offset.
            isolation_level: ``read_committed`` skips records of aborted transactions.
            max_poll_records: Default upper bound of one :meth:`getmany`.
            session_timeout_ms: Time without heartbeats before the group evicts this member.
            max_poll_interval_ms: Longest gap between polls before the group evicts this member.
            request_timeout_ms: Time one broker request may take.
            bootstrap_timeout_ms: Time :meth:`start` waits for the first broker.
            on_assign: Async callback on assignment returning offsets to seek to (e.g. the offsets
                stored with the data in PostgreSQL). See :class:`_RebalanceBridge` for its limits.
            on_revoke: Async callback before partitions are taken away.
            rebalance_callback_timeout_s: Time each callback may take.
            metadata_max_age_ms: Longest time between two refreshes of the cluster metadata (kafka-python's
                default, 5 minutes); a topic that gets partitions later is noticed at the next refresh.
            partitions_wait_s: In a group, how long :meth:`start` waits, after subscribing, until the
                client's metadata lists partitions of every subscribed topic (0: not at all). kafka-python
                records the metadata its first join was based on; joining before that metadata lists the
                topics makes the next refresh start a second rebalance at once, and kafka-python 3.0 can
                lose that rebalance's assignment when the poll that started it times out (the member then
                holds no partitions until something else triggers a rebalance). Past the wait the consumer
                goes on and logs the topics still without partitions.
            rejoin_unassigned_after_s: In a group, leave and rejoin when no partition has been assigned for
                this long (None: never). A safety net for the lost assignment above; only for groups that
                have at least as many partitions as members, where an empty assignment is never right.
        """
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        self._topics = tuple(topics)
        self._group_id = group_id
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "group_id": group_id,
            "enable_auto_commit": enable_auto_commit and group_id is not None,
            "auto_offset_reset": auto_offset_reset,
            "isolation_level": isolation_level,
            "max_poll_records": max_poll_records,
            "session_timeout_ms": session_timeout_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "request_timeout_ms": request_timeout_ms,
            "bootstrap_timeout_ms": bootstrap_timeout_ms,
            "metadata_max_age_ms": metadata_max_age_ms,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        self._partitions_wait_s = partitions_wait_s
        self._rejoin_unassigned_after_s = rejoin_unassigned_after_s
        self._unassigned_since: float | None = None
        self._listener: _RebalanceBridge | None = None
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._callback_timeout_s = rebalance_callback_timeout_s
        # KafkaConsumer is not thread-safe: every call to it happens on this one thread.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._consumer: KafkaConsumer | None = None
        # Next offset to hand out per partition, and the records behind the high watermarks (see lag_records).
        self._next_offsets: dict[TopicPartition, int] = {}
        self._lag_records = 0
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        topics: Sequence[str],
        group_id: str | None,
        *,
        on_assign: AssignCallback | None = None,
        on_revoke: RevokeCallback | None = None,
        metadata_max_age_ms: int = 300_000,
        partitions_wait_s: float = 0.0,
        rejoin_unassigned_after_s: float | None = None,
    ) -> Self:
        """Build a consumer from the process settings.

        Args:
            settings: Kafka addresses and timeouts.
            topics: Topics to read.
            group_id: Consumer group, or None for a group-less reader of all partitions.
            on_assign: See :meth:`__init__`.
            on_revoke: See :meth:`__init__`.
            metadata_max_age_ms: See :meth:`__init__`.
            partitions_wait_s: See :meth:`__init__`.
            rejoin_unassigned_after_s: See :meth:`__init__`.
        """
        return cls(
            topics,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group_id,
            client_id=settings.service_name,
            max_poll_records=settings.kafka_max_poll_records,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
            on_assign=on_assign,
            on_revoke=on_revoke,
            metadata_max_age_ms=metadata_max_age_ms,
            partitions_wait_s=partitions_wait_s,
            rejoin_unassigned_after_s=rejoin_unassigned_after_s,
        )

    def _await_partitions(self, consumer: KafkaConsumer) -> None:
        # After subscribe: every full metadata fetch (topics()) also updates the snapshot that kafka-python's
        # coordinator compares its assignment with. The listener that updates it runs just after the fetch
        # returns, so one more fetch once all topics are there makes sure it ran. Worker thread only.
        deadline = time.monotonic() + self._partitions_wait_s
        while True:
            consumer.topics()
            missing = [topic for topic in self._topics if not consumer.partitions_for_topic(topic)]
            if not missing:
                consumer.topics()
                return
            if time.monotonic() >= deadline:
                _log.warning(
                    "kafka.consumer_topics_without_partitions", topics=missing, waited_s=self._partitions_wait_s
                )
                return
            time.sleep(0.1)

    async def _run(self, fn: Callable[[KafkaConsumer], Any]) -> Any:
        consumer = self._consumer
        if consumer is None or self._closed:
            raise RuntimeError("the consumer is not started or already closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, consumer)
        except kafka.errors.KafkaError as error:
            raise _unavailable(error) from error

    async def start(self) -> None:
        """Connect and subscribe (or, without a group, assign every partition the topics have now).

        A failed start may be retried.

        Raises:
            Unavailable: No broker answered within ``bootstrap_timeout_ms``, or (without a group) a
                topic has no partitions.
        """
        if self._consumer is not None:
            return
        loop = asyncio.get_running_loop()
        listener = _RebalanceBridge(self, loop, self._on_assign, self._on_revoke, self._callback_timeout_s)
        self._listener = listener

        def build() -> KafkaConsumer:
            consumer = KafkaConsumer(**self._config)
            if self._group_id is not None:
                consumer.subscribe(list(self._topics), listener=listener)
                if self._partitions_wait_s > 0:
                    self._await_partitions(consumer)
            else:
                partitions: list[TopicPartition] = []
                for topic in self._topics:
                    numbers = sorted(consumer.partitions_for_topic(topic))
                    if not numbers:
                        # Reading nothing forever would hide the problem; the caller may retry later.
                        consumer.close(autocommit=False)
                        raise Unavailable("kafka", f"topic {topic!r} has no partitions (does it exist?)")
                    partitions += [TopicPartition(topic, number) for number in numbers]
                consumer.assign(partitions)
            return consumer

        try:
            self._consumer = await loop.run_in_executor(self._executor, build)
        except kafka.errors.KafkaError as error:
            raise _unavailable(error) from error
        _log.info("kafka.consumer_started", topics=list(self._topics), group_id=self._group_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def getmany(self, timeout_s: float = 1.0, max_records: int | None = None) -> list[ConsumedRecord]:
        """Wait up to ``timeout_s`` for records and return those available, in offset order per partition.

        Args:
            timeout_s: Longest wait when nothing is buffered.
            max_records: Upper bound; ``max_poll_records`` by default.

        Returns:
            The records (possibly none).
        """

        def poll(consumer: KafkaConsumer) -> list[ConsumedRecord]:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
            if self._rejoin_unassigned_after_s is not None and self._group_id is not None:
                self._rejoin_if_unassigned(consumer)
            self._note_lag(consumer, batches)
            return [
                ConsumedRecord(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    value=record.value,
                    headers=tuple((name, value) for name, value in record.headers or ()),
                    timestamp_ms=record.timestamp,
                )
                for records in batches.values()
                for record in records
            ]

        result: list[ConsumedRecord] = await self._run(poll)
        return result

    def _note_lag(self, consumer: KafkaConsumer, batches: Mapping[TopicPartition, Sequence[Any]]) -> None:
        # Runs on the consumer's thread after each poll. The high watermark comes with every fetch response
        # (no extra request); partitions not fetched yet, or never handed out, do not count.
        for partition, records in batches.items():
            if records:
                self._next_offsets[partition] = records[-1].offset + 1
        assigned = consumer.assignment()
        for partition in [p for p in self._next_offsets if p not in assigned]:
            del self._next_offsets[partition]
        lag = 0
        for partition, next_offset in self._next_offsets.items():
            highwater = consumer.highwater(partition)
            if highwater is not None:
                lag += max(0, highwater - next_offset)
        self._lag_records = lag

    @property
    def lag_records(self) -> int:
        """Records on the assigned partitions not yet handed out by :meth:`getmany`, as of the last poll.

        High watermark minus the next offset, summed over the partitions this consumer has read from; a
        transaction's commit marker counts as one record, so a caught-up transactional topic reads a few.
        """
        return self._lag_records

    def _rejoin_if_unassigned(self, consumer: KafkaConsumer) -> None:
        # Worker thread only. Leaving resets the member's generation, so the next poll joins afresh.
        now = time.monotonic()
        if consumer.assignment():
            self._unassigned_since = None
            return
        if self._unassigned_since is None:
            self._unassigned_since = now
            return
        assert self._rejoin_unassigned_after_s is not None
        if now - self._unassigned_since < self._rejoin_unassigned_after_s:
            return
        _log.warning("kafka.consumer_rejoining_unassigned", topics=list(self._topics), group_id=self._group_id)
        self._unassigned_since = now
        consumer.unsubscribe()
        consumer.subscribe(list(self._topics), listener=self._listener)
        if self._partitions_wait_s > 0:
            self._await_partitions(consumer)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit offsets to the group synchronously.

        Args:
            offsets: Next offset to read per partition (last processed offset + 1); by default the
                positions after everything returned so far.
        """
        if self._group_id is None:
            raise RuntimeError("a consumer without a group has nothing to commit to")
        commit_offsets = (
            None
            if offsets is None
            else {partition: OffsetAndMetadata(offset, "", -1) for partition, offset in offsets.items()}
        )
        await self._run(lambda consumer: consumer.commit(commit_offsets))

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make the next :meth:`getmany` read ``partition`` from ``offset``.

        Args:
            partition: An assigned partition.
            offset: The offset of the next record to read.
        """
        self._next_offsets[partition] = offset
        await self._run(lambda consumer: consumer.seek(partition, offset))

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read the given partitions (all assigned ones by default) from their first offset."""
        for partition in partitions or tuple(self._next_offsets):
            self._next_offsets.pop(partition, None)
        await self._run(lambda consumer: consumer.seek_to_beginning(*partitions))

    async def at_end(self) -> bool:
        """True when this consumer's position is at the end of every assigned partition (nothing left to read).

        A partition's end is its high watermark (the last committed offset for ``read_committed``), asked of
        the broker now; a consumer with nothing assigned is not at the end of anything.
        """

        def check(consumer: KafkaConsumer) -> bool:
            partitions = list(consumer.assignment())
            if not partitions:
                return False
            ends = consumer.end_offsets(partitions)
            return all(consumer.position(tp) >= ends[tp] for tp in partitions)

        return bool(await self._run(check))

    async def assignment(self) -> frozenset[TopicPartition]:
        """Return the partitions currently assigned to this consumer."""
        assigned: set[TopicPartition] = await self._run(lambda consumer: consumer.assignment())
        return frozenset(assigned)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Leave the group, disconnect and end the worker thread.

        Args:
            timeout_s: Time the orderly close may take.
        """
        if self._closed:
            return
        self._closed = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            timeout_ms = int(timeout_s * 1000)
            await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: consumer.close(autocommit=False, timeout_ms=timeout_ms)
            )
        self._executor.shutdown(wait=False)


# --- admin -------------------------------------------------------------------------------------


class TopicSpecLike(Protocol):
    """What :func:`ensure_topics` needs to know about a topic."""

    @property
    def name(self) -> str:
        """Topic name."""
        ...

    @property
    def partitions(self) -> int:
        """Partition count."""
        ...

    @property
    def configs(self) -> Mapping[str, str]:
        """Topic configs, e.g. ``{"cleanup.policy": "compact"}``."""
        ...


def _admin(bootstrap_servers: str | Sequence[str], bootstrap_timeout_ms: int) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="radguard-admin",
            bootstrap_timeout_ms=bootstrap_timeout_ms,
        )
    except kafka.errors.KafkaError as error:
        raise _unavailable(error) from error


def ensure_topics(
    bootstrap_servers: str | Sequence[str],
    specs: Iterable[TopicSpecLike],
    *,
    replication_factor: int = 1,
    bootstrap_timeout_ms: int = 10_000,
    timeout_ms: int = 30_000,
) -> list[str]:
    """Create the topics that do not exist yet (blocking; call via ``asyncio.to_thread`` from async code).

    Existing topics are left as they are, whatever their partitions or configs.

    Args:
        bootstrap_servers: ``host:port`` entries.
        specs: Topics with their partition counts and configs.
        replication_factor: Replicas per partition (1 on a one-node cluster).
        bootstrap_timeout_ms: Time to wait for the first broker.
        timeout_ms: Time the broker may take to create them.

    Returns:
        Names of the topics created by this call.

    Raises:
        Unavailable: The cluster could not be reached.
        kafka.errors.KafkaError: The broker refused a topic for another reason than existing already.
    """
    wanted = {spec.name: spec for spec in specs}
    if not wanted:
        return []
    admin = _admin(bootstrap_servers, bootstrap_timeout_ms)
    try:
        existing = set(admin.list_topics())
        missing = {name: spec for name, spec in wanted.items() if name not in existing}
        if not missing:
            return []
        request = {
            name: {
                "num_partitions": spec.partitions,
                "replication_factor": replication_factor,
                "configs": dict(spec.configs),
            }
            for name, spec in missing.items()
        }
        response = admin.create_topics(request, timeout_ms=timeout_ms, raise_errors=False, wait_for_metadata=True)
        created: list[str] = []
        for topic in response["topics"]:
            error_type = kafka.errors.for_code(topic["error_code"])
            if error_type is kafka.errors.NoError:
                created.append(topic["name"])
            elif error_type is not kafka.errors.TopicAlreadyExistsError:
                # Another process may have created it between our listing and our request: fine.
                raise error_type(f"creating topic {topic['name']!r}: {topic.get('error_message') or ''}")
        _log.info("kafka.topics_created", topics=sorted(created))
        return sorted(created)
    except kafka.errors.KafkaError as error:
        raise _unavailable(error) from error
    finally:
        admin.close()


def list_topics(bootstrap_servers: str | Sequence[str], *, bootstrap_timeout_ms: int = 10_000) -> list[str]:
    """Return the cluster's topic names, sorted (blocking).

    Args:
        bootstrap_servers: ``host:port`` entries.
        bootstrap_timeout_ms: Time to wait for the first broker.

    Raises:
        Unavailable: The cluster could not be reached.
    """
    admin = _admin(bootstrap_servers, bootstrap_timeout_ms)
    try:
        return sorted(admin.list_topics())
    except kafka.errors.KafkaError as error:
        raise _unavailable(error) from error
    finally:
        admin.close()


def describe_topic_config(
    bootstrap_servers: str | Sequence[str], topic: str, *, bootstrap_timeout_ms: int = 10_000
) -> dict[str, str]:
    """Return a topic's effective configuration values (blocking).

    Args:
        bootstrap_servers: ``host:port`` entries.
        topic: Topic name.
        bootstrap_timeout_ms: Time to wait for the first broker.

    Returns:
        Config name to value, defaults included (e.g. ``{"cleanup.policy": "compact", ...}``).
    """
    admin = _admin(bootstrap_servers, bootstrap_timeout_ms)
    try:
        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    except kafka.errors.KafkaError as error:
        raise _unavailable(error) from error
    finally:
        admin.close()
    configs = result.get("topic", {}).get(topic, {})
    return {name: str(entry.get("value")) for name, entry in configs.items() if entry.get("value") is not None}
