"""Telling every API process at once that a key was disabled or rotated.

API processes remember key lookups for AUTH_CACHE_SECONDS; a disabled key must not keep
working that long. `soraq clients disable|rotate-key` announce the change: on Redis (the
production broker) with a publish every API process is subscribed to, and on the embedded
default (one machine) by touching a file whose modification time every request compares.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from core.config import Settings

log = logging.getLogger(__name__)
CHANNEL = "soraq:auth-changed"


def epoch_file(settings: Settings) -> Path:
    return Path(settings.var_dir) / "auth-epoch"


def announce(settings: Settings) -> None:
    """A key changed: every API process forgets what it remembered about keys."""
    path = epoch_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
    os.utime(path)
    if settings.resolved_broker_url.startswith("redis"):
        import redis

        try:
            redis.Redis.from_url(settings.resolved_broker_url, socket_timeout=5).publish(
                CHANNEL, b"1"
            )
        except redis.RedisError as exc:  # the cache still expires by time
            log.warning("could not announce the key change on Redis: %s", exc)


def file_epoch(settings: Settings) -> Callable[[], int]:
    """A cheap reader of the embedded default's announcement file (one stat per request)."""
    path = epoch_file(settings)

    def read() -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return 0

    return read


def listen(settings: Settings, on_change: Callable[[], None]) -> threading.Event | None:
    """On Redis, a daemon thread that calls `on_change` for every announcement; returns the
    event that stops it (None on the embedded default, where the file does the job)."""
    if not settings.resolved_broker_url.startswith("redis"):
        return None
    import redis

    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                client = redis.Redis.from_url(settings.resolved_broker_url, socket_timeout=5)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                on_change()  # anything announced while we were not listening
                while not stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        on_change()
            except redis.RedisError:
                stop.wait(1.0)  # Redis is away: the cache still expires by time

    threading.Thread(target=run, name="auth-events", daemon=True).start()
    return stop
