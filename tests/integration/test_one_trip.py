"""models.one_trip on a real PostgreSQL: statements and their commit in one round trip, all
or nothing, and the connection as SQLAlchemy expects it afterwards."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from api.service import CLIENT_LOCK
from models.base import utcnow
from models.db import make_async_engine
from models.event import JobEvent
from models.job import Job, JobStatus, new_callback_token
from models.job_queries import BudgetCheck, insert_job_within_limit
from models.one_trip import can_send_together, commit_together


def _new_job(job_id: str) -> tuple[Any, dict[str, Any]]:
    """The API's own statement: the job within its limits, with its first history row."""
    now = utcnow()
    job = Job(
        id=job_id,
        callback_token=new_callback_token(),
        client_id=None,
        status=JobStatus.QUEUED,
        model="veo3.1-fast/text-to-video",
        input={"prompt": "one trip"},
        priority=1,
        livemode=True,
        credits_reserved=0.0,
        credits_counted=0.0,
        failures=0,
        created_at=now,
        updated_at=now,
        next_check_at=now,
    )
    since = now - timedelta(seconds=60)
    return insert_job_within_limit(job, 10, 10, since, BudgetCheck(), created_reason="test")


def _note(job_id: str) -> tuple[Any, dict[str, Any]]:
    values = dict(job_id=job_id, at=utcnow(), kind="admin", from_status=None, to_status=None)
    return insert(JobEvent).values(**values, reason="note", detail=None), {}


def test_statements_commit_together_or_not_at_all(postgres_url: str) -> None:
    lock = (CLIENT_LOCK, {"client_id": "anyone"})

    async def scenario() -> None:
        engine = make_async_engine(postgres_url)
        try:
            async with engine.connect() as connection:
                assert can_send_together(connection)
                rows = await commit_together(connection, [lock, _new_job("job_a")])
                assert rows[1] == ("job_a",)
                assert can_send_together(connection)  # committed, and reusable as it is
                # The second statement fails (the job exists): the first goes with it.
                with pytest.raises(IntegrityError):
                    await commit_together(connection, [_note("job_a"), _new_job("job_a")])
                assert can_send_together(connection)
                # SQLAlchemy's own transactions go on as usual on the same connection.
                async with connection.begin():
                    count = await connection.scalar(select(func.count()).select_from(Job))
                assert count == 1
            async with engine.connect() as other:
                events = (await other.execute(select(JobEvent.job_id, JobEvent.reason))).all()
            assert [tuple(e) for e in events] == [("job_a", "test")]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_an_open_transaction_is_not_committed_behind_its_back(postgres_url: str) -> None:
    async def scenario() -> bool:
        engine = make_async_engine(postgres_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(select(1))  # the transaction is open now
                return can_send_together(connection)
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) is False


def test_statements_that_need_python_side_defaults_are_refused(postgres_url: str) -> None:
    async def scenario() -> None:
        engine = make_async_engine(postgres_url)
        try:
            async with engine.connect() as connection:
                bare = insert(JobEvent).values(job_id="job_a", kind="admin")  # `at` defaults
                with pytest.raises(ValueError, match="every column"):
                    await commit_together(connection, [(bare, {})])
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_a_connection_lost_midway_leaves_the_pool_and_answers_as_unavailable(
    postgres_url: str,
) -> None:
    async def scenario() -> tuple[bool, int]:
        engine = make_async_engine(postgres_url)
        try:
            async with engine.connect() as connection:
                backend = await connection.scalar(text("SELECT pg_backend_pid()"))
                await connection.commit()
                async with engine.connect() as other:
                    await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
                    await other.commit()
                with pytest.raises(OperationalError):  # the API's 503 database_unavailable
                    await commit_together(connection, [_new_job("job_lost")])
                invalidated = connection.invalidated
            async with engine.connect() as fresh:  # the pool hands out a working one
                count = await fresh.scalar(select(func.count()).select_from(Job))
            return invalidated, int(count or 0)
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == (True, 0)


def test_post_jobs_commits_its_job_reservation_and_history_in_one_round_trip(
    postgres_url: str,
) -> None:
    """The API's own insert (api.service) takes the one-trip path on PostgreSQL, a budgeted
    job's reservation with it; a refused job leaves no row and reserves nothing."""
    from api.auth import ClientIdentity
    from api.errors import TooManyJobs
    from api.service import _insert_within_limits
    from core.config import get_settings
    from models.db import async_session_factory

    client = ClientIdentity("cl_one", "one", max_active_jobs=1, daily_credits=1000)

    def job(job_id: str) -> Job:
        now = utcnow()
        return Job(
            id=job_id,
            callback_token=new_callback_token(),
            client_id=client.id,
            status=JobStatus.QUEUED,
            model="veo3.1-fast/text-to-video",
            input={"prompt": job_id},
            priority=1,
            livemode=True,
            credits_estimated=40.0,
            credits_reserved=40.0,
            credits_counted=40.0,
            failures=0,
            created_at=now,
            updated_at=now,
            next_check_at=now,
        )

    async def scenario() -> tuple[bool, list[Any]]:
        engine = make_async_engine(postgres_url)
        sessions = async_session_factory(engine)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO clients (id, name, key_hash, key_prefix, webhook_secret,"
                        " active, max_active_jobs, weight, livemode, created_at)"
                        " VALUES ('cl_one', 'one', 'h', 'p', 's', true, 1, 1, true, now())"
                    )
                )
            settings, now = get_settings(), utcnow()
            async with sessions() as session:
                committed = await _insert_within_limits(
                    session, client, job("job_one"), settings, now, commit=True
                )
            async with sessions() as session:
                with pytest.raises(TooManyJobs):  # its one unfinished job is the limit
                    await _insert_within_limits(
                        session, client, job("job_two"), settings, now, commit=True
                    )
            async with engine.connect() as other:  # what another connection sees
                seen = [
                    (await other.execute(select(Job.id))).scalars().all(),
                    (await other.execute(select(JobEvent.job_id))).scalars().all(),
                    await other.scalar(text("SELECT active_jobs FROM clients")),
                    await other.scalar(text("SELECT sum(credits) FROM client_spend")),
                ]
            return committed, seen
        finally:
            await engine.dispose()

    committed, seen = asyncio.run(scenario())
    assert committed is True  # committed by the insert's own round trip, not by the caller
    assert seen == [["job_one"], ["job_one"], 1, 40.0]
