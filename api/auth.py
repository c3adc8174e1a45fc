"""Who is calling. API keys are looked up by their hash, and the answer is kept for a few
seconds: every request of a busy client would otherwise pay a database round trip for it.
A disabled or rotated key stops working at once where the change is announced
(core.auth_events), and within AUTH_CACHE_SECONDS in any case."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.client import hash_api_key
from models.client_queries import active_client_by_key


@dataclass(frozen=True)
class ClientIdentity:
    id: str
    name: str
    max_active_jobs: int
    create_rate: str | None = None  # None: CLIENT_CREATE_RATE
    daily_credits: int | None = None  # budgets in Kie credits; None: no cap
    monthly_credits: int | None = None
    livemode: bool = True  # False: a test-mode key (its jobs go to the sandbox)
    key_hash: str = ""  # the key this identity was looked up by (held requests watch it)


class KeyCache:
    """Key lookups remembered for `ttl` seconds, forgotten at once when `soraq clients
    disable|rotate-key` announces a change (core.auth_events). Requests that miss the same
    key at the same moment (a busy client's every request, when its entry expires) share
    one database read."""

    def __init__(self, ttl: float, epoch: Callable[[], int] | None = None) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[ClientIdentity, float]] = {}
        self._loading: dict[str, asyncio.Future[ClientIdentity | None]] = {}
        self._generation = 0  # one more at each clear(): a read from before it is not kept
        self._epoch = epoch
        self._seen_epoch = epoch() if epoch else 0

    def clear(self) -> None:
        self._generation += 1
        self._known = {}
        self._loading = {}  # a read under way may predate the change: the next request rereads

    async def lookup(
        self, sessions: async_sessionmaker[AsyncSession], key: str
    ) -> ClientIdentity | None:
        if self._epoch is not None:
            current = self._epoch()
            if current != self._seen_epoch:
                self._seen_epoch = current
                self.clear()
        digest, now = hash_api_key(key), time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        loading = self._loading.get(digest)
        if loading is None:
            loading = asyncio.ensure_future(self._load(sessions, key, digest))
            self._loading[digest] = loading
            loading.add_done_callback(lambda done: self._forget_loading(digest, done))
        # Shielded: a request that goes away does not cancel the read the others wait for.
        return await asyncio.shield(loading)

    def _forget_loading(self, digest: str, done: asyncio.Future[ClientIdentity | None]) -> None:
        if self._loading.get(digest) is done:
            del self._loading[digest]
        if not done.cancelled():
            done.exception()  # retrieved: a failed read is each waiter's error, not a warning

    async def _load(
        self, sessions: async_sessionmaker[AsyncSession], key: str, digest: str
    ) -> ClientIdentity | None:
        generation = self._generation
        async with sessions() as session:
            client = await session.scalar(active_client_by_key(key))
        if client is None:
            self._known.pop(digest, None)
            return None
        identity = ClientIdentity(
            client.id,
            client.name,
            client.max_active_jobs,
            client.create_rate,
            client.daily_credits,
            client.monthly_credits,
            client.livemode,
            digest,
        )
        if self.ttl > 0 and generation == self._generation:
            if len(self._known) > 10_000:  # bounded: a flood of keys cannot grow it forever
                self._known.clear()
            self._known[digest] = (identity, time.monotonic() + self.ttl)
        return identity
