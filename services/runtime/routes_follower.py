"""Following a compacted topic from its beginning, without a consumer group: the routes topic's readers.

Every process that needs the current route tables (the gateway to route requests, the monitor runner to
know what is served) reads the whole compacted ``radguard.routes.v1`` topic and keeps reading. What a record
means is the caller's business: it passes ``apply``, which decodes and applies one record. This module owns
the rest: connecting with back-off, polling, surviving a broker outage, saying when the backlog was read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from services.runtime.kafka import AsyncKafkaConsumer, ConsumedRecord
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True)
class FollowTuning:
    """Timing of a follower.

    Attributes:
        poll_timeout_s: Longest wait for records in one poll.
        connect_retry_initial_s: First wait after a failed connection.
        connect_retry_max_s: Longest wait between connection attempts.
        read_retry_s: Wait after a failed poll (broker gone) before the next one.
    """

    poll_timeout_s: float = 0.2
    connect_retry_initial_s: float = 0.5
    connect_retry_max_s: float = 10.0
    read_retry_s: float = 1.0


class TopicFollower:
    """Reads a topic from the beginning in a background task and hands every record to ``apply``.

    ``caught_up`` is set once a poll comes back empty and the broker confirms the consumer's positions are at
    the topic's end offsets (asked, not guessed from one quiet poll): everything on the topic when the follower
    started has been applied. ``on_caught_up`` is then called once.
    ``apply`` must not raise for a malformed record (log and skip it); if it does, the error is
    logged and the record skipped, so one bad record never stops the follower.
    """

    def __init__(
        self,
        consumer: AsyncKafkaConsumer,
        apply: Callable[[ConsumedRecord], object],
        tuning: FollowTuning | None = None,
        *,
        name: str = "topic-follower",
        on_caught_up: Callable[[], object] | None = None,
    ) -> None:
        """Create the follower (it does nothing until :meth:`start`).

        Args:
            consumer: A consumer of the topic with no group id, reading from the earliest offset; the follower
                starts and closes it.
            apply: Called with each record, in offset order.
            tuning: Polling and back-off.
            name: Names the task and the log events.
            on_caught_up: Called once, when the backlog has been read (e.g. to mark a table loaded).
        """
        self.consumer = consumer
        self.tuning = tuning or FollowTuning()
        self.caught_up = asyncio.Event()
        #: Records handed to ``apply`` since start.
        self.applied = 0
        self._apply = apply
        self._name = name
        self._on_caught_up = on_caught_up
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start following in the background (connecting, with retries, there)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name=self._name)

    async def _connect(self) -> None:
        delay = self.tuning.connect_retry_initial_s
        while True:
            try:
                await self.consumer.start()
                return
            except Exception as error:
                _log.warning(f"{self._name}.unreachable", error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.tuning.connect_retry_max_s)

    async def _follow(self) -> None:
        await self._connect()
        while True:
            try:
                records = await self.consumer.getmany(timeout_s=self.tuning.poll_timeout_s)
            except Exception as error:
                _log.warning(f"{self._name}.read_failed", error=str(error))
                await asyncio.sleep(self.tuning.read_retry_s)
                continue
            for record in records:
                try:
                    self._apply(record)
                except Exception:
                    _log.exception(f"{self._name}.apply_failed", partition=record.partition, offset=record.offset)
                self.applied += 1
            if not records and not self.caught_up.is_set():
                await self._check_caught_up()

    async def _check_caught_up(self) -> None:
        try:
            at_end = await self.consumer.at_end()
        except Exception as error:
            _log.warning(f"{self._name}.end_check_failed", error=str(error))
            return
        if at_end:
            if self._on_caught_up is not None:
                self._on_caught_up()
            self.caught_up.set()
            _log.info(f"{self._name}.caught_up", applied=self.applied)

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.consumer.close()
