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
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import TooManyWaiters
from api.event_horizon import Horizon
from models.client import Client
from models.event import JobEvent
from models.job import Job

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "soraq_job_events"
POLL_INTERVAL = 0.2  # seconds, embedded only
RECONNECT_DELAY = 1.0
RETRY_HELD_AFTER = 30  # seconds a client refused a held place is told to wait


class Waiter:
    """One request's wake-up flag. `wait` returns when something may have happened (or its
    hold was revoked)."""

    def __init__(self, hub: EventHub, keys: tuple[str, ...], hold: Hold | None = None) -> None:
        self._hub, self.keys, self.hold = hub, keys, hold
        self._flag = asyncio.Event()
        # Monotonic: when something last woke it — first, its subscribing: a read must see
        # every commit before that instant (later ones wake it), so a cached event horizon
        # from before it must not be used (Horizon.current's `since`).
        self.woke_at = time.monotonic()
        if hold is not None:
            hold.waiters.add(self)

    def wake(self) -> None:
        self.woke_at = time.monotonic()
        self._flag.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flag.wait(), timeout)
        self._flag.clear()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.waiters.discard(self)
        self._hub.unsubscribe(self)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hold:
    """A client's place for one waiting request or stream; `release` (or `with`) frees it.
    `revoked` once the key that opened it is disabled or rotated: its stream ends, its wait
    answers 401."""

    def __init__(self, hub: EventHub, client_id: str, key_hash: str) -> None:
        self._hub, self.client_id, self.key_hash, self._held = hub, client_id, key_hash, True
        self.revoked = False
        self.waiters: set[Waiter] = set()

    def revoke(self) -> None:
        self.revoked = True
        for waiter in list(self.waiters):
            waiter.wake()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._hub._release(self)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class EventHub:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        database_url: str,
        *,
        client_max_held: int = 20,
        max_held: int = 1000,
        key_check_interval: float = 5.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        # Held requests (streams, `Prefer: wait`) per client and in all, in this process: a
        # few clients' thousands of streams once left none of uvicorn's connections for
        # /healthz or anyone's POST /jobs.
        self.client_max_held, self.max_held = client_max_held, max_held
        self._holds: dict[str, set[Hold]] = defaultdict(set)  # by key hash
        self._held_total = 0
        self._key_check_interval = max(key_check_interval, 0.5)
        self._key_check: asyncio.Task[None] | None = None
        self._url = make_url(database_url)
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._poll_from: int | None = None
        # Per key: bumped by each notification. Waiters of one key share one read per
        # generation: 500 requests waiting on one job cost one query per event, not 500.
        self._generation: dict[str, int] = defaultdict(int)
        self._reads: dict[str, tuple[int, asyncio.Task[Any]]] = {}
        self._held: dict[str, int] = defaultdict(int)
        # Event ids commit out of order on PostgreSQL: streams read up to the horizon only.
        postgres = self._url.get_backend_name() == "postgresql"
        self._horizon = Horizon(sessionmaker) if postgres else None

    async def horizon(
        self, fresh: bool = False, since: float | None = None
    ) -> tuple[int | None, bool]:
        """(the highest event id streams may read up to — None: any —, whether events wait
        beyond it); `fresh`: read after this call began; `since`: read at or after that
        instant (Horizon.current)."""
        if self._horizon is None:
            return None, False
        return await self._horizon.current(fresh, since)

    def hold(self, client_id: str, key_hash: str = "") -> Hold:
        """One of the client's places for a held request or an open stream in this process,
        or TooManyWaiters (429): a client cannot pin the server with its streams, nor can all
        of them together take the connections ordinary requests need."""
        if self._held[client_id] >= self.client_max_held:
            raise TooManyWaiters(
                f"{self.client_max_held} of your requests are already waiting or streaming "
                "here; close some, or poll GET /jobs/{id}",
                headers={"Retry-After": str(RETRY_HELD_AFTER)},
            )
        if self._held_total >= self.max_held:
            raise TooManyWaiters(
                "this server holds as many waiting requests and streams as it takes; "
                "try again shortly, or poll GET /jobs/{id}",
                headers={"Retry-After": str(RETRY_HELD_AFTER)},
            )
        self._held[client_id] += 1
        self._held_total += 1
        hold = Hold(self, client_id, key_hash)
        if key_hash:
            self._holds[key_hash].add(hold)
            self._ensure_key_check()
        return hold

    def _release(self, hold: Hold) -> None:
        self._held_total -= 1
        self._held[hold.client_id] -= 1
        if self._held[hold.client_id] <= 0:
            del self._held[hold.client_id]
        holds = self._holds.get(hold.key_hash)
        if holds is not None:
            holds.discard(hold)
            if not holds:
                del self._holds[hold.key_hash]

    def _ensure_key_check(self) -> None:
        if self._key_check is None or self._key_check.done():
            self._key_check = asyncio.get_running_loop().create_task(
                self._check_keys(), name="soraq-held-keys"
            )

    async def _check_keys(self) -> None:
        """While anything is held: every AUTH_CACHE_SECONDS, one query for the keys that hold
        something; the holds of a key disabled or rotated since are revoked (a key stops
        working for streams as soon as for ordinary requests)."""
        while self._holds:
            await asyncio.sleep(self._key_check_interval)
            held = list(self._holds)
            try:
                async with self._sessionmaker() as session:
                    alive = set(
                        await session.scalars(
                            select(Client.key_hash).where(
                                Client.key_hash.in_(held), Client.active.is_(True)
                            )
                        )
                    )
            except Exception as exc:  # a busy database: the next round looks again
                log.warning("could not check the keys of held requests: %s", exc)
                continue
            for key_hash in held:
                if key_hash not in alive:
                    for hold in list(self._holds.get(key_hash, ())):
                        hold.revoke()

    def subscribe(
        self, *, job_id: str | None = None, client_id: str | None = None, hold: Hold | None = None
    ) -> Waiter:
        """Subscribe before reading what is already there: whatever commits after the read
        then wakes the waiter."""
        keys = tuple(k for k in (job_id and f"j:{job_id}", client_id and f"c:{client_id}") if k)
        waiter = Waiter(self, keys, hold)
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
        for task in (self._task, self._key_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

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
