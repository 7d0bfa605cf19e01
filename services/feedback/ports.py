"""The feedback service's ports: where reads are kept and what it may ask about predictions."""

from __future__ import annotations

from typing import Protocol

from services.feedback.domain import Label, Read


class ReadStore(Protocol):
    """Durable store of reads. Storing a read also queues its ReadEvent for publication, atomically."""

    async def add(self, read: Read) -> tuple[Read, bool]:
        """Store ``read`` unless its idempotency key is taken.

        Args:
            read: The new read.

        Returns:
            ``(read, True)`` when stored (its event is queued in the same transaction), otherwise
            ``(the read stored earlier under the same key, False)``.

        Raises:
            Unavailable: The store cannot be reached.
        """
        ...

    async def get(self, read_id: str) -> Read | None:
        """The read with radguard id ``read_id``, or None."""
        ...

    async def get_by_key(self, idempotency_key: str) -> Read | None:
        """The read stored under the client key ``idempotency_key``, or None."""
        ...


class PredictionLookup(Protocol):
    """What the ledger knows about a prediction, if it has arrived there yet."""

    async def decision(self, prediction_id: str) -> Label | None:
        """The model's decision for ``prediction_id`` as a label; None when unknown or undecided.

        Raises:
            Unavailable: The ledger cannot be reached.
        """
        ...
