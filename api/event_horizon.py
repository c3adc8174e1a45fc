"""Up to which event id a stream may read without ever skipping one (PostgreSQL).

Event ids come from a sequence, handed out when a row is inserted, but rows become visible
when their transaction commits — not in id order. With several workers (and several nodes)
committing at once, a reader that saw id 101 and moved on would never see id 100 if its
transaction committed a moment later: a stream resumed with `Last-Event-ID: 101` would miss
it for good. So streams read only up to the *horizon*: the highest id below which every id is
visible, or settled as never to come (a rolled-back insert leaves a hole forever).

A hole is settled when every transaction that was running when the hole was first seen has
ended (the snapshot's `xmin` passed that moment's `xmax`: whoever took the id has committed
or rolled back by then) and at least `floor` seconds have passed (the instant between an
insert taking its id and its transaction getting an xid); after `cap` seconds it is settled
regardless (a transaction that long is a bug elsewhere; the stream must not stop for it).

SQLite has one writer at a time: ids become visible in order, and there is no horizon.
One `Horizon` per API process, shared by its streams, read at most every `min_interval`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.event_queries import events_after_with_snapshot, newest_event_id

# Holes settled while starting: ids this far below the newest at start are taken as final.
START_LOOKBACK = 1000
SCAN_LIMIT = 5000


@dataclass(frozen=True)
class Seen:
    """A hole, and what was running when it was first seen."""

    xmax: int
    at: float


class Horizon:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        floor: float = 1.0,
        cap: float = 60.0,
        min_interval: float = 0.05,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._floor, self._cap, self._min_interval = floor, cap, min_interval
        self._settled: int | None = None  # every id up to here is visible or never will be
        self._holes: dict[int, Seen] = {}  # by the hole's first id
        self._pending = False  # ids beyond the horizon exist (a hole holds them back)
        self._read_started = 0.0  # when the last read began: it saw every commit before this
        self._lock = asyncio.Lock()

    async def current(self, fresh: bool = False, since: float | None = None) -> tuple[int, bool]:
        """(the horizon, whether visible events wait beyond it). A caller that gets
        `pending` looks again shortly: holes settle without a notification. `fresh`: read
        now, not a result up to `min_interval` old — for a caller that has just seen
        something commit and must not get a horizon from before it. `since` (a monotonic
        instant, such as when a notification woke the caller): a result from a read begun
        at or after it — every caller woken by one notification shares one read, and none
        gets a horizon from before the commit that woke it (it would read nothing, and
        sleep until the next notification or its recheck with the event undelivered)."""
        async with self._lock:
            now = time.monotonic()
            stale = now - self._read_started >= self._min_interval
            behind = since is not None and self._read_started < since
            if self._settled is None or fresh or stale or behind:
                await self._advance()
                self._read_started = now
            assert self._settled is not None
            return self._settled, self._pending

    async def _advance(self) -> None:
        async with self._sessionmaker() as session:
            if self._settled is None:
                newest = await session.scalar(newest_event_id())
                self._settled = max(int(newest or 0) - START_LOOKBACK, 0)
            rows = (
                await session.execute(events_after_with_snapshot(self._settled, SCAN_LIMIT))
            ).all()
        now = time.monotonic()
        settled, walked, blocked = self._settled, self._settled, False
        for row in rows:
            if row.id > walked + 1:  # a hole: ids walked+1 … row.id-1 are not visible
                # Every hole is noted when first seen, blocked or not, so that holes seen
                # together settle together.
                seen = self._holes.setdefault(walked + 1, Seen(int(row.xmax), now))
                blocked = blocked or not self._is_settled(seen, int(row.xmin), now)
            if not blocked:
                settled = row.id
            walked = row.id
        self._settled = settled
        self._pending = blocked or len(rows) == SCAN_LIMIT
        self._holes = {start: seen for start, seen in self._holes.items() if start > settled}

    def _is_settled(self, seen: Seen, xmin: int, now: float) -> bool:
        waited = now - seen.at
        return waited >= self._cap or (waited >= self._floor and xmin >= seen.xmax)
