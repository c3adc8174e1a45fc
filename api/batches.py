"""What the API does with batches: check every item, then store the batch and all its jobs in
one transaction (a multi-row INSERT each for the jobs and their history), commit, nudge."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.auth import ClientIdentity
from api.budgets import refuse_if_over_budget
from api.errors import NotFound, RateLimited, TooManyJobs
from api.nudge import Nudger
from api.schemas import BatchCreate
from api.service import CLIENT_LOCK, build_job, keep_uploads, refuse_test_mode_if_unavailable
from api.validation import check_webhook_url, validate_request
from core.config import Settings, parse_rate
from core.errors import InvalidRequest
from models.base import utcnow
from models.batch import Batch, batch_by_id, batch_counts, new_batch_id
from models.event import JobEvent
from models.job import Job, JobStatus
from models.job_queries import active_job_count, job_columns, recent_job_count
from models.lifecycle import NEW_DELIVERIES, cancel_open_jobs
from models.spend import add_spend, day_of

_JOBS = cast(Table, Job.__table__)
_EVENTS = cast(Table, JobEvent.__table__)


async def create_batch(
    session: AsyncSession,
    client: ClientIdentity,
    request: BatchCreate,
    *,
    idempotency_key: str | None,
    settings: Settings,
    nudger: Nudger,
) -> tuple[Batch, bool]:
    """Store the batch and its jobs, commit, nudge. Returns (batch, replayed)."""
    now = utcnow()
    fingerprint = hashlib.sha256(request.model_dump_json(exclude_none=True).encode()).hexdigest()
    if idempotency_key is not None:
        replay = await _replay(session, client.id, idempotency_key, fingerprint, now)
        if replay is not None:
            return replay, True
    batch = Batch(
        id=new_batch_id(),
        client_id=client.id,
        webhook_url=await check_webhook_url(request.webhook_url, settings)
        if request.webhook_url
        else None,
        meta=request.metadata,
        job_count=len(request.jobs),
        jobs_open=len(request.jobs),
        created_at=now,
    )
    refuse_test_mode_if_unavailable(client, settings)
    jobs, uploads = [], []
    for index, item in enumerate(request.jobs):
        if item.metadata is None:
            item.metadata = request.metadata
        try:
            valid = await validate_request(item, [], settings, session=session, client_id=client.id)
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"jobs[{index}].{exc.field}", exc.message, code=exc.code, **exc.extra
            ) from None
        # A microsecond apart: the batch's jobs are admitted in the order they were given.
        job, to_upload = build_job(valid, client, now + timedelta(microseconds=index))
        job.batch_id = batch.id
        jobs.append(job)
        uploads.append((job, to_upload))
    await _refuse_over_limits(session, client, len(jobs), jobs, settings, now)
    session.add(batch)
    await session.flush()
    # With RETURNING, SQLAlchemy sends "insertmanyvalues": one INSERT of many rows per page
    # (up to 1,000 rows, fewer where the driver caps parameters), not one per job.
    await session.execute(insert(_JOBS).returning(_JOBS.c.id), [_row(job) for job in jobs])
    await session.execute(
        insert(_EVENTS).returning(_EVENTS.c.id),
        [
            {
                "job_id": job.id,
                "at": now,
                "kind": "transition",
                "to_status": JobStatus.QUEUED,
                "reason": f"created by client {client.name} in {batch.id}",
            }
            for job in jobs
        ],
    )
    for job, to_upload in uploads:
        keep_uploads(session, job, to_upload)
    total = sum(job.credits_estimated or 0.0 for job in jobs)
    if total and (client.daily_credits is not None or client.monthly_credits is not None):
        dialect = session.get_bind().dialect.name
        await session.execute(add_spend(dialect, client.id, day_of(now), total))
    if idempotency_key is not None:
        await idempotency.remember(
            session, client.id, idempotency_key, fingerprint, settings, now, batch_id=batch.id
        )
    replay = await idempotency.commit_or_replay(
        session,
        idempotency_key,
        lambda: _replay(session, client.id, idempotency_key or "", fingerprint, now),
    )
    if replay is not None:
        return replay, True
    nudger.nudge()
    return batch, False


def _row(job: Job) -> dict[str, Any]:
    return {column.key: getattr(job, attribute) for column, attribute in job_columns()}


async def _refuse_over_limits(
    session: AsyncSession,
    client: ClientIdentity,
    count: int,
    jobs: list[Job],
    settings: Settings,
    now: datetime,
) -> None:
    """The whole batch fits the client's limits, or nothing is stored: its unfinished jobs,
    its creation rate and its budgets, counted with the batch's jobs."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(CLIENT_LOCK, {"client_id": client.id})
    active = int(await session.scalar(active_job_count(client.id)) or 0)
    if active + count > client.max_active_jobs:
        raise TooManyJobs(
            f"{active} of your jobs are unfinished and this batch has {count}; the most allowed "
            f"at once is {client.max_active_jobs}",
            headers={"Retry-After": "30"},
        )
    rate = parse_rate(client.create_rate or settings.client_create_rate)
    since = now - timedelta(seconds=rate.window)
    recent = int(await session.scalar(recent_job_count(client.id, since, rate.count)) or 0)
    if recent + count > rate.count:
        wait = max(1, math.ceil(rate.window))
        raise RateLimited(
            f"at most {rate.count} new jobs per {rate.window:g} s for this client; "
            f"{recent} made, this batch has {count}",
            headers={"Retry-After": str(wait)},
        )
    await refuse_if_over_budget(
        session, client, sum(job.credits_estimated or 0.0 for job in jobs), now
    )


async def _replay(
    session: AsyncSession, client_id: str, key: str, fingerprint: str, now: datetime
) -> Batch | None:
    record = await idempotency.remembered(session, client_id, key, fingerprint, now)
    if record is None:
        return None
    if record.batch_id is None:  # the key made a single job
        raise idempotency.reused_for_another_kind()
    return await get_batch(session, record.batch_id, client_id)


async def get_batch(session: AsyncSession, batch_id: str, client_id: str | None) -> Batch:
    batch = await session.scalar(
        batch_by_id(batch_id, client_id).execution_options(populate_existing=True)
    )
    if batch is None:
        raise NotFound(f"no batch {batch_id}")
    return cast(Batch, batch)


async def counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = (await session.execute(batch_counts(batch_id))).all()
    return {str(status): int(n) for status, n in rows}


async def cancel_batch(
    session: AsyncSession, client_id: str, batch_id: str, *, nudger: Nudger
) -> Batch:
    """Cancel every job of the batch not yet sent to Kie, in one transaction; the others
    finish as they would."""
    await get_batch(session, batch_id, client_id)
    canceled = await session.run_sync(
        cancel_open_jobs, batch_id, reason="canceled with its batch by the client"
    )
    await session.commit()
    session.sync_session.info.pop(NEW_DELIVERIES, None)  # the nudge's sweep sends them
    if canceled:
        nudger.nudge()
    return await get_batch(session, batch_id, client_id)
