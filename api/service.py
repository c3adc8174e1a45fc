"""What the API does with jobs: validate against the catalogue, store, commit, then nudge."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import anyio
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.account_routes import read_health
from api.auth import ClientIdentity
from api.budgets import budget_check, refuse_if_over_budget
from api.cursors import decode_cursor, encode_cursor
from api.errors import (
    Conflict,
    JobFinished,
    JobNotFinished,
    NotFound,
    RateLimited,
    TestModeUnavailable,
    TooManyJobs,
)
from api.nudge import Nudger
from api.schemas import JobCreate
from api.validation import (
    ImageBytes,
    ImageSource,
    ValidRequest,
    request_fingerprint,
    validate_request,
)
from catalogue.accounts import DEFAULT_ACCOUNT, Account
from core import tracing
from core.config import Rate, Settings, parse_rate
from core.metrics import ORPHAN_TASKS
from media import store
from models.account_queries import record_balance, record_charge
from models.base import utcnow
from models.erasure import Erased, erase, media_keys
from models.event import JobEvent
from models.job import Job, JobImage, JobStatus, new_callback_token, new_job_id
from models.job_queries import (
    active_job_count,
    check_now_by_callback,
    insert_job_within_limit,
    job_by_id,
    jobs_ahead,
    jobs_page,
    release_claim,
)
from models.lifecycle import AT_KIE, NEW_DELIVERIES, TERMINAL, transition
from models.one_trip import can_send_together, commit_together
from models.spend import add_spend, add_spend_for_new_job, day_of, sync_spend
from models.webhook import WebhookDelivery
from upstreams.fal_queue import is_fal_task
from views.jobs import PRIORITIES

# Built once: on the API's hottest path, building a statement costs more than running it.
log = logging.getLogger(__name__)
_NEW_EVENT = insert(cast(Table, JobEvent.__table__))
CLIENT_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:client_id, 0))")


async def create_job(
    session: AsyncSession,
    client: ClientIdentity,
    request: JobCreate,
    uploads: list[tuple[str, str, ImageBytes]],
    *,
    idempotency_key: str | None,
    settings: Settings,
    nudger: Nudger,
) -> tuple[Job, bool]:
    """Store a new job, commit, then nudge the worker. Returns (job, replayed)."""
    now = utcnow()
    # The request's fingerprint only serves an Idempotency-Key.
    fingerprint = request_fingerprint(request, uploads) if idempotency_key is not None else ""
    if idempotency_key is not None:
        replay = await _idempotent_replay(session, client.id, idempotency_key, fingerprint, now)
        if replay is not None:
            return replay, True
    valid = await validate_request(request, uploads, settings, session=session, client_id=client.id)
    refuse_test_mode_if_unavailable(client, settings)
    job, to_upload = build_job(valid, client, now)
    # With nothing else to store in its transaction, the job commits with its own insert.
    alone = not to_upload and idempotency_key is None
    if await _insert_within_limits(session, client, job, settings, now, commit=alone):
        nudger.nudge()
        return job, False
    keep_uploads(session, job, to_upload)
    if idempotency_key is not None:
        await idempotency.remember(
            session, client.id, idempotency_key, fingerprint, settings, now, job_id=job.id
        )
    # Commit before anything is enqueued: the row is what a lost message is recovered from.
    # (A concurrent request with the same key that won the insert: answer with its job.)
    replay = await idempotency.commit_or_replay(
        session,
        idempotency_key,
        lambda: _idempotent_replay(session, client.id, idempotency_key or "", fingerprint, now),
    )
    if replay is not None:
        return replay, True
    nudger.nudge()
    return job, False


def refuse_test_mode_if_unavailable(client: ClientIdentity, settings: Settings) -> None:
    if not client.livemode and not settings.test_mode_kie_url:
        raise TestModeUnavailable(
            "this is a test-mode key and this server has no sandbox for test jobs; "
            "use a live key, or ask the operator to set TEST_MODE_KIE_URL"
        )


def build_job(
    valid: ValidRequest, client: ClientIdentity, now: datetime
) -> tuple[Job, list[tuple[int, ImageSource]]]:
    """The new job's row (not yet added), and the uploaded images to keep beside it."""
    images, shown_input, to_upload = valid.stored_images()
    estimate = valid.estimate if client.livemode else 0.0
    first_url = next((i["url"] for i in images if i["role"] == "first_frame" and "url" in i), None)
    job_id = new_job_id()
    job = Job(
        id=job_id,
        callback_token=new_callback_token(),
        client_id=client.id,
        status=JobStatus.QUEUED,
        model=valid.spec.id,
        input=shown_input,
        meta=valid.request.metadata,
        image_url=first_url,
        images=images or None,
        webhook_url=valid.webhook_url,
        webhook_events=sorted(set(valid.request.webhook_events))
        if valid.request.webhook_events
        else None,
        priority=PRIORITIES[valid.request.priority],
        route=valid.route,
        fal_refusal=valid.fal_refusal,
        livemode=client.livemode,
        batch_id=None,
        # A test-mode job goes to the sandbox: it costs nothing and counts against no budget.
        credits_estimated=estimate,
        credits_reserved=estimate,  # counts against the client's budgets until it settles
        credits_counted=estimate,  # and is in its spend counter (models.spend)
        failures=0,
        created_at=now,
        updated_at=now,
        next_check_at=now,
        traceparent=tracing.start_job(job_id, client.id, valid.spec.id),
    )
    return job, to_upload


async def _insert_within_limits(
    session: AsyncSession,
    client: ClientIdentity,
    job: Job,
    settings: Settings,
    now: datetime,
    *,
    commit: bool = False,
) -> bool:
    """Insert the job unless its client is at its active-job limit, its creation rate or a
    budget (one statement: its unfinished-job counter, its recent jobs, the budget sums and
    the insert); raise why not.

    With `commit`, and where the driver allows, the insert commits in the same round trip
    as the client's lock (models.one_trip): True if it did, False if the transaction is
    left open for the caller's other rows and its commit."""
    rate = parse_rate(client.create_rate or settings.client_create_rate)
    since = now - timedelta(seconds=rate.window)
    estimate = job.credits_estimated or 0.0
    dialect = session.get_bind().dialect.name
    # Core statements on the session's connection, not the ORM's unit of work or its execute:
    # this is the hottest path in the API.
    connection = await session.connection()
    reason = f"created by client {client.name}"
    folded = dialect == "postgresql"  # the first history row comes with the insert itself
    insert = insert_job_within_limit(
        job,
        client.max_active_jobs,
        rate.count,
        since,
        budget_check(client, now),
        created_reason=reason if folded else None,
    )
    spends = bool(estimate) and (
        client.daily_credits is not None or client.monthly_credits is not None
    )
    # Count and insert one request at a time per client: under READ COMMITTED two
    # concurrent inserts would each count without the other and both pass the limit.
    lock = (CLIENT_LOCK, {"client_id": client.id})
    committed = commit and can_send_together(connection)
    if committed:
        together: list[tuple[Any, Mapping[str, Any]]] = [lock, insert]
        if spends:  # the reservation, counted only if the job was inserted
            spend = {"client_id": client.id, "day": day_of(now), "credits": estimate}
            together.append((add_spend_for_new_job(), {**spend, "job_id": job.id}))
        row = (await commit_together(connection, together))[1]
        inserted = row[0] if row is not None else None
    else:
        if dialect == "postgresql":
            await connection.execute(*lock)
        inserted = await connection.scalar(*insert)
    if inserted is None:
        await _refuse_over_limit(session, client, rate, since, now, estimate)
    if spends and not committed:
        # The reservation goes into the client's spend counter in this same transaction.
        await connection.execute(add_spend(dialect, client.id, day_of(now), estimate))
    if not folded:
        await connection.execute(
            _NEW_EVENT,
            {
                "job_id": job.id,
                "at": now,
                "kind": "transition",
                "to_status": JobStatus.QUEUED,
                "reason": reason,
            },
        )
    return committed


def keep_uploads(session: AsyncSession, job: Job, to_upload: list[tuple[int, ImageSource]]) -> None:
    for position, source in to_upload:
        assert source.upload is not None
        session.add(
            JobImage(
                job_id=job.id,
                position=position,
                role=source.role,
                content_type=source.upload.content_type,
                data=source.upload.data,
            )
        )


async def _refuse_over_limit(
    session: AsyncSession,
    client: ClientIdentity,
    rate: Rate,
    since: datetime,
    now: datetime,
    estimate: float,
) -> None:
    active = await session.scalar(active_job_count(client.id))
    if (active or 0) >= client.max_active_jobs:
        raise TooManyJobs(
            f"{active} of your jobs are unfinished, the most allowed at once is "
            f"{client.max_active_jobs}; retry when some finish",
            headers={"Retry-After": "30"},
        )
    await refuse_if_over_budget(session, client, estimate, now)
    oldest = await session.scalar(
        select(func.min(Job.created_at)).where(Job.client_id == client.id, Job.created_at > since)
    )
    wait = max(1, math.ceil(rate.window - (now - (oldest or now)).total_seconds()))
    raise RateLimited(
        f"at most {rate.count} new jobs per {rate.window:g} s for this client; retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )


async def _idempotent_replay(
    session: AsyncSession, client_id: str, key: str, fingerprint: str, now: datetime
) -> Job | None:
    record = await idempotency.remembered(session, client_id, key, fingerprint, now)
    if record is None:
        return None
    if record.job_id is None:  # the key made a batch
        raise idempotency.reused_for_another_kind()
    return await get_job(session, record.job_id, client_id)


async def erase_job(session: AsyncSession, client_id: str | None, job_id: str, *, by: str) -> Job:
    """Erase a finished job's data (models.erasure); an unfinished job is refused, never
    canceled behind the caller's back: cancel it first. `client_id` None is an operator."""
    job = await get_job(session, job_id, client_id)  # 404 unless it is the caller's
    if job.deleted_at is None and job.status in TERMINAL:
        # The archived files first (blocking calls: off the event loop); a storage outage
        # leaves the job whole, and the error says to try again.
        for key in media_keys(job):
            await anyio.to_thread.run_sync(store.delete, key)
    erasure = await session.run_sync(
        lambda sync: erase(sync, job_id, utcnow(), by=by, delete_objects=False)
    )
    if erasure.outcome == Erased.NOT_FINISHED:
        raise JobNotFinished(
            f"job {job_id} has not ended: cancel it first (POST /jobs/{job_id}/cancel), "
            "then delete it"
        )
    await session.commit()
    return await get_job(session, job_id, client_id)


async def cancel_job(
    session: AsyncSession, client_id: str | None, job_id: str, *, nudger: Nudger, by: str
) -> Job:
    """Cancel now: a job not yet at Kie is never submitted; one at Kie is no longer watched, and
    a late result cannot bring it back (every worker update is a compare-and-set).
    `client_id` None is an operator, who may cancel any job."""
    for _ in range(5):
        job = await get_job(session, job_id, client_id)
        status = JobStatus(job.status)
        if status == JobStatus.CANCELED:
            return job
        if status in TERMINAL:
            raise JobFinished(f"job {job_id} already {status.value}")
        at_fal = is_fal_task(job.kie_task_id or "")  # (read before the commit expires it)
        moved = await session.run_sync(
            transition, job_id, status, JobStatus.CANCELED, reason=f"canceled by {by}"
        )
        await session.commit()
        # The worker publishes new deliveries after its commits; here the nudge's sweep
        # claims the webhook (due now), so the list transition() kept is dropped.
        session.sync_session.info.pop(NEW_DELIVERIES, None)
        if moved:
            nudger.nudge()  # its completion webhook, if any, is due now
            if at_fal:
                # fal runs (and bills) a request until told otherwise; Kie has no cancel.
                await nudger.cancel_upstream(job_id)
            return await get_job(session, job_id, client_id)
    raise Conflict("the job kept changing; try again")


async def get_job(session: AsyncSession, job_id: str, client_id: str | None) -> Job:
    job = await session.scalar(
        job_by_id(job_id, client_id).execution_options(populate_existing=True)
    )
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def queue_position(session: AsyncSession, job: Job) -> int | None:
    if job.status != JobStatus.QUEUED:
        return None
    return 1 + int(await session.scalar(jobs_ahead(job)) or 0)


async def account_waiting_reason(
    session: AsyncSession, job: Job, every: tuple[Account, ...]
) -> str | None:
    """While every account the job may go to (its pinned route, else each serving its
    model) is refused or rate-limited, it waits for the first one's reason (a test-mode
    job's account is the sandbox)."""
    if job.status != JobStatus.QUEUED or not job.livemode:
        return None
    routes = [
        a
        for a in every
        if (a.name == job.route if job.route else a.takes(job.model, job.fal_refusal))
    ]
    health = await read_health(session, tuple(routes))
    reasons = [reason or ("rate_limited" if limited else None) for _, reason, limited in health]
    return reasons[0] if reasons and all(reasons) else None


async def latest_deliveries(session: AsyncSession, jobs: list[Job]) -> dict[str, WebhookDelivery]:
    with_webhook = [job.id for job in jobs if job.webhook_url]
    if not with_webhook:
        return {}
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.job_id.in_(with_webhook),
            WebhookDelivery.event_type.like("job.%"),  # not a batch's event
        )
        .order_by(WebhookDelivery.created_at)
    )
    return {delivery.job_id: delivery for delivery in rows}  # the newest one wins


async def list_jobs(
    session: AsyncSession,
    *,
    client_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    batch_id: str | None = None,
) -> tuple[list[Job], str | None]:
    after = decode_cursor(cursor) if cursor else None
    page = jobs_page(
        client_id=client_id, status=status, limit=limit + 1, after=after, batch_id=batch_id
    )
    rows = list((await session.scalars(page)).all())
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def job_for_callback(session: AsyncSession, token: str) -> Job | None:
    return await session.scalar(
        select(Job).where(Job.callback_token == token).execution_options(populate_existing=True)
    )


async def kie_callback(
    session: AsyncSession,
    job: Job,
    task_id: str,
    *,
    debounce: float,
    nudger: Nudger,
    charged: tuple[float, str] | None = None,
    remaining: float | None = None,
    lease: float = 60.0,
) -> bool:
    """Kie says a task finished: make the job due now (its worker re-reads the task), at most
    once per `debounce` seconds. A job with no task id of its own (its createTask answer was
    lost) keeps the named task id as a candidate the worker will check before adopting it.

    The callback's charge (creditsConsumed or consumeCredits) settles the job's charge (its
    own task only) and its remainedCredits is the account's balance as of now — committed
    before the worker is nudged, so the completion webhook already carries Kie's figure.

    A step of the job's trace (linked to the request Kie made): the check it sends to a
    worker carries the job's context in its headers."""
    extra = {"kie.task_id": task_id} if task_id else None
    with tracing.job_span("soraq.job.callback", job, extra=extra):
        now = utcnow()
        found = (
            await session.execute(
                check_now_by_callback(
                    job.id, task_id or None, now=now, debounce=debounce, lease=lease
                )
            )
        ).first()
        if job.status in TERMINAL and task_id and task_id != job.kie_task_id:
            # A task for a job that has ended (its createTask answer was lost past SUBMIT_LEASE,
            # or it was canceled meanwhile): the job's end is final. The task is recorded in the
            # history and counted, for an operator to find the paid video.
            await session.execute(
                _NEW_EVENT.values(
                    job_id=job.id,
                    at=now,
                    kind="callback",
                    reason=f"Kie called back about task {task_id} after the job had ended "
                    f"({job.status}): recorded, the job does not change",
                    detail={"kie_task_id": task_id},
                )
            )
            ORPHAN_TASKS.inc()
            log.warning(
                "job %s (%s) got a callback for task %s after it ended: recorded, not revived",
                job.id,
                job.status,
                task_id,
            )
        if not job.livemode:
            charged = remaining = None  # the sandbox's figures: nothing was spent at Kie
        if task_id and charged is not None:
            await session.execute(record_charge(job.id, task_id, *charged))
            for statement in sync_spend(session.get_bind().dialect.name, job.id):
                await session.execute(statement)
        if remaining is not None and task_id and task_id == job.kie_task_id:
            # Only a callback about the job's own task speaks for the account's balance (which
            # gates admission): a callback naming any other task changes nothing here.
            upstream = job.account or DEFAULT_ACCOUNT  # the account its task was sent to
            await session.execute(record_balance(remaining, now, upstream))
        await session.commit()
        if found is None:
            return False
        if found.status in AT_KIE and await nudger.check_now(job.id):
            return True
        if found.status in AT_KIE:
            # The broker did not take the direct check: give the claim back to the sweep.
            await session.execute(release_claim(job.id))
            await session.commit()
        nudger.nudge()
        return True
