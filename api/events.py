"""Waking the requests that wait on jobs: `Prefer: wait` and the event streams.

One `EventHub` per API process listens for new rows in `job_events` and wakes the waiters of
their job or client; a waiter then reads what is new from the database itself. Nothing is
polled per request: on PostgreSQL one connection LISTENs to the trigger's NOTIFY (migration
0011); on the embedded SQLite default, where the worker is another process and there is no
notification channel, one short query per `POLL_INTERVAL` per process (only while someone is
waiting) finds the rows written since the last look.

A notification only says "look again": a waiter reads `id > last seen`, so a lost or doubled
notification costs at most one read, and the hub can restart without losing events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import TooManyWaiters
from models.event import JobEvent
from models.job import Job

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "soraq_job_events"
POLL_INTERVAL = 0.2  # seconds, embedded only
RECONNECT_DELAY = 1.0
MAX_HELD_PER_CLIENT = 1000  # waiting requests and open streams, per client, per API process


class Waiter:
    """One request's wake-up flag. `wait` returns when something may have happened."""

    def __init__(self, hub: EventHub, keys: tuple[str, ...]) -> None:
        self._hub, self.keys = hub, keys
        self._flag = asyncio.Event()

    def wake(self) -> None:
        self._flag.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flag.wait(), timeout)
        self._flag.clear()

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hold:
    """A client's place for one waiting request or stream; `release` (or `with`) frees it."""

    def __init__(self, hub: EventHub, client_id: str) -> None:
        self._hub, self._client_id, self._held = hub, client_id, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._hub._release(self._client_id)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class EventHub:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], database_url: str) -> None:
        self._sessionmaker = sessionmaker
        self._url = make_url(database_url)
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._poll_from: int | None = None
        # Per key: bumped by each notification. Waiters of one key share one read per
        # generation: 500 requests waiting on one job cost one query per event, not 500.
        self._generation: dict[str, int] = defaultdict(int)
        self._reads: dict[str, tuple[int, asyncio.Task[Any]]] = {}
        self._held: dict[str, int] = defaultdict(int)

    def hold(self, client_id: str) -> Hold:
        """One of the client's places for a held request or an open stream in this process,
        or TooManyWaiters: a client cannot pin the server with thousands of them."""
        if self._held[client_id] >= MAX_HELD_PER_CLIENT:
            raise TooManyWaiters(
                f"{MAX_HELD_PER_CLIENT} of your requests are already waiting or streaming here; "
                "close some, or poll GET /jobs/{id}"
            )
        self._held[client_id] += 1
        return Hold(self, client_id)

    def _release(self, client_id: str) -> None:
        self._held[client_id] -= 1
        if self._held[client_id] <= 0:
            del self._held[client_id]

    def subscribe(self, *, job_id: str | None = None, client_id: str | None = None) -> Waiter:
        """Subscribe before reading what is already there: whatever commits after the read
        then wakes the waiter."""
        keys = tuple(k for k in (job_id and f"j:{job_id}", client_id and f"c:{client_id}") if k)
        waiter = Waiter(self, keys)
        for key in keys:
            self._waiters[key].add(waiter)
        self._ensure_running()
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        for key in waiter.keys:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]
                    self._generation.pop(key, None)
                    self._reads.pop(key, None)

    async def read_shared(self, key: str, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`, or the result of the one another waiter of `key` started since the last
        notification for it."""
        generation = self._generation[key]
        shared = self._reads.get(key)
        if shared is None or shared[0] != generation:
            shared = (generation, asyncio.ensure_future(read()))
            self._reads[key] = shared
        result: T = await asyncio.shield(shared[1])
        return result

    def publish(self, job_id: str, client_id: str | None) -> None:
        """Something new for this job (from this process, or a notification)."""
        for key in (f"j:{job_id}", f"c:{client_id}" if client_id else None):
            if key is not None and key in self._waiters:
                self._generation[key] += 1
                for waiter in list(self._waiters[key]):
                    waiter.wake()

    def _wake_all(self) -> None:
        for key, waiters in list(self._waiters.items()):
            self._generation[key] += 1
            for waiter in list(waiters):
                waiter.wake()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            listen = self._url.get_backend_name() == "postgresql"
            self._task = asyncio.get_running_loop().create_task(
                self._listen() if listen else self._poll(), name="soraq-event-hub"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _listen(self) -> None:
        conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._wake_all()  # whatever happened while not listening: look again
                    async for notice in connection.notifies():
                        job_id, _, client_id = notice.payload.partition(" ")
                        self.publish(job_id, client_id or None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarted: listen again, wake everyone
                log.warning("event hub lost its LISTEN connection: %s", exc)
                await asyncio.sleep(RECONNECT_DELAY)

    async def _poll(self) -> None:
        while True:
            try:
                if self._waiters:
                    for job_id, client_id in await self._new_rows():
                        self.publish(job_id, client_id)
                else:
                    self._poll_from = None  # nobody waits: start afresh from the newest row
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a busy database: try again at the next tick
                log.warning("event hub could not read new events: %s", exc)
            await asyncio.sleep(POLL_INTERVAL)

    async def _new_rows(self) -> Iterable[tuple[str, str | None]]:
        async with self._sessionmaker() as session:
            if self._poll_from is None:
                self._poll_from = await session.scalar(select(func.max(JobEvent.id))) or 0
                self._wake_all()
                return ()
            rows = (
                await session.execute(
                    select(JobEvent.id, JobEvent.job_id, Job.client_id)
                    .join(Job, Job.id == JobEvent.job_id)
                    .where(JobEvent.id > self._poll_from)
                    .order_by(JobEvent.id)
                    .limit(1000)
                )
            ).all()
        if rows:
            self._poll_from = rows[-1].id
        return [(row.job_id, row.client_id) for row in rows]
