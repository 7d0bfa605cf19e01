"""Monitor findings from ``radguard.findings.v1`` into the rollout controller.

The feed reads the topic without a consumer group, starting at its end: every governance instance
sees every new finding (their commands are idempotent), and no group rebalance delays a breach.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from radguard.events.v1 import events_pb2
from services.governance_api.controller import FindingNotice
from services.runtime.kafka import AsyncKafkaConsumer, ConsumedRecord
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)

_KIND_NAMES = {
    events_pb2.MONITOR_KIND_DRIFT: "drift",
    events_pb2.MONITOR_KIND_CALIBRATION: "calibration",
    events_pb2.MONITOR_KIND_BIAS: "bias",
    events_pb2.MONITOR_KIND_PERFORMANCE: "performance",
}

#: Receives each decoded finding.
OnFinding = Callable[[FindingNotice], Awaitable[object]]


def notice_of(finding: events_pb2.Finding) -> FindingNotice:
    """The controller's view of a Finding event."""
    return FindingNotice(
        finding_id=finding.finding_id,
        kind=_KIND_NAMES.get(finding.kind, ""),
        model_name=finding.model.model_name,
        model_version=finding.model.model_version,
        breach=finding.severity == events_pb2.SEVERITY_BREACH,
        summary=finding.summary,
    )


class FindingsFeed:
    """Background task: findings topic → ``on_finding``."""

    def __init__(self, consumer: AsyncKafkaConsumer, on_finding: OnFinding, poll_s: float = 0.1) -> None:
        """Create the feed (nothing runs until :meth:`start`).

        Args:
            consumer: Reads the findings topic (no group, ``auto_offset_reset="latest"``).
            on_finding: Called with each finding, in topic order per partition.
            poll_s: Longest wait of one poll.
        """
        self._consumer = consumer
        self._on_finding = on_finding
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        #: Set once the consumer is positioned at the topic's end (findings after this are seen).
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start following the topic."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="governance-findings-feed")

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._consumer.close()

    async def _handle(self, record: ConsumedRecord) -> None:
        if record.value is None:
            return
        try:
            finding = events_pb2.Finding.FromString(record.value)
        except Exception:
            _log.error("controller.malformed_finding", partition=record.partition, offset=record.offset)
            return
        await self._on_finding(notice_of(finding))

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._consumer.start()
                break
            except Exception as error:
                _log.warning("controller.findings_unreachable", error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        # Old findings were handled (or not) by whoever ran then: the consumer starts at the end
        # ("latest"); a first poll fixes that position now rather than at some later poll.
        with contextlib.suppress(Exception):
            for record in await self._consumer.getmany(timeout_s=0.05):
                await self._handle(record)
        self.listening.set()
        while True:
            try:
                records = await self._consumer.getmany(timeout_s=self._poll_s)
            except Exception as error:
                _log.warning("controller.findings_read_failed", error=str(error))
                await asyncio.sleep(1.0)
                continue
            for record in records:
                try:
                    await self._handle(record)
                except Exception:
                    _log.exception("controller.finding_failed", partition=record.partition, offset=record.offset)
