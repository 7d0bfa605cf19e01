"""Bidirectional streams answered item by item, a bounded number at once (PredictStream, ModelStreamInfer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from services.runtime.errors import DomainError

Request = TypeVar("Request")
Answer = TypeVar("Answer")


async def answer_each(
    requests: AsyncIterator[Request],
    answer: Callable[[Request], Awaitable[Answer]],
    concurrency: int,
    unreadable: Callable[[Exception, int], DomainError],
) -> AsyncIterator[Answer]:
    """Yield ``answer(request)`` for every request, in the order the answers finish, ``concurrency`` at once.

    ``answer`` must not raise: a failing item is answered with its own error, and the stream goes on. A
    message that cannot be read ends the stream with ``unreadable(error, index)`` once every request before
    it is answered.
    """
    results: asyncio.Queue[Answer | DomainError | None] = asyncio.Queue()
    slots = asyncio.Semaphore(concurrency)

    async def one(request: Request) -> None:
        try:
            result = await answer(request)
        finally:
            slots.release()
        await results.put(result)

    async def feed() -> None:
        tasks: set[asyncio.Task[None]] = set()
        ending: DomainError | None = None
        received = 0
        try:
            async for request in requests:
                await slots.acquire()
                task = asyncio.create_task(one(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                received += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ending = unreadable(exc, received)
        finally:
            if tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
            await results.put(ending)

    feeder = asyncio.create_task(feed())
    try:
        while True:
            item = await results.get()
            if item is None:
                break
            if isinstance(item, DomainError):
                raise item
            yield item
        await feeder
    finally:
        feeder.cancel()
