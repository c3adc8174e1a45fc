"""A connection pool that serves waiting requests first come, first served.

SQLAlchemy's async pool keeps idle connections in an asyncio.Queue. A connection returned
to it wakes the first waiter, but until that waiter runs, any request that reaches the pool
takes the connection without waiting, and the waiter goes to the back of the line (asyncio's
Queue.get; the same class of bug as asyncpg#1247, sqlx#453). Under overload — more requests
at once than connections — some requests lose that race again and again: with 50
connections of `wrk` against a pool of 20, POST /jobs had a p99 of 1.4 s and requests
timing out at 2 s while the median was 40 ms.

Here a returned connection goes straight to the longest waiter, so it cannot be taken from
them; a newcomer takes an idle connection only when nobody is waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import memoized_property
from sqlalchemy.util import queue as sqla_queue

T = TypeVar("T")


class HandoffQueue(Generic[T]):
    """The part of asyncio.Queue that SQLAlchemy's pool uses, with hand-over to waiters."""

    def __init__(self, maxsize: int = 0, lifo: bool = False) -> None:
        self.maxsize = maxsize
        self._lifo = lifo
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # (a waiter that gave up is skipped)
                waiter.set_result(item)
                return
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)

    async def put(self, item: T) -> None:
        self.put_nowait(item)  # the pool never holds more connections than its size

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop() if self._lifo else self._items.popleft()

    async def get(self) -> T:
        if self._items:  # idle connections exist only while nobody waits
            return self.get_nowait()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection just as it gave up (a timeout, a cancelled request):
                # pass it on to the next in line.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
            raise


class _HandoffAdaptedQueue(sqla_queue.AsyncAdaptedQueue[T]):
    @memoized_property
    def _queue(self) -> Any:  # built on first use, inside the running loop, as SQLAlchemy's
        return HandoffQueue[T](self.maxsize, self.use_lifo)


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """AsyncAdaptedQueuePool whose waiting checkouts are served in arrival order."""

    _queue_class = _HandoffAdaptedQueue  # type: ignore[assignment]
