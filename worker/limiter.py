"""Kie's limits as shared sliding windows: createTask (KIE_CREATE_RATE) and recordInfo
(KIE_CHECK_RATE). In Redis in production, in the scheduler row on the embedded default. Both
are global: every worker and dispatcher on every machine sees the same windows, and taking
tokens is atomic (one Lua script in Redis; the scheduler row's lock in the database).

Kie counts a createTask when it arrives, some moment between our token and Kie's answer. So a
create token is taken right before the call and *restamped* when the answer (or the failure)
comes back: from then on it is held from a time no earlier than Kie's count, and our window
never frees a token before Kie's does — which lets the dispatcher admit at the very instant a
token frees (worker.admission's timed wake-up). A small absolute margin on top covers a call
still in flight when its token is the oldest (a createTask that takes most of the window); an
answered call's token needs none — the answer is already a bound on Kie's count —, so a
restamp holds it exactly one window from the answer (every token's reuse would otherwise come
the margin late, window after window).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import redis

from catalogue.accounts import DEFAULT_ACCOUNT, Account
from core.config import Rate, Settings
from core.once import per_process
from models.scheduler import SchedulerState

MARGIN_SECONDS = 0.05
Log = Literal["creates", "checks"]
Token = str | float | None  # a Redis member, or a token time in the scheduler row


class Window(Protocol):
    # The scheduler row is locked for the database window only: Redis is atomic on its own.
    needs_lock: bool

    def room(self, state: SchedulerState, now: datetime) -> int:
        """Tokens free in the window now."""

    def take(self, state: SchedulerState, now: datetime, amount: int = 1) -> float | None:
        """Take `amount` tokens: None, or the seconds until that many are free (none taken)."""

    def upcoming(self, state: SchedulerState, now: datetime, n: int) -> list[float]:
        """Seconds until each of the next `n` tokens is free, soonest first (0 for each one
        free now); takes nothing. Fewer than `n` when the window holds fewer tokens."""

    def take_one(self, state: SchedulerState, now: datetime) -> tuple[float | None, Token]:
        """Take one token: (None, the token) or (seconds until one frees, None)."""

    def restamp(self, state: SchedulerState, token: Token, now: datetime) -> None:
        """The call this token was for has been answered: hold the token one window from
        now, an upper bound of when the upstream counted the call (never less than it holds
        the token already)."""


class DatabaseWindow:
    """The window as a log of token times in the scheduler row (whose lock the caller holds)."""

    needs_lock = True

    def __init__(self, rate: Rate, log: Log, margin: float = 0.0) -> None:
        self.rate, self.log, self.margin = rate, log, margin
        self.window = rate.window + margin

    def _recent(self, state: SchedulerState, now: datetime) -> list[float]:
        ts = now.timestamp()
        recent = sorted(t for t in getattr(state, self.log) if t > ts - self.window)
        setattr(state, self.log, recent)
        return recent

    def room(self, state: SchedulerState, now: datetime) -> int:
        return max(0, self.rate.count - len(self._recent(state, now)))

    def upcoming(self, state: SchedulerState, now: datetime, n: int) -> list[float]:
        recent = self._recent(state, now)
        free = [0.0] * max(0, self.rate.count - len(recent))
        # The oldest tokens free first; with more tokens than the limit (a lowered limit),
        # the first ones to count are those that bring the window back under it.
        over = max(0, len(recent) - self.rate.count)
        ts = now.timestamp()
        later = [max(0.0, t + self.window - ts) for t in recent[over:]]
        return (free + later)[:n]

    def take_one(self, state: SchedulerState, now: datetime) -> tuple[float | None, Token]:
        wait = self.take(state, now)
        return (wait, None) if wait is not None else (None, now.timestamp())

    def restamp(self, state: SchedulerState, token: Token, now: datetime) -> None:
        recent = list(getattr(state, self.log))
        if isinstance(token, float) and token in recent:
            # Held for `window` (margin included) from this stamp: the window alone from now.
            recent[recent.index(token)] = max(token, now.timestamp() - self.margin)
            setattr(state, self.log, sorted(recent))

    def take(self, state: SchedulerState, now: datetime, amount: int = 1) -> float | None:
        recent = self._recent(state, now)
        over = len(recent) + amount - self.rate.count
        if over > len(recent):
            return self.window  # more than the window ever holds at once
        if over > 0:
            return max(0.01, recent[over - 1] + self.window - now.timestamp())
        setattr(state, self.log, [*recent, *([now.timestamp()] * amount)])
        return None


# A token moved to Redis' time now less the margin (it is then held the window alone from
# now), if it is still in the window and that is later. ARGV: member, window_ms, margin_ms.
_RESTAMP_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local target = now - tonumber(ARGV[3])
local stamp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if stamp and tonumber(stamp) < target then
    redis.call('ZADD', KEYS[1], 'XX', target, ARGV[1])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""

# Both window scripts start here: ARGV[1] the count, ARGV[2] the window (ms), ARGV[3] their
# own argument; `now` from Redis' clock, tokens past the window dropped, `used` counted.
_TRIMMED = """
local count, window, arg = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
"""

# A sorted set of token times (ms). Redis' own clock stamps the tokens, so workers on
# machines whose clocks disagree still share one window. ARGV[3]: the amount to take (0 only
# asks for the room). Returns {granted, room, wait_ms, the last token taken}.
_WINDOW_SCRIPT = (
    _TRIMMED
    + """
local amount = arg
local over = used + amount - count
if over <= 0 then
    local member = ''
    for i = 1, amount do
        -- (time, count) is unique: two tokens in one millisecond see different counts.
        member = now .. ':' .. (used + i)
        redis.call('ZADD', KEYS[1], now, member)
    end
    if amount > 0 then
        redis.call('PEXPIRE', KEYS[1], window)
    end
    return {1, count - used - amount, 0, member}
end
if over > used then
    return {0, math.max(0, count - used), window}
end
local blocking = redis.call('ZRANGE', KEYS[1], over - 1, over - 1, 'WITHSCORES')
return {0, math.max(0, count - used), tonumber(blocking[2]) + window - now}
"""
)


# Milliseconds until each of the next tokens frees, soonest first (0 for each one free now).
# ARGV: count, window_ms, n.
_UPCOMING_SCRIPT = (
    _TRIMMED
    + """
local n = arg
local out = {}
for i = 1, math.min(n, count - used) do
    out[#out + 1] = 0
end
local over = math.max(0, used - count)
local wanted = n - #out
if wanted > 0 then
    local stamps = redis.call('ZRANGE', KEYS[1], over, over + wanted - 1, 'WITHSCORES')
    for i = 2, #stamps, 2 do
        out[#out + 1] = math.max(0, tonumber(stamps[i]) + window - now)
    end
end
return out
"""
)


class RedisWindow:
    """The window in Redis, kept by one atomic script."""

    needs_lock = False

    def __init__(self, broker_url: str, rate: Rate, key: str, margin: float = 0.0) -> None:
        self.rate, self.key = rate, key
        self.window_ms = round((rate.window + margin) * 1000)
        self.margin_ms = round(margin * 1000)
        client = redis.Redis.from_url(broker_url)
        self.script = client.register_script(_WINDOW_SCRIPT)
        self.restamp_script = client.register_script(_RESTAMP_SCRIPT)
        self.upcoming_script = client.register_script(_UPCOMING_SCRIPT)

    def _call(self, amount: int) -> list[object]:
        return list(self.script(keys=[self.key], args=[self.rate.count, self.window_ms, amount]))

    def _run(self, amount: int) -> tuple[bool, int, float]:
        granted, room, wait_ms = self._call(amount)[:3]
        return bool(granted), int(str(room)), int(str(wait_ms)) / 1000

    def take_one(self, state: SchedulerState, now: datetime) -> tuple[float | None, Token]:
        answer = self._call(1)
        if not answer[0]:
            return max(0.01, int(str(answer[2])) / 1000), None
        member = answer[3]
        return None, member.decode() if isinstance(member, bytes) else str(member)

    def restamp(self, state: SchedulerState, token: Token, now: datetime) -> None:
        if isinstance(token, str):
            self.restamp_script(keys=[self.key], args=[token, self.window_ms, self.margin_ms])

    def room(self, state: SchedulerState, now: datetime) -> int:
        return self._run(0)[1]

    def upcoming(self, state: SchedulerState, now: datetime, n: int) -> list[float]:
        if n <= 0:
            return []
        waits = self.upcoming_script(keys=[self.key], args=[self.rate.count, self.window_ms, n])
        return [int(str(ms)) / 1000 for ms in waits]

    def take(self, state: SchedulerState, now: datetime, amount: int = 1) -> float | None:
        granted, _, wait = self._run(amount)
        return None if granted else max(0.01, wait)


def create_window(settings: Settings, account: Account) -> Window:
    """An account's createTask calls, with the margin for the moment between our token and
    the upstream's count."""
    return _window(settings, account.name, "creates", account.create_rate, MARGIN_SECONDS)


def check_window(settings: Settings) -> Window:
    """recordInfo calls: granted by the dispatcher as it claims due checks. One window for
    every account, at KIE_CHECK_RATE (within each account's own limit, whatever the mix)."""
    return _window(settings, DEFAULT_ACCOUNT, "checks", settings.check_rate, 0.0)


def _window(settings: Settings, account: str, log: Log, rate: Rate, margin: float) -> Window:
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        return _redis_window(settings.resolved_broker_url, f"soraq:{account}:{log}", rate, margin)
    return DatabaseWindow(rate, log, margin)


@per_process
def _redis_window(broker_url: str, key: str, rate: Rate, margin: float) -> RedisWindow:
    # One per process and configuration: the client keeps a pool of Redis connections.
    return RedisWindow(broker_url, rate, key, margin)
