"""A GovernanceStore decorator that tells this process when a transaction has committed.

Every governance command is one store transaction. Wrapping the store lets the process react the moment
one commits, without the service knowing: the outbox relay publishes at once (a route change reaches
Kafka in milliseconds, not at the next poll) and WatchRoutes streams wake up. Other instances'
commits are still seen by the relay's and the watchers' polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from governance.domain.model import OutboxMessage, Rollout, RolloutStatus
from governance.ports import GovernanceStore, GovernanceTx
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


class CommitSignal:
    """Listeners called after each commit, plus an awaitable "something committed" for streams."""

    def __init__(self) -> None:
        """Create a signal with no listeners."""
        self._listeners: list[Callable[[], None]] = []
        self._generation = 0
        self._changed: asyncio.Condition | None = None

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (quick, non-blocking) after every commit."""
        self._listeners.append(listener)

    def fire(self) -> None:
        """A transaction committed: run the listeners and wake the waiters."""
        self._generation += 1
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                _log.exception("governance.commit_listener_failed")
        if self._changed is not None:
            condition = self._changed

            async def wake() -> None:
                async with condition:
                    condition.notify_all()

            asyncio.get_running_loop().create_task(wake())

    async def wait(self, timeout_s: float) -> None:
        """Return after the next commit, or after ``timeout_s`` without one."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        seen = self._generation
        with contextlib.suppress(TimeoutError):
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._generation != seen), timeout_s)


class _WatchedTx:
    """Forwards everything to the real transaction, noting whether it queued outbox messages and which
    rollouts it aborted (their models)."""

    def __init__(self, inner: GovernanceTx) -> None:
        self._inner = inner
        self.enqueued = False
        self.aborted: list[str] = []

    async def enqueue(self, message: OutboxMessage) -> None:
        self.enqueued = True
        await self._inner.enqueue(message)

    async def update_rollout(self, rollout: Rollout, expected_row_version: int) -> Rollout:
        stored = await self._inner.update_rollout(rollout, expected_row_version)
        if rollout.status is RolloutStatus.ABORTED:
            self.aborted.append(rollout.model_name)
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class NotifyingStore:
    """Delegates to a store; fires a :class:`CommitSignal` after a transaction that queued outbox rows commits.

    Only writing transactions fire: reads (WatchRoutes, the controller's ticks) would otherwise wake
    each other in a loop.
    """

    def __init__(
        self, inner: GovernanceStore, signal: CommitSignal, on_abort: Callable[[str], None] | None = None
    ) -> None:
        """Wrap ``inner``; ``signal`` fires after each of its transactions commits.

        ``on_abort`` is called with the model's name for each rollout a committed transaction aborted
        (an operator's AbortRollout, a breach finding, a failed gate), e.g. to count it for an alert.
        """
        self.inner = inner
        self.signal = signal
        self.on_abort = on_abort

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[GovernanceTx]:
        """The inner store's transaction; the signal fires once it has committed (if it queued messages)."""
        async with self.inner.transaction() as tx:
            watched = _WatchedTx(tx)
            yield cast(GovernanceTx, watched)
        if self.on_abort is not None:
            for model in watched.aborted:
                self.on_abort(model)
        if watched.enqueued:
            self.signal.fire()
