"""Streams never skip an event whose transaction commits after a later id's (PostgreSQL).

Event ids are handed out at insert and become visible at commit: with several workers an id
can appear after a higher one. `Horizon` holds streams below such a hole until it fills, or
settles as a rolled-back insert's hole that never will."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.orm import Session

from api.event_horizon import Horizon
from models.client import Client
from models.db import async_session_factory, make_async_engine, make_engine
from models.event import JobEvent
from models.job import Job


@pytest.fixture
def database(postgres_url: str) -> Iterator[tuple[str, Engine, str]]:
    engine = make_engine(postgres_url)
    with Session(engine) as session:
        client = Client(name="horizon", key_hash="1" * 64, key_prefix="sk_hori")
        session.add(client)
        session.flush()
        job = Job(client_id=client.id, model="kling-2.6/text-to-video", input={})
        session.add(job)
        session.commit()
        job_id = job.id
    yield postgres_url, engine, job_id
    engine.dispose()


def _insert(connection: Connection, job_id: str) -> int:
    event = {"job_id": job_id, "kind": "transition", "to_status": "waiting", "reason": "test"}
    return int(connection.execute(insert(JobEvent).returning(JobEvent.id), event).scalar_one())


def test_a_hole_holds_the_horizon_until_its_insert_commits_or_settles(
    database: tuple[str, Engine, str],
) -> None:
    url, engine, job_id = database

    async def scenario() -> None:
        async_engine = make_async_engine(url)
        horizon = Horizon(async_session_factory(async_engine), floor=0.3, min_interval=0)
        start, _ = await horizon.current()
        with engine.connect() as slow:
            slow.begin()
            early = _insert(slow, job_id)
            with engine.begin() as fast:
                late = _insert(fast, job_id)
            assert early < late
            # The later id is visible, the earlier not yet: streams stop below the hole.
            settled, pending = await horizon.current()
            assert settled == early - 1
            assert pending
            await asyncio.sleep(0.5)  # past the floor, but its transaction still runs
            assert await horizon.current() == (early - 1, True)
            slow.commit()
        assert await horizon.current() == (late, False)

        # A rolled-back insert leaves a hole for good: it settles after the floor, once the
        # transactions running when it was seen have ended.
        with engine.connect() as aborted:
            aborted.begin()
            lost = _insert(aborted, job_id)
            aborted.rollback()
        with engine.begin() as after:
            kept = _insert(after, job_id)
        assert await horizon.current() == (lost - 1, True)
        await asyncio.sleep(0.4)
        assert await horizon.current() == (kept, False)
        assert start < early

        # Within `min_interval` a horizon is reused — unless the caller asks for a fresh one
        # (a job's stream that has just seen its job end: the terminal event is past the
        # cached horizon).
        horizon._min_interval = 60
        await horizon.current(fresh=True)
        with engine.begin() as connection:
            newest = _insert(connection, job_id)
        assert await horizon.current() == (kept, False)
        assert await horizon.current(fresh=True) == (newest, False)

        # A caller a notification woke after a commit gets a horizon read since that instant,
        # never one cached from before the commit (it would read nothing and sleep with the
        # event undelivered); callers woken by the same notification share that one read.
        with engine.begin() as connection:
            woken = _insert(connection, job_id)
        woke_at = time.monotonic()  # a notification comes after its commit
        assert await horizon.current() == (newest, False)  # cached: the new event is hidden
        reads = horizon._read_started
        assert await horizon.current(since=woke_at) == (woken, False)
        shared = horizon._read_started
        assert shared > reads
        assert await horizon.current(since=woke_at) == (woken, False)
        assert horizon._read_started == shared  # no second read for the same wake-up
        await async_engine.dispose()

    asyncio.run(scenario())
