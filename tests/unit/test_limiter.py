"""Kie's windows in Redis (production) and in the database row (embedded)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from core.config import Rate
from devstack.services import Unavailable, start_redis
from models.base import utcnow
from models.scheduler import SchedulerState
from worker.limiter import MARGIN_SECONDS, DatabaseWindow, RedisWindow


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        redis = start_redis()
    except Unavailable:
        pytest.skip("!!! redis-server is not installed: the Redis window is not tested here")
    yield redis.url
    redis.close()


def state() -> SchedulerState:
    return SchedulerState(name="kie", creates=[], checks=[])


def test_the_redis_window_grants_count_tokens_then_says_when(redis_url: str) -> None:
    window = RedisWindow(redis_url, Rate(4, 10), "test:grants", MARGIN_SECONDS)
    now = utcnow()
    assert window.room(state(), now) == 4
    assert [window.take(state(), now) for _ in range(4)] == [None] * 4
    assert window.room(state(), now) == 0
    wait = window.take(state(), now)
    assert wait is not None
    assert 9.5 < wait <= 10 + MARGIN_SECONDS  # when the first token leaves the window


def test_the_redis_window_takes_several_at_once_or_none(redis_url: str) -> None:
    window = RedisWindow(redis_url, Rate(5, 10), "test:several")
    now = utcnow()
    assert window.take(state(), now, 3) is None
    assert window.take(state(), now, 3) is not None  # only 2 left: nothing is taken
    assert window.room(state(), now) == 2
    assert window.take(state(), now, 2) is None
    assert window.take(state(), now, 9) == 10  # more than the window ever holds


def test_the_redis_window_slides(redis_url: str) -> None:
    window = RedisWindow(redis_url, Rate(3, 0.2), "test:slides", MARGIN_SECONDS)
    assert [window.take(state(), utcnow()) for _ in range(4)][:3] == [None] * 3
    time.sleep(0.2 + MARGIN_SECONDS + 0.05)
    assert window.room(state(), utcnow()) == 3


def test_the_database_window_slides() -> None:
    window, row, now = DatabaseWindow(Rate(2, 10), "creates"), state(), utcnow()
    assert [window.take(row, now) for _ in range(3)][:2] == [None, None]
    assert window.room(row, now + timedelta(seconds=5)) == 0
    assert window.room(row, now + timedelta(seconds=11)) == 2
    assert row.checks == []  # each window keeps its own log


def test_the_database_window_takes_several_at_once_or_none() -> None:
    window, row, now = DatabaseWindow(Rate(5, 10), "checks"), state(), utcnow()
    assert window.take(row, now, 3) is None
    assert window.take(row, now + timedelta(seconds=1), 3) == pytest.approx(9)
    assert len(row.checks) == 3


def test_both_windows_say_when_the_next_token_frees(redis_url: str) -> None:
    """The dispatcher's one timed wake-up: asking takes nothing."""
    now = utcnow()
    row = state()
    for window in (
        RedisWindow(redis_url, Rate(2, 10), "test:next-free"),
        DatabaseWindow(Rate(2, 10), "creates"),
    ):
        assert window.upcoming(row, now, 1) == [0]
        assert window.take(row, now, 2) is None
        (free_in,) = window.upcoming(row, now, 1)
        assert 9.5 < free_in <= 10
        assert window.room(row, now) == 0  # asking took no token
    # (Redis stamps with its own clock; the row's window can be asked about a later moment.)
    later = now + timedelta(seconds=11)
    assert DatabaseWindow(Rate(2, 10), "creates").upcoming(row, later, 1) == [0]


def test_a_token_restamped_when_its_call_is_answered_frees_that_much_later(
    redis_url: str,
) -> None:
    """Kie counts a createTask when it arrives, somewhere between our token and its answer:
    holding the token from the answer on, our window never frees before Kie's."""
    now = utcnow()
    row = state()
    for window in (
        RedisWindow(redis_url, Rate(1, 10), "test:restamp"),
        DatabaseWindow(Rate(1, 10), "creates"),
    ):
        wait, token = window.take_one(row, now)
        assert wait is None
        assert token is not None
        time.sleep(0.3)  # the call's round trip
        answered = utcnow()
        window.restamp(row, token, answered)
        (free_in,) = window.upcoming(row, answered, 1)
        assert 9.8 < free_in <= 10.0, free_in  # from the answer, not from the token
        refused, none = window.take_one(row, answered)
        assert refused is not None
        assert none is None
        window.restamp(row, "not-a-token", utcnow())  # an unknown token changes nothing
        assert window.room(row, answered) == 0


def test_the_margin_holds_a_call_in_flight_and_not_an_answered_one(redis_url: str) -> None:
    """The margin covers a call still on its way when its token is the oldest; once the call
    is answered, the answer bounds Kie's count and the token is held one window from it —
    never less than it was held already (a reply faster than the margin moves nothing)."""
    windows: list[tuple[RedisWindow | DatabaseWindow, bool]] = [
        (RedisWindow(redis_url, Rate(1, 10), "test:margin", margin=0.2), False),
        (DatabaseWindow(Rate(1, 10), "creates", margin=0.2), False),
        (RedisWindow(redis_url, Rate(1, 10), "test:margin-fast", margin=0.5), True),
        (DatabaseWindow(Rate(1, 10), "creates", margin=0.5), True),
    ]
    for window, within_margin in windows:
        row = state()
        sent = utcnow()
        wait, token = window.take_one(row, sent)
        assert wait is None
        (in_flight,) = window.upcoming(row, sent, 1)
        assert 10.0 < in_flight <= 10.5  # the window and the margin
        time.sleep(0.3)  # the call's round trip
        answered = utcnow()
        window.restamp(row, token, answered)
        (free_in,) = window.upcoming(row, answered, 1)
        if within_margin:
            assert 10.1 < free_in <= 10.2, free_in  # still the send's 10.5 s
        else:
            assert 9.9 < free_in <= 10.0, free_in  # the window alone, from the answer


def test_both_windows_list_when_each_coming_token_frees(redis_url: str) -> None:
    """What the dispatcher's coalesced wake-up reads: every token freeing soon, in order."""
    now = utcnow()
    row = state()
    for window in (
        RedisWindow(redis_url, Rate(3, 10), "test:upcoming"),
        DatabaseWindow(Rate(3, 10), "creates"),
    ):
        assert window.upcoming(row, now, 5) == [0, 0, 0]  # never more than the window holds
        assert window.take(row, now, 1) is None
        time.sleep(0.05)
        assert window.take(row, utcnow(), 1) is None
        first, second, third = window.upcoming(row, utcnow(), 3)
        assert first == 0
        assert 9.8 < second < third <= 10  # the older token frees first
        assert window.upcoming(row, utcnow(), 1) == [0]
        assert window.room(row, utcnow()) == 1  # asking took nothing
