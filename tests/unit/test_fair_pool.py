"""The API's connection pool serves waiting requests in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from models.db import make_async_engine
from models.fair_pool import FairAsyncQueuePool, HandoffQueue


async def _take(queue: HandoffQueue[str], name: str, got: list[tuple[str, str]]) -> None:
    got.append((name, await queue.get()))


def test_a_returned_connection_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    async def scenario() -> list[tuple[str, str]]:
        queue: HandoffQueue[str] = HandoffQueue(maxsize=2)
        got: list[tuple[str, str]] = []
        first = asyncio.create_task(_take(queue, "first", got))
        second = asyncio.create_task(_take(queue, "second", got))
        await asyncio.sleep(0)  # both wait, in this order
        queue.put_nowait("conn-1")
        # A request arriving now, before the first waiter has run, finds nothing idle
        # (with asyncio.Queue it would take conn-1 and send the first waiter to the back).
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
        queue.put_nowait("conn-2")
        await asyncio.gather(first, second)
        return got

    assert asyncio.run(scenario()) == [("first", "conn-1"), ("second", "conn-2")]


def test_a_waiter_that_gives_up_as_it_is_served_passes_the_connection_on() -> None:
    async def scenario() -> tuple[str, int]:
        queue: HandoffQueue[str] = HandoffQueue(maxsize=1)
        got: list[tuple[str, str]] = []
        quitter = asyncio.create_task(queue.get())
        patient = asyncio.create_task(_take(queue, "patient", got))
        await asyncio.sleep(0)
        queue.put_nowait("conn")  # handed to the quitter …
        quitter.cancel()  # … which is cancelled (a timeout) before it runs
        with pytest.raises(asyncio.CancelledError):
            await quitter
        await patient
        return got[0][1], queue.qsize()

    assert asyncio.run(scenario()) == ("conn", 0)


def test_a_cancelled_waiter_is_skipped_and_idle_connections_wait_in_the_queue() -> None:
    async def scenario() -> tuple[int, str]:
        queue: HandoffQueue[str] = HandoffQueue(maxsize=1)
        gone = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        queue.put_nowait("conn")  # nobody waits any more: it stays idle
        with pytest.raises(asyncio.QueueFull):
            queue.put_nowait("one too many")
        return queue.qsize(), await queue.get()

    assert asyncio.run(scenario()) == (1, "conn")


def test_the_postgres_engine_uses_the_fair_pool() -> None:
    engine = make_async_engine("postgresql://soraq@127.0.0.1:1/soraq")
    assert isinstance(engine.pool, FairAsyncQueuePool)
