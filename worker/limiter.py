"""Kie's createTask limit as a shared sliding window, in Redis in production and in the
database on the embedded default. Both are global: every worker on every machine sees the same
window, and taking a token is atomic (one Lua script in Redis; the scheduler row's lock in the
database).

Kie counts a call when it arrives; we count it when the token is taken, a moment earlier
(the worker takes it right before the request). The window is therefore held a little longer
than Kie's, by an absolute margin — the jitter is a few milliseconds whatever the window —
so that no spread between the two clocks can fit one call too many into Kie's window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import redis

from models.scheduler import SchedulerState
from soraq.config import Rate, Settings, parse_rate
from soraq.once import per_process

KEY = "soraq:kie:creates"
MARGIN_SECONDS = 0.1


class CreateLimiter(Protocol):
    # The scheduler row is locked for the database window only: Redis is atomic on its own.
    needs_lock: bool

    def room(self, state: SchedulerState, now: datetime) -> int:
        """Tokens free in the window now."""

    def acquire(self, state: SchedulerState, now: datetime) -> float | None:
        """Take a token: None, or the seconds until one frees."""


class DatabaseWindow:
    """The window as a log of token times in the scheduler row (whose lock the caller holds)."""

    needs_lock = True

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.window = rate.window + MARGIN_SECONDS

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
            return max(0.01, recent[0] + self.window - now.timestamp())
        state.creates = [*recent, now.timestamp()]
        return None


# A sorted set of token times (ms). Redis' own clock stamps the tokens, so workers on
# machines whose clocks disagree still share one window. Returns {granted, room, wait_ms}.
_WINDOW_SCRIPT = """
local count, window, take = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < count then
    if take then
        -- (time, count) is unique: two tokens in one millisecond see different counts.
        redis.call('ZADD', KEYS[1], now, now .. ':' .. used)
        redis.call('PEXPIRE', KEYS[1], window)
        used = used + 1
    end
    return {take and 1 or 0, count - used, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
"""


class RedisWindow:
    """The window in Redis, kept by one atomic script."""

    needs_lock = False

    def __init__(self, broker_url: str, rate: Rate, key: str = KEY) -> None:
        self.rate, self.key = rate, key
        self.window_ms = round((rate.window + MARGIN_SECONDS) * 1000)
        self.script = redis.Redis.from_url(broker_url).register_script(_WINDOW_SCRIPT)

    def _run(self, take: bool) -> tuple[bool, int, float]:
        granted, room, wait_ms = self.script(
            keys=[self.key], args=[self.rate.count, self.window_ms, int(take)]
        )
        return bool(granted), int(room), int(wait_ms) / 1000

    def room(self, state: SchedulerState, now: datetime) -> int:
        return self._run(take=False)[1]

    def acquire(self, state: SchedulerState, now: datetime) -> float | None:
        granted, _, wait = self._run(take=True)
        return None if granted else max(0.01, wait)


def create_limiter(settings: Settings) -> CreateLimiter:
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        return _redis_window(settings.resolved_broker_url, settings.kie_create_rate)
    return DatabaseWindow(settings.create_rate)


@per_process
def _redis_window(broker_url: str, rate: str) -> RedisWindow:
    # One per process and configuration: the client keeps a pool of Redis connections.
    return RedisWindow(broker_url, parse_rate(rate))
