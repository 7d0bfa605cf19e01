"""The checkpoint publisher: signs the audit head every so often and keeps the signature outside the database.

A round reads the head the store records and the entries since the last checkpoint, checks that they still
extend it (the entry it signed keeps its hash and every later entry links and hashes correctly), signs a
checkpoint of the new head with the service's Ed25519 key, appends it to the local checkpoint file and
publishes it on the audit topic. A history that changed under the last checkpoint is never signed: the
round is refused, logged, and :attr:`CheckpointPublisher.refused` says why.

Rounds run every ``interval_s`` when the head has moved, and at once when a commit brings the entries since
the last checkpoint to ``every``. A checkpoint Kafka did not acknowledge is published again next round.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from governance.domain.audit import AuditHead
from governance.domain.checkpoint import Checkpoint, CheckpointSigner, extension_verdict
from governance.domain.model import AuditRecord
from governance.ports import AuditFilter, Clock, GovernanceStore
from services.governance_api.adapters.audit_topic import checkpoint_record
from services.governance_api.adapters.checkpoint_file import CheckpointFile
from services.runtime.errors import Unavailable
from services.runtime.outbox import SendMany
from services.runtime.telemetry import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True)
class CheckpointTuning:
    """When checkpoints are made.

    Attributes:
        interval_s: Time between rounds; a round signs when the head moved since the last checkpoint.
        every: Entries since the last checkpoint that make a commit trigger a round at once.
        read_chunk: Entries read per query while checking the extension.
    """

    interval_s: float = 10.0
    every: int = 100
    read_chunk: int = 1000


class CheckpointPublisher:
    """Background task signing and publishing checkpoints of the audit head."""

    def __init__(
        self,
        store: GovernanceStore,
        signer: CheckpointSigner,
        file: CheckpointFile,
        send_many: SendMany,
        *,
        topic: str,
        producer: str,
        clock: Clock,
        tuning: CheckpointTuning | None = None,
    ) -> None:
        """Create the publisher; the last checkpoint this key signed is read from ``file``."""
        self._store = store
        self._signer = signer
        self._file = file
        self._send_many = send_many
        self._topic = topic
        self._producer = producer
        self._clock = clock
        self.tuning = tuning or CheckpointTuning()
        mine = [c for c in file.read().checkpoints if c.key_id == signer.key_id]
        #: The last checkpoint signed (and written to the file).
        self.last: Checkpoint | None = max(mine, key=lambda c: c.seq, default=None)
        #: Why the last round refused to sign, or None.
        self.refused: str | None = None
        self._unpublished: list[Checkpoint] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def key_id(self) -> str:
        """The signing key's id."""
        return self._signer.key_id

    def notify(self) -> None:
        """A command committed: run a round soon if enough entries may have accumulated."""
        self._wake.set()

    def start(self) -> None:
        """Start the task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="governance-checkpoints")

    async def stop(self) -> None:
        """Stop the task (a round in progress is cancelled; the file already holds what was signed)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read_since(self, head: AuditHead) -> list[AuditRecord]:
        first = self.last.seq if self.last is not None else 1
        records: list[AuditRecord] = []
        async with self._store.transaction() as tx:
            while first <= head.seq:
                chunk = await tx.read_audit(first, head.seq, AuditFilter(), self.tuning.read_chunk)
                if not chunk:
                    break
                records += chunk
                first = chunk[-1].seq + 1
        return records

    async def round(self, *, due: bool = True) -> Checkpoint | None:
        """Sign and publish a checkpoint of the head if it moved (and, unless ``due``, enough of it).

        Returns:
            The new checkpoint, or None when nothing was signed.

        Raises:
            Unavailable: PostgreSQL could not be read.
        """
        await self._publish_pending()
        async with self._store.transaction() as tx:
            head = await tx.audit_head()
        last_seq = self.last.seq if self.last is not None else 0
        if head is None:
            return None
        unchanged = self.last is not None and head.hash == self.last.head_hash
        if head.seq == last_seq and unchanged and self.refused is None:
            return None
        if not due and head.seq - last_seq < self.tuning.every:
            return None
        verdict = extension_verdict(self.last, await self._read_since(head), head)
        if not verdict.ok:
            if verdict.reason != self.refused:
                _log.error(
                    "governance.audit_checkpoint_refused",
                    first_bad_seq=verdict.first_bad_seq,
                    reason=verdict.reason,
                    last_checkpoint_seq=last_seq,
                )
            self.refused = verdict.reason
            return None
        self.refused = None
        if head.seq == last_seq:
            return None
        checkpoint = self._signer.sign(head.seq, head.hash, head.seq, self._clock.now())
        await asyncio.to_thread(self._file.append, checkpoint)
        self.last = checkpoint
        self._unpublished.append(checkpoint)
        await self._publish_pending()
        _log.info("governance.audit_checkpoint", seq=checkpoint.seq, key_id=checkpoint.key_id)
        return checkpoint

    async def _publish_pending(self) -> None:
        if not self._unpublished:
            return
        records = [checkpoint_record(c, self._topic, self._producer) for c in self._unpublished]
        try:
            outcomes = list(await self._send_many(records))
        except Exception as error:
            outcomes = [error] * len(records)
        sent = 0
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                break
            sent += 1
        self._unpublished = self._unpublished[sent:]
        if self._unpublished:
            _log.warning("governance.audit_checkpoint_unpublished", pending=len(self._unpublished))

    async def _run(self) -> None:
        due = True
        while True:
            try:
                await self.round(due=due)
            except Unavailable as error:
                _log.warning("governance.audit_checkpoint_round_failed", error=str(error))
            except Exception:  # a bug must not end the task silently
                _log.exception("governance.audit_checkpoint_round_crashed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.tuning.interval_s)
                due = False
            except TimeoutError:
                due = True
