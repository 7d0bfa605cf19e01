"""Wiring of the feedback process: settings → pool, producer, relay → handler → servicer → server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from services.feedback import servicer as feedback_api
from services.feedback.adapters.outbox import OutboxRelay
from services.feedback.adapters.postgres import LedgerPredictionLookup, PostgresReadStore
from services.feedback.attribution import ReadAttribution
from services.feedback.handlers import ReadRules, ReadsHandler
from services.feedback.servicer import FeedbackServicer
from services.feedback.settings import FeedbackSettings
from services.runtime.auth import CLINICIAN, OPERATOR, READING_SYSTEM, AccessPolicy, Denials, auth_interceptors
from services.runtime.kafka import AsyncKafkaProducer, OutgoingRecord, RecordMetadata
from services.runtime.metrics import Metrics
from services.runtime.outbox import RelayTuning
from services.runtime.postgres import create_pool_from_settings, is_ready
from services.runtime.pseudonyms import Pseudonymiser
from services.runtime.server import RadguardServer

_FEEDBACK = "/radguard.feedback.v1.Feedback/"
#: Reading systems (for the readers they name) and clinicians (as themselves) record reads; operators look.
ACCESS_POLICY = AccessPolicy(
    protected_prefixes=(_FEEDBACK,),
    allowed={
        f"{_FEEDBACK}RecordRead": frozenset({READING_SYSTEM, CLINICIAN}),
        f"{_FEEDBACK}GetRead": frozenset({READING_SYSTEM, CLINICIAN, OPERATOR}),
    },
)


@dataclass
class Feedback:
    """The assembled feedback service: its server and the parts tests look at."""

    server: RadguardServer
    handler: ReadsHandler
    relay: OutboxRelay
    pool: asyncpg.Pool


async def build_feedback(settings: FeedbackSettings, *, metrics: Metrics | None = None) -> Feedback:
    """Open the pool and assemble (but do not start) the service.

    Kafka is connected lazily by the relay: the service must record reads while Kafka is down.

    Raises:
        Unavailable: PostgreSQL cannot be reached.
    """
    metrics = metrics if metrics is not None else Metrics()
    pool = await create_pool_from_settings(settings)
    producer = AsyncKafkaProducer.from_settings(settings)
    producer_started = False

    async def send_many(records: Sequence[OutgoingRecord]) -> list[RecordMetadata | Exception]:
        nonlocal producer_started
        if not producer_started:
            await producer.start()
            producer_started = True
        return await producer.send_many(records)

    relay = OutboxRelay(
        pool,
        send_many,
        RelayTuning(
            batch=settings.outbox_batch,
            poll_s=settings.outbox_poll_s,
            retry_initial_s=settings.outbox_retry_initial_s,
            retry_max_s=settings.outbox_retry_max_s,
            retention_s=settings.outbox_retention_s,
        ),
        metrics=metrics,
    )
    store = PostgresReadStore(
        pool, topic=settings.reads_topic, producer=f"feedback/{settings.instance_id}", on_stored=relay.notify
    )
    lookup = LedgerPredictionLookup(pool) if settings.check_against_ledger else None
    handler = ReadsHandler(store, lookup, ReadRules(max_clock_skew=timedelta(seconds=settings.max_clock_skew_s)))

    metrics = metrics or Metrics()
    server = RadguardServer(settings, metrics=metrics, interceptors=auth_interceptors(settings, ACCESS_POLICY, metrics))
    attribution = ReadAttribution(
        Pseudonymiser(settings.pseudonym_key.get_secret_value().encode()), on_denied=Denials(metrics).record
    )
    feedback_api.register(server, FeedbackServicer(handler, attribution))

    async def postgres_ready() -> bool:
        # Kafka is deliberately not a readiness condition: reads are durable in the outbox while it is down.
        return await is_ready(pool, settings.readiness_timeout_s)

    server.add_readiness_check("postgres", postgres_ready)

    async def close_producer() -> None:
        if producer_started:
            await producer.close(settings.kafka_close_timeout_s)

    # Hooks run after the server has drained, in this order.
    server.add_shutdown_hook(relay.stop, "outbox-relay")
    server.add_shutdown_hook(close_producer, "kafka-producer")
    server.add_shutdown_hook(pool.close, "postgres-pool")
    return Feedback(server, handler, relay, pool)


async def start_feedback(feedback: Feedback) -> None:
    """Start the relay, then the server."""
    feedback.relay.start()
    await feedback.server.start()
