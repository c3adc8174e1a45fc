"""Kie's limits as shared sliding windows: createTask (KIE_CREATE_RATE) and recordInfo
(KIE_CHECK_RATE). In Redis in production, in the scheduler row on the embedded default. Both
are global: every worker and dispatcher on every machine sees the same windows, and taking
tokens is atomic (one Lua script in Redis; the scheduler row's lock in the database).

Kie counts a createTask when it arrives; we count it when the token is taken, a moment earlier
(the worker takes it right before the request). The create window is therefore held a little
longer than Kie's, by an absolute margin — the jitter is a few milliseconds whatever the
window — so that no spread between the two clocks can fit one call too many into Kie's window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import redis

from core.config import Rate, Settings
from core.once import per_process
from models.scheduler import SchedulerState

MARGIN_SECONDS = 0.1
Log = Literal["creates", "checks"]


class Window(Protocol):
    # The scheduler row is locked for the database window only: Redis is atomic on its own.
    needs_lock: bool

    def room(self, state: SchedulerState, now: datetime) -> int:
        """Tokens free in the window now."""

    def take(self, state: SchedulerState, now: datetime, amount: int = 1) -> float | None:
        """Take `amount` tokens: None, or the seconds until that many are free (none taken)."""


class DatabaseWindow:
    """The window as a log of token times in the scheduler row (whose lock the caller holds)."""

    needs_lock = True

    def __init__(self, rate: Rate, log: Log, margin: float = 0.0) -> None:
        self.rate, self.log = rate, log
        self.window = rate.window + margin

    def _recent(self, state: SchedulerState, now: datetime) -> list[float]:
        ts = now.timestamp()
        recent = sorted(t for t in getattr(state, self.log) if t > ts - self.window)
        setattr(state, self.log, recent)
        return recent

    def room(self, state: SchedulerState, now: datetime) -> int:
        return max(0, self.rate.count - len(self._recent(state, now)))

    def take(self, state: SchedulerState, now: datetime, amount: int = 1) -> float | None:
        recent = self._recent(state, now)
        over = len(recent) + amount - self.rate.count
        if over > len(recent):
            return self.window  # more than the window ever holds at once
        if over > 0:
            return max(0.01, recent[over - 1] + self.window - now.timestamp())
        setattr(state, self.log, [*recent, *([now.timestamp()] * amount)])
        return None


# A sorted set of token times (ms). Redis' own clock stamps the tokens, so workers on
# machines whose clocks disagree still share one window. ARGV: count, window_ms, amount
# (0 only asks). Returns {granted, room, wait_ms}.
_WINDOW_SCRIPT = """
local count, window, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local over = used + amount - count
if over <= 0 then
    for i = 1, amount do
        -- (time, count) is unique: two tokens in one millisecond see different counts.
        redis.call('ZADD', KEYS[1], now, now .. ':' .. (used + i))
    end
    if amount > 0 then
        redis.call('PEXPIRE', KEYS[1], window)
    end
    return {1, count - used - amount, 0}
end
if over > used then
    return {0, math.max(0, count - used), window}
end
local blocking = redis.call('ZRANGE', KEYS[1], over - 1, over - 1, 'WITHSCORES')
return {0, math.max(0, count - used), tonumber(blocking[2]) + window - now}
"""


class RedisWindow:
    """The window in Redis, kept by one atomic script."""

    needs_lock = False

    def __init__(self, broker_url: str, rate: Rate, key: str, margin: float = 0.0) -> None:
        self.rate, self.key = rate, key
        self.window_ms = round((rate.window + margin) * 1000)
        self.script = redis.Redis.from_url(broker_url).register_script(_WINDOW_SCRIPT)

    def _run(self, amount: int) -> tuple[bool, int, float]:
        granted, room, wait_ms = self.script(
            keys=[self.key], args=[self.rate.count, self.window_ms, amount]
        )
        return bool(granted), int(room), int(wait_ms) / 1000

    def room(self, state: SchedulerState, now: datetime) -> int:
        return self._run(0)[1]

    def take(self, state: SchedulerState, now: datetime, amount: int = 1) -> float | None:
        granted, _, wait = self._run(amount)
        return None if granted else max(0.01, wait)


def create_window(settings: Settings) -> Window:
    """createTask calls, with the margin for the moment between our token and Kie's count."""
    return _window(settings, "creates", settings.create_rate, MARGIN_SECONDS)


def check_window(settings: Settings) -> Window:
    """recordInfo calls: granted by the dispatcher as it claims due checks."""
    return _window(settings, "checks", settings.check_rate, 0.0)


def _window(settings: Settings, log: Log, rate: Rate, margin: float) -> Window:
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        return _redis_window(settings.resolved_broker_url, log, rate, margin)
    return DatabaseWindow(rate, log, margin)


@per_process
def _redis_window(broker_url: str, log: Log, rate: Rate, margin: float) -> RedisWindow:
    # One per process and configuration: the client keeps a pool of Redis connections.
    return RedisWindow(broker_url, rate, f"soraq:kie:{log}", margin)
