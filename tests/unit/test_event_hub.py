"""The API's event hub in process: a notification wakes exactly the waiters of its job and
client, waiters share one read per notification, and a client's held places are bounded."""

from __future__ import annotations

import asyncio

import pytest

from api.errors import TooManyWaiters
from api.events import EventHub
from api.streams import parse_last_event_id, parse_prefer_wait


def hub() -> EventHub:
    return EventHub(None, "sqlite:///unused.db")  # type: ignore[arg-type]


def test_a_notification_wakes_its_job_and_client_waiters_only() -> None:
    async def run() -> tuple[bool, bool, bool]:
        h = hub()
        h._ensure_running = lambda: None  # type: ignore[method-assign]
        mine, client, other = (
            h.subscribe(job_id="job_a"),
            h.subscribe(client_id="c1"),
            h.subscribe(job_id="job_b"),
        )
        h.publish("job_a", "c1")
        woken = []
        for waiter in (mine, client, other):
            task = asyncio.ensure_future(waiter.wait(0.05))
            started = asyncio.get_running_loop().time()
            await task
            woken.append(asyncio.get_running_loop().time() - started < 0.04)
        return woken[0], woken[1], woken[2]

    assert asyncio.run(run()) == (True, True, False)


def test_waiters_of_one_job_share_one_read_per_notification() -> None:
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return reads

    async def run() -> list[int]:
        h = hub()
        h._ensure_running = lambda: None  # type: ignore[method-assign]
        waiters = [h.subscribe(job_id="job_a") for _ in range(500)]
        first = await asyncio.gather(*(h.read_shared("j:job_a", read) for _ in waiters))
        h.publish("job_a", None)
        second = await asyncio.gather(*(h.read_shared("j:job_a", read) for _ in waiters))
        return sorted(set(first + second))

    assert asyncio.run(run()) == [1, 2]
    assert reads == 2


def test_a_client_has_a_bounded_number_of_held_places() -> None:
    h = EventHub(None, "sqlite:///unused.db", client_max_held=3)  # type: ignore[arg-type]
    holds = [h.hold("c1") for _ in range(3)]
    with pytest.raises(TooManyWaiters) as refused:
        h.hold("c1")
    assert int(refused.value.headers["Retry-After"]) > 0
    h.hold("c2").release()  # another client is not affected
    holds[0].release()
    holds[0].release()  # releasing twice frees one place, once
    h.hold("c1")
    with pytest.raises(TooManyWaiters):
        h.hold("c1")


def test_all_clients_together_are_bounded_too() -> None:
    h = EventHub(None, "sqlite:///unused.db", client_max_held=3, max_held=5)  # type: ignore[arg-type]
    held = [h.hold(f"c{i}") for i in range(5)]
    with pytest.raises(TooManyWaiters) as refused:
        h.hold("c9")
    assert "this server" in refused.value.message
    held[0].release()
    h.hold("c9")


def test_a_revoked_hold_wakes_its_waiters_at_once() -> None:
    async def run() -> tuple[bool, float]:
        h = hub()
        h._ensure_running = lambda: None  # type: ignore[method-assign]
        h._ensure_key_check = lambda: None  # type: ignore[method-assign]
        hold = h.hold("c1", "digest")
        waiter = h.subscribe(client_id="c1", hold=hold)
        loop = asyncio.get_running_loop()
        started = loop.time()
        loop.call_later(0.05, hold.revoke)
        await waiter.wait(5)
        return hold.revoked, loop.time() - started

    revoked, took = asyncio.run(run())
    assert revoked
    assert took < 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("wait=10", 10),
        ("wait", 60),
        ("respond-async, wait=5", 5),
        ('wait="7"', 7),
        ("wait=600", 60),
        ("wait=soon", None),
        ("wait=-1", None),
        ("return=minimal", None),
        ("wait=99999999999", None),
        ("wait=\u00b2", None),  # "²".isdigit() is true, int("²") raises: it was a 500
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(header: str | None, seconds: int | None) -> None:
    assert parse_prefer_wait(header) == seconds


@pytest.mark.parametrize(
    ("header", "after"),
    [
        (None, None),
        ("42", 42),
        (" 7 ", 7),
        ("\u00b2", None),  # a latin-1 digit int() refuses: it was a 500
        ("9" * 19, None),  # past a 64-bit id: SQLite refused it mid-stream
        ("-1", None),
        ("abc", None),
    ],
)
def test_last_event_id_is_an_id_or_nothing(header: str | None, after: int | None) -> None:
    assert parse_last_event_id(header) == after
