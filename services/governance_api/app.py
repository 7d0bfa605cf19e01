"""Wiring of the governance process: settings → pool, store, Triton, evidence, keyring → service →
relay, controller, servicer → server."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from governance.adapters.clock import SystemClock
from governance.domain.checkpoint import load_checkpoint_signer
from governance.domain.model import Rollout
from governance.domain.policy import POLICY_DIR, PolicyCatalog
from governance.ports import EvidenceSource, GovernanceStore, TritonControl
from governance.service import GovernanceService
from services.governance_api import servicer as governance_api
from services.governance_api.adapters.checkpoint_file import CheckpointFile
from services.governance_api.adapters.findings import PostgresFindings
from services.governance_api.adapters.findings_kafka import FindingsFeed
from services.governance_api.adapters.keyring import KeyringFile
from services.governance_api.adapters.notifying import CommitSignal, NotifyingStore
from services.governance_api.adapters.relay import GovernanceOutboxRelay, RelayTopics
from services.governance_api.adapters.routes_topic import RouteRevisionFloor
from services.governance_api.adapters.triton import TritonModelControl
from services.governance_api.auth import BearerAuthInterceptor, TokenStore
from services.governance_api.checkpoints import CheckpointPublisher, CheckpointTuning
from services.governance_api.controller import RolloutController
from services.governance_api.servicer import GovernanceServicer
from services.governance_api.settings import GovernanceSettings
from services.runtime.config import ConfigError
from services.runtime.kafka import AsyncKafkaConsumer, AsyncKafkaProducer, OutgoingRecord, RecordMetadata
from services.runtime.metrics import Metrics
from services.runtime.outbox import RelayTuning, SendMany
from services.runtime.postgres import create_pool_from_settings, is_ready
from services.runtime.server import RadguardServer
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


@dataclass
class Governance:
    """The assembled governance process: its server and the parts tests look at."""

    server: RadguardServer
    service: GovernanceService
    relay: GovernanceOutboxRelay
    controller: RolloutController | None
    findings_feed: FindingsFeed | None
    pool: asyncpg.Pool
    signal: CommitSignal
    keyring: KeyringFile
    policies: PolicyCatalog
    checkpoints: CheckpointPublisher | None = None


class BreachKindsOf:
    """Callable: rollout → the finding kinds whose breach aborts it."""

    def __init__(self, policies: PolicyCatalog) -> None:
        """Read policies from ``policies``."""
        self._policies = policies

    def __call__(self, rollout: Rollout) -> Iterable[str]:
        """Kinds named by ``rollback.on_breach_finding_kinds`` of the rollout's policy."""
        name = rollout.policy_ref.partition("@")[0]
        policy = self._policies.get(name)
        return [str(kind) for kind in policy.rollback.on_breach_finding_kinds]


def _controller(
    settings: GovernanceSettings, service: GovernanceService, policies: PolicyCatalog
) -> tuple[RolloutController | None, FindingsFeed | None]:
    """The rollout controller and the findings feed that drives it (none when disabled)."""
    if not settings.controller_enabled:
        return None, None
    consumer = AsyncKafkaConsumer(
        [settings.findings_topic],
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        client_id=f"{settings.service_name}-{settings.instance_id}-controller",
        auto_offset_reset="latest",
        request_timeout_ms=settings.kafka_request_timeout_ms,
        bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
        security=settings,
    )
    controller = RolloutController(
        service,
        BreachKindsOf(policies),
        principal=settings.controller_principal,
        interval_s=settings.controller_interval_s,
    )
    return controller, FindingsFeed(consumer, controller.on_finding)


def _checkpoints(
    settings: GovernanceSettings, store: GovernanceStore, send_many: SendMany, signal: CommitSignal
) -> CheckpointPublisher | None:
    """The audit checkpoint publisher, woken by commits; None (with a warning) when no signing key is set."""
    if settings.audit_checkpoint_key_file is None:
        _log.warning("governance.audit_checkpoints_off", why="RADGUARD_AUDIT_CHECKPOINT_KEY_FILE is not set")
        return None
    try:
        signer = load_checkpoint_signer(settings.audit_checkpoint_key_file)
    except (OSError, ValueError) as error:
        raise ConfigError([f"RADGUARD_AUDIT_CHECKPOINT_KEY_FILE: {error}"]) from error
    publisher = CheckpointPublisher(
        store,
        signer,
        CheckpointFile(settings.audit_checkpoint_file),
        send_many,
        topic=settings.audit_topic,
        producer=f"{settings.service_name}/{settings.instance_id}",
        clock=SystemClock(),
        tuning=CheckpointTuning(interval_s=settings.audit_checkpoint_interval_s, every=settings.audit_checkpoint_every),
    )
    signal.subscribe(publisher.notify)
    return publisher


async def build_governance(  # noqa: PLR0915 - the composition root wires every part in one place
    settings: GovernanceSettings,
    *,
    metrics: Metrics | None = None,
    store: GovernanceStore | None = None,
    triton: TritonControl | None = None,
    evidence: EvidenceSource | None = None,
) -> Governance:
    """Open the pool and assemble (but do not start) the process.

    Args:
        settings: The process settings.
        metrics: The process's metrics registry.
        store: Governance state; the PostgreSQL store on the pool when None.
        triton: Triton's repository API; tritonclient over ``triton_grpc_url`` when None.
        evidence: Ledger and findings evidence; the PostgreSQL source on the pool when None.

    Raises:
        Unavailable: PostgreSQL cannot be reached.
    """
    from governance.adapters.evidence_postgres import PostgresEvidenceSource
    from governance.adapters.postgres import PostgresGovernanceStore

    metrics = metrics if metrics is not None else Metrics()
    pool = await create_pool_from_settings(settings)
    signal = CommitSignal()
    inner_store = store if store is not None else PostgresGovernanceStore(pool)
    aborted = metrics.counter("governance_rollouts_aborted", "Rollouts aborted (committed), by model", ["model"])
    notifying = NotifyingStore(inner_store, signal, on_abort=lambda model: aborted.labels(model).inc())
    triton_control = triton
    owned_triton: TritonModelControl | None = None
    if triton_control is None:
        owned_triton = TritonModelControl(
            settings.triton_grpc_url,
            settings.model_repo,
            load_timeout_s=settings.triton_load_timeout_s,
            request_timeout_s=settings.triton_request_timeout_s,
        )
        triton_control = owned_triton
    evidence_source = evidence if evidence is not None else PostgresEvidenceSource(pool)
    policies = PolicyCatalog(settings.policies_dir or POLICY_DIR)
    keyring = KeyringFile(settings.governance_keyring_file)
    service = GovernanceService(
        notifying,
        triton_control,
        evidence_source,
        policies,
        keyring.keyring,
        SystemClock(),
        route_revision_floor=RouteRevisionFloor(
            settings.kafka_bootstrap_servers, settings.routes_topic, security=settings
        ),
        profile_roots=(settings.model_repo, *settings.reference_roots),
    )

    producer = AsyncKafkaProducer.from_settings(settings)
    producer_started = False

    async def send_many(records: Sequence[OutgoingRecord]) -> list[RecordMetadata | Exception]:
        nonlocal producer_started
        if not producer_started:
            await producer.start()
            producer_started = True
        return await producer.send_many(records)

    relay = GovernanceOutboxRelay(
        pool,
        send_many,
        producer=f"{settings.service_name}/{settings.instance_id}",
        topics=RelayTopics(routes=settings.routes_topic, audit=settings.audit_topic),
        tuning=RelayTuning(
            batch=settings.outbox_batch,
            poll_s=settings.outbox_poll_s,
            retry_initial_s=settings.outbox_retry_initial_s,
            retry_max_s=settings.outbox_retry_max_s,
            retention_s=settings.outbox_retention_s,
        ),
        metrics=metrics,
    )
    signal.subscribe(relay.notify)
    checkpoints = _checkpoints(settings, inner_store, send_many, signal)

    controller, feed = _controller(settings, service, policies)

    tokens = TokenStore(settings.governance_tokens_file)
    server = RadguardServer(settings, metrics=metrics, interceptors=[BearerAuthInterceptor(tokens)])
    governance_api.register(
        server,
        GovernanceServicer(
            service,
            findings=PostgresFindings(pool),
            route_changes=signal.wait,
            default_page_size=settings.default_page_size,
            watch_poll_s=settings.watch_poll_s,
            ensure_signer=keyring.ensure,
        ),
    )

    async def postgres_ready() -> bool:
        return await is_ready(pool, settings.readiness_timeout_s)

    server.add_readiness_check("postgres", postgres_ready)
    if owned_triton is not None:
        server.add_readiness_check("triton", owned_triton.is_ready)

    async def stop_controller() -> None:
        if feed is not None:
            await feed.stop()
        if controller is not None:
            await controller.stop()
        if checkpoints is not None:
            await checkpoints.stop()

    async def close_producer() -> None:
        if producer_started:
            await producer.close(settings.kafka_close_timeout_s)

    async def close_triton() -> None:
        if owned_triton is not None:
            await owned_triton.close()

    # Hooks run after the server has drained, in this order.
    server.add_shutdown_hook(stop_controller, "rollout-controller")
    server.add_shutdown_hook(relay.stop, "outbox-relay")
    server.add_shutdown_hook(close_producer, "kafka-producer")
    server.add_shutdown_hook(close_triton, "triton")
    server.add_shutdown_hook(pool.close, "postgres-pool")
    return Governance(server, service, relay, controller, feed, pool, signal, keyring, policies, checkpoints)


async def start_governance(governance: Governance) -> None:
    """Start the relay, the checkpoint publisher and the controller, then the server."""
    governance.relay.start()
    if governance.checkpoints is not None:
        governance.checkpoints.start()
    if governance.controller is not None:
        governance.controller.start()
    if governance.findings_feed is not None:
        governance.findings_feed.start()
    await governance.server.start()
