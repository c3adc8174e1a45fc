"""The createTask window in Redis (production) and in the database row (embedded)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from models.base import utcnow
from models.scheduler import SchedulerState
from soraq.config import Rate
from soraq.localservices import Unavailable, start_redis
from worker.limiter import DatabaseWindow, RedisWindow


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        redis = start_redis()
    except Unavailable:
        pytest.skip("!!! redis-server is not installed: the Redis window is not tested here")
    yield redis.url
    redis.close()


def test_the_redis_window_grants_count_tokens_then_says_when(redis_url: str) -> None:
    window = RedisWindow(redis_url, Rate(4, 10))  # 5 % kept as margin: 3 tokens
    state = SchedulerState(name="kie", creates=[], checks=[])
    now = utcnow()
    assert window.room(state, now) == 3
    assert [window.acquire(state, now) for _ in range(3)] == [None, None, None]
    assert window.room(state, now) == 0
    wait = window.acquire(state, now)
    assert wait is not None
    assert 9 < wait <= 10


def test_the_database_window_slides() -> None:
    window = DatabaseWindow(Rate(2, 10))
    state = SchedulerState(name="kie", creates=[], checks=[])
    now = utcnow()
    assert [window.acquire(state, now) for _ in range(3)][:2] == [None, None]
    assert window.room(state, now + timedelta(seconds=5)) == 0
    assert window.room(state, now + timedelta(seconds=11)) == 2
