"""Committed rollout aborts are reported (for radguard_governance_rollouts_aborted_total); rolled-back ones not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from governance.adapters.memory import MemoryStore
from governance.domain import rollout as rollouts
from governance.domain.model import Rollout
from governance.domain.policy import PolicyCatalog
from services.governance_api.adapters.notifying import CommitSignal, NotifyingStore
from services.runtime.metrics import Metrics

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _running(rollout_id: str, model: str) -> Rollout:
    policy = PolicyCatalog().get("standard")
    return rollouts.start(rollout_id, model, "2", "1", policy.plan(), "ops", NOW, policy.ref, "canary")


async def _abort_in_tx(store: NotifyingStore, rollout: Rollout, fail: bool = False) -> None:
    async with store.transaction() as tx:
        await tx.insert_rollout(rollout)
        stored = await tx.update_rollout(rollouts.abort(rollout, "ops", "bad", NOW), rollout.row_version)
        assert stored.status.value == "aborted"
        if fail:
            raise RuntimeError("the transaction fails after the abort")


async def test_a_committed_abort_is_reported_with_its_model() -> None:
    seen: list[str] = []
    store = NotifyingStore(MemoryStore(), CommitSignal(), on_abort=seen.append)
    await _abort_in_tx(store, _running("r1", "chest_nodule"))
    assert seen == ["chest_nodule"]


async def test_an_abort_rolled_back_with_its_transaction_is_not_reported() -> None:
    seen: list[str] = []
    store = NotifyingStore(MemoryStore(), CommitSignal(), on_abort=seen.append)
    with pytest.raises(RuntimeError):
        await _abort_in_tx(store, _running("r1", "chest_nodule"), fail=True)
    assert seen == []


async def test_the_counter_reaches_the_metrics_endpoint() -> None:
    metrics = Metrics()
    aborted = metrics.counter("governance_rollouts_aborted", "Rollouts aborted (committed), by model", ["model"])
    store = NotifyingStore(MemoryStore(), CommitSignal(), on_abort=lambda model: aborted.labels(model).inc())
    await _abort_in_tx(store, _running("r1", "chest_nodule"))
    await _abort_in_tx(store, _running("r2", "chest_nodule"))
    text = metrics.render().decode()
    assert 'radguard_governance_rollouts_aborted_total{model="chest_nodule"} 2.0' in text
