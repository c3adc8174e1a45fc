"""Who is calling. API keys are looked up by their hash, and the answer is kept for a few
seconds: every request of a busy client would otherwise pay a database round trip for it.
A disabled or rotated key stops working at once where the change is announced
(core.auth_events), and within AUTH_CACHE_SECONDS in any case."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

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


class KeyCache:
    """Key lookups remembered for `ttl` seconds, forgotten at once when `soraq clients
    disable|rotate-key` announces a change (core.auth_events)."""

    def __init__(self, ttl: float, epoch: Callable[[], int] | None = None) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[ClientIdentity, float]] = {}
        self._epoch = epoch
        self._seen_epoch = epoch() if epoch else 0

    def clear(self) -> None:
        self._known = {}

    async def lookup(self, session: AsyncSession, key: str) -> ClientIdentity | None:
        if self._epoch is not None:
            current = self._epoch()
            if current != self._seen_epoch:
                self._seen_epoch = current
                self.clear()
        digest, now = hash_api_key(key), time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
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
        )
        if self.ttl > 0:
            if len(self._known) > 10_000:  # bounded: a flood of keys cannot grow it forever
                self._known.clear()
            self._known[digest] = (identity, now + self.ttl)
        return identity
