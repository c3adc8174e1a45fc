"""Kie's createTask limit as a shared sliding window, in Redis in production and in the
database on the embedded default. Both are global: every worker on every machine sees the same
window, and taking a token is atomic (a Lua script in Redis via the `limits` library; the
scheduler row's lock in the database)."""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from models.scheduler import SchedulerState
from soraq.config import Rate, Settings, parse_rate

KEY = "soraq-kie-create"
# Tokens are taken a moment before the call Kie sees: keep a 5 % margin.
_MARGIN = 0.05


class CreateLimiter(Protocol):
    def room(self, state: SchedulerState, now: datetime) -> int:
        """Tokens free in the window now (the caller holds the scheduler row)."""

    def acquire(self, state: SchedulerState, now: datetime) -> float | None:
        """Take a token: None, or the seconds until one frees."""


class DatabaseWindow:
    """The window as a log of token times in the scheduler row (whose lock the caller holds)."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.window = self.rate.window * (1 + _MARGIN)

    def _recent(self, state: SchedulerState, now: datetime) -> list[float]:
        ts = now.timestamp()
        return sorted(t for t in state.creates if t > ts - self.window)

    def room(self, state: SchedulerState, now: datetime) -> int:
        recent = self._recent(state, now)
        state.creates = recent
        return self.rate.count - len(recent)

    def acquire(self, state: SchedulerState, now: datetime) -> float | None:
        recent = self._recent(state, now)
        if len(recent) >= self.rate.count:
            state.creates = recent
            return max(0.05, recent[0] + self.window - now.timestamp())
        state.creates = [*recent, now.timestamp()]
        return None


class RedisWindow:
    """The window in Redis: a moving window kept by `limits`' atomic Lua script."""

    def __init__(self, broker_url: str, rate: Rate) -> None:
        # A token is taken a moment before Kie sees the call; leaving 5 % of the count unused
        # absorbs that jitter (the window itself has whole-second granularity here).
        spare = max(1, round(rate.count * _MARGIN)) if rate.count > 1 else 0
        count = rate.count - spare
        self.item = RateLimitItemPerSecond(count, max(1, round(rate.window)))
        self.limiter = MovingWindowRateLimiter(RedisStorage(broker_url))

    def room(self, state: SchedulerState, now: datetime) -> int:
        return int(self.limiter.get_window_stats(self.item, KEY).remaining)

    def acquire(self, state: SchedulerState, now: datetime) -> float | None:
        if self.limiter.hit(self.item, KEY):
            return None
        reset = self.limiter.get_window_stats(self.item, KEY).reset_time
        return max(0.05, reset - time.time())


def create_limiter(settings: Settings) -> CreateLimiter:
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        return _redis_window(settings.resolved_broker_url, settings.kie_create_rate)
    return DatabaseWindow(settings.create_rate)


@lru_cache
def _redis_window(broker_url: str, rate: str) -> RedisWindow:
    # One per process and configuration: the storage keeps a pool of Redis connections.
    return RedisWindow(broker_url, parse_rate(rate))
