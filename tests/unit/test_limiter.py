"""The createTask window in Redis (production) and in the database row (embedded)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from models.base import utcnow
from models.scheduler import SchedulerState
from soraq.config import Rate
from soraq.localservices import Unavailable, start_redis
from worker.limiter import MARGIN_SECONDS, DatabaseWindow, RedisWindow


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        redis = start_redis()
    except Unavailable:
        pytest.skip("!!! redis-server is not installed: the Redis window is not tested here")
    yield redis.url
    redis.close()


def test_the_redis_window_grants_count_tokens_then_says_when(redis_url: str) -> None:
    window = RedisWindow(redis_url, Rate(4, 10), key="test:grants")
    state = SchedulerState(name="kie", creates=[], checks=[])
    now = utcnow()
    assert window.room(state, now) == 4
    assert [window.acquire(state, now) for _ in range(4)] == [None] * 4
    assert window.room(state, now) == 0
    wait = window.acquire(state, now)
    assert wait is not None
    assert 9.5 < wait <= 10 + MARGIN_SECONDS  # when the first token leaves the window


def test_the_redis_window_slides(redis_url: str) -> None:
    window = RedisWindow(redis_url, Rate(3, 0.2), key="test:slides")
    state = SchedulerState(name="kie", creates=[], checks=[])
    assert [window.acquire(state, utcnow()) for _ in range(4)][:3] == [None] * 3
    time.sleep(0.2 + MARGIN_SECONDS + 0.05)
    assert window.room(state, utcnow()) == 3


def test_the_database_window_slides() -> None:
    window = DatabaseWindow(Rate(2, 10))
    state = SchedulerState(name="kie", creates=[], checks=[])
    now = utcnow()
    assert [window.acquire(state, now) for _ in range(3)][:2] == [None, None]
    assert window.room(state, now + timedelta(seconds=5)) == 0
    assert window.room(state, now + timedelta(seconds=11)) == 2
