"""Scheduling policy as pure functions: when to look again, how long to back off, whether a
failure ends a job. No database, no clock: the pipeline passes both in, tests call these."""

from __future__ import annotations

import random
from collections.abc import Callable

from core.config import Settings

# After a callback, while the upstream's record does not show the end yet (Kie's record can
# trail its own callback), look again this many seconds after the callback: 1, 2, 4, 8 s apart.
CALLBACK_FOLLOW_UPS = (1.0, 3.0, 7.0, 15.0)


def check_interval(
    settings: Settings,
    elapsed: float,
    since_callback: float | None = None,
    *,
    progress_wanted: bool = False,
) -> float:
    """When to look at the upstream next, `elapsed` seconds after submission. With callbacks
    on, polling is only a safety net — except right after a callback whose result the record
    does not show yet: then a few quick follow-ups, not the safety net's minute — and for a
    job whose client asked for progress webhooks (only a read shows progress)."""
    if since_callback is not None and since_callback >= 0:
        follow_up = next((at for at in CALLBACK_FOLLOW_UPS if at > since_callback + 0.05), None)
        if follow_up is not None:
            return follow_up - since_callback
    if settings.callbacks_enabled and not progress_wanted:
        return settings.callback_check_interval
    # Geometric growth without a counter: the next check comes `backoff` times later.
    grown = elapsed * (settings.check_backoff - 1)
    return min(settings.check_max_interval, max(settings.check_initial_delay, grown))


def backoff(
    settings: Settings,
    failures: int,
    retry_after: float | None,
    jitter: Callable[[float, float], float] = random.uniform,
) -> float:
    """Exponential backoff with jitter (a 429 storm must not return in lockstep), never sooner
    than the upstream's Retry-After."""
    delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (max(failures, 1) - 1))
    delay *= jitter(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def gives_up(settings: Settings, *, retryable: bool, failures: int) -> bool:
    """A step failed before the upstream accepted the task: is that the end of the job?"""
    return not retryable or failures >= settings.max_attempts


def still_pending_allowed(settings: Settings, seconds_since_submit: float) -> bool:
    """The upstream does not show a task it accepted ("recordInfo is null", a 404): normal for
    a while right after creation, then a sign the task is gone."""
    return seconds_since_submit <= settings.pending_grace
