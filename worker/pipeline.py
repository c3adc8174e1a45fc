"""What the worker does with one job. Plain functions taking a session: tasks are thin wrappers.

Each call re-reads the row, does at most a short step or two (an upload, a createTask, a
recordInfo), records the outcome with a compare-and-set and sets `next_check_at` for the next
step. Nothing here sleeps: waiting is a row with a time on it, picked up by the sweep.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.catalogue import get_catalogue
from models.job import Job, JobImage, JobStatus
from models.lifecycle import AT_KIE, TERMINAL, fail, record_event, transition
from soraq.config import Settings
from soraq.metrics import KIE_CALLS, KIE_LATENCY
from worker.admission import acquire_create, pause
from worker.errors import ExternalError
from worker.imgbb import ImgbbClient
from worker.kie import KieClient, TaskInfo

log = logging.getLogger(__name__)
S = JobStatus


def _context(job: Job, **more: object) -> dict[str, object]:
    """Log context: JSON keys in production logs."""
    return {"job_id": job.id, "client": job.client_id, "kie_task_id": job.kie_task_id, **more}


T = TypeVar("T")


@dataclass(frozen=True)
class Clients:
    kie: KieClient
    imgbb: ImgbbClient


def advance(session: Session, job_id: str, clients: Clients, settings: Settings) -> None:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status in TERMINAL:
        return
    now = utcnow()
    status = JobStatus(job.status)
    if status == S.QUEUED:
        _start(session, job, clients, settings, now)
    elif status in (S.UPLOADING, S.SUBMITTING):
        _stage_lease_check(session, job, clients, settings, now)
    elif status in AT_KIE:
        _check(session, job, clients.kie, settings, now)


def _start(session: Session, job: Job, clients: Clients, settings: Settings, now: datetime) -> None:
    has_upload = session.scalar(select(JobImage.job_id).where(JobImage.job_id == job.id))
    if has_upload:
        lease = now + timedelta(seconds=settings.imgbb_timeout * 2 + 10)
        if not _claim_stage(session, job, S.QUEUED, S.UPLOADING, lease, now):
            return
        _upload(session, job, clients, settings)
    else:
        _to_submitting(session, job, S.QUEUED, clients, settings)


def _claim_stage(
    session: Session, job: Job, expected: JobStatus, new: JobStatus, lease: datetime, now: datetime
) -> bool:
    # deadline_at is the lease: a job still in this stage after it was abandoned by a crash.
    claimed = transition(
        session,
        job.id,
        expected,
        new,
        now=now,
        reason=f"a worker took the job ({new.value})",
        deadline_at=lease,
        next_check_at=lease,
        started_at=job.started_at or now,
    )
    session.commit()
    if claimed:
        job.status, job.deadline_at = new, lease
    return claimed


def _stage_lease_check(
    session: Session, job: Job, clients: Clients, settings: Settings, now: datetime
) -> None:
    if job.deadline_at is not None and now < job.deadline_at:
        return  # another worker holds this stage; a duplicate delivery does nothing
    if job.status == S.UPLOADING:
        # Uploads cost nothing and are safe to repeat.
        lease = now + timedelta(seconds=settings.imgbb_timeout * 2 + 10)
        if _claim_stage(session, job, S.UPLOADING, S.UPLOADING, lease, now):
            _upload(session, job, clients, settings)
        return
    # Submitting past its lease: a worker died during createTask. Kie may have created a task
    # we cannot name; we never resubmit blindly, because every task is paid for.
    fail(
        session,
        job.id,
        S.SUBMITTING,
        "submit_unknown",
        "The worker stopped while submitting to Kie; the job was not resubmitted so that it "
        "cannot be paid for twice. Submit it again if no video arrives.",
    )
    session.commit()
    log.warning("job %s failed: submit outcome unknown", job.id, extra=_context(job))


def _upload(session: Session, job: Job, clients: Clients, settings: Settings) -> None:
    image = session.get(JobImage, job.id)
    if image is None:  # uploaded by an earlier attempt that stopped just after
        if job.image_url:
            _to_submitting(session, job, S.UPLOADING, clients, settings)
        else:
            fail(session, job.id, S.UPLOADING, "image_missing", "The uploaded image was lost.")
            session.commit()
        return
    extension = image.content_type.split("/")[-1]
    try:
        url = clients.imgbb.upload(
            image.data, name=f"{job.id}.{extension}", content_type=image.content_type
        )
    except ExternalError as exc:
        _retry_or_fail(session, job, S.UPLOADING, exc, settings)
        return
    moved = transition(session, job.id, S.UPLOADING, S.UPLOADING, image_url=url)
    if moved:
        session.execute(delete(JobImage).where(JobImage.job_id == job.id))
    session.commit()
    if moved:
        job.image_url = url
        _to_submitting(session, job, S.UPLOADING, clients, settings)


def _to_submitting(
    session: Session, job: Job, expected: JobStatus, clients: Clients, settings: Settings
) -> None:
    # Claim the stage first and take the createTask token last, so that only a Redis round
    # trip lies between the token's time and the call Kie counts.
    now = utcnow()
    lease = now + timedelta(seconds=settings.submit_lease)
    if not _claim_stage(session, job, expected, S.SUBMITTING, lease, now):
        return
    try:
        wait = acquire_create(session, settings)
    except Exception:
        _requeue(session, job, 1.0, "the create limit could not be read")
        raise
    session.commit()  # frees the scheduler lock for other workers
    if wait is not None:
        # Kie's window is full (admissions bunched up in the broker): back to the queue
        # rather than a 429; admission picks the job again, fairly, when a token frees.
        _requeue(session, job, wait, f"waiting {wait:.2f} s for Kie's create limit")
        return
    _submit(session, job, clients.kie, settings)


def _requeue(session: Session, job: Job, wait: float, reason: str) -> None:
    """Nothing was sent to Kie: the job goes back to the queue for `wait` seconds."""
    session.rollback()
    now = utcnow()
    transition(
        session,
        job.id,
        S.SUBMITTING,
        S.QUEUED,
        now=now,
        reason=reason,
        next_check_at=now + timedelta(seconds=wait),
        admitted_at=None,
        deadline_at=None,
    )
    session.commit()


def _submit(session: Session, job: Job, kie: KieClient, settings: Settings) -> None:
    spec = get_catalogue().get(job.model)
    params = {name: value for name, value in job.input.items() if name in spec.params}
    body = spec.kie_input(job.input["prompt"], params, job.image_url)
    callback = (
        f"{settings.public_url.rstrip('/')}/kie/callback/{job.callback_token}"
        if settings.public_url
        else None
    )
    try:
        task_id = _kie_call(
            session, job.id, "createTask", lambda: kie.create_task(job.model, body, callback)
        )
    except ExternalError as exc:
        if exc.maybe_sent:
            fail(
                session,
                job.id,
                S.SUBMITTING,
                "submit_unknown",
                f"Kie gave no definite answer to createTask ({exc.message}); the job was not "
                "resubmitted so that it cannot be paid for twice.",
            )
            session.commit()
            return
        _retry_or_fail(session, job, S.SUBMITTING, exc, settings)
        return
    now = utcnow()
    first_check = now + timedelta(seconds=_check_interval(settings, elapsed=0.0))
    recorded = transition(
        session,
        job.id,
        S.SUBMITTING,
        S.WAITING,
        now=now,
        reason="Kie accepted the task",
        kie_task_id=task_id,
        submitted_at=now,
        attempts=0,
        progress=0,
        deadline_at=now + timedelta(seconds=settings.job_timeout),
        # A callback that beat us here makes the first check immediate.
        next_check_at=case((Job.callback_at.is_not(None), now), else_=first_check),
    )
    if not recorded:
        # The job moved on while we were at Kie (e.g. failed as submit_unknown after a long
        # stall). Keep the task id for the record so an operator can find the paid task.
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.kie_task_id.is_(None))
            .values(kie_task_id=task_id)
        )
        log.warning(
            "job %s: Kie task %s created after the job moved on",
            job.id,
            task_id,
            extra=_context(job, kie_task_id=task_id),
        )
    session.commit()
    log.info(
        "job %s submitted to Kie as %s", job.id, task_id, extra=_context(job, kie_task_id=task_id)
    )


def _kie_call(session: Session, job_id: str, endpoint: str, call: Callable[[], T]) -> T:
    """Make one Kie call, and record its outcome in the job's history and the metrics."""
    started = time.monotonic()
    code, message = "200", "success"
    try:
        return call()
    except ExternalError as exc:
        code, message = exc.code, exc.message
        raise
    finally:
        latency = time.monotonic() - started
        KIE_CALLS.labels(endpoint, code).inc()
        KIE_LATENCY.labels(endpoint).observe(latency)
        record_event(
            session,
            job_id,
            "kie_call",
            detail={
                "endpoint": endpoint,
                "code": code,
                "msg": message[:300],
                "latency_ms": round(latency * 1000),
            },
        )


def _check(session: Session, job: Job, kie: KieClient, settings: Settings, now: datetime) -> None:
    status = JobStatus(job.status)
    assert job.kie_task_id is not None
    info: TaskInfo | None = None
    error: ExternalError | None = None
    try:
        task_id = job.kie_task_id
        info = _kie_call(session, job.id, "recordInfo", lambda: kie.record_info(task_id))
    except ExternalError as exc:
        if not exc.retryable:
            fail(session, job.id, status, exc.code, exc.message)
            session.commit()
            return
        error = exc
    finished = info is not None and info.state in ("success", "fail")
    # Ask Kie before giving up: a check that runs late must not discard a finished video.
    if not finished and job.deadline_at is not None and now >= job.deadline_at:
        fail(
            session,
            job.id,
            status,
            "timeout",
            f"Kie did not finish the task within {settings.job_timeout:.0f} s.",
        )
    elif info is None:
        _reschedule(session, job, status, settings, now, retry=error)
    else:
        _apply(session, job, status, info, settings, now)
    session.commit()


def _apply(
    session: Session,
    job: Job,
    status: JobStatus,
    info: TaskInfo,
    settings: Settings,
    now: datetime,
) -> None:
    if info.state == "success":
        if not info.video_urls:
            fail(
                session,
                job.id,
                status,
                "kie_bad_response",
                "Kie reported success without a video URL.",
            )
            return
        transition(
            session,
            job.id,
            status,
            S.SUCCEEDED,
            now=now,
            reason="Kie finished the video",
            progress=100,
            result={
                "video_urls": info.video_urls,
                "watermarked_video_urls": info.watermarked_video_urls,
            },
        )
        log.info("job %s succeeded", job.id, extra=_context(job))
    elif info.state == "fail":
        fail(
            session,
            job.id,
            status,
            "kie_task_failed",
            info.fail_msg or "Kie reported the generation failed.",
            kie_fail_code=info.fail_code or None,
        )
        log.info(
            "job %s failed at Kie: %s %s",
            job.id,
            info.fail_code,
            info.fail_msg,
            extra=_context(job),
        )
    elif info.state == "pending":
        submitted = job.submitted_at or now
        if (now - submitted).total_seconds() > settings.pending_grace:
            fail(
                session,
                job.id,
                status,
                "kie_task_not_found",
                f"Kie still does not know task {job.kie_task_id}.",
            )
        else:
            _reschedule(session, job, status, settings, now)
    else:
        new = JobStatus(info.state)
        _reschedule(
            session,
            job,
            status,
            settings,
            now,
            new=new,
            reason=f"Kie: {new.value}",
            progress=info.progress if info.progress is not None else job.progress,
        )


def _reschedule(
    session: Session,
    job: Job,
    status: JobStatus,
    settings: Settings,
    now: datetime,
    *,
    new: JobStatus | None = None,
    retry: ExternalError | None = None,
    **values: Any,
) -> None:
    elapsed = (now - (job.submitted_at or now)).total_seconds()
    delay = _check_interval(settings, elapsed)
    attempts = 0
    if retry is not None:
        attempts = job.attempts + 1
        delay = max(delay, _backoff(settings, attempts, retry.retry_after))
    transition(
        session,
        job.id,
        status,
        new or status,
        now=now,
        attempts=attempts,
        next_check_at=now + timedelta(seconds=delay),
        **values,
    )


def _check_interval(settings: Settings, elapsed: float) -> float:
    """When to look at Kie next. With callbacks on, polling is only a safety net."""
    if settings.callbacks_enabled:
        return settings.callback_check_interval
    # Geometric growth without a counter: the next check comes `backoff` times later.
    grown = elapsed * (settings.check_backoff - 1)
    return min(settings.check_max_interval, max(settings.check_initial_delay, grown))


def _backoff(settings: Settings, attempts: int, retry_after: float | None) -> float:
    delay = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (attempts - 1))
    delay *= random.uniform(0.5, 1.0)  # jitter: a 429 storm must not return in lockstep
    return max(delay, retry_after or 0.0)


def _retry_or_fail(
    session: Session, job: Job, stage: JobStatus, exc: ExternalError, settings: Settings
) -> None:
    """A step before Kie accepted the task failed; Kie certainly holds no task for it."""
    # Kie's rate limit is a fact about the account, not about this job: it never fails a job
    # and costs no attempt, and it holds back every admission (worker.admission) meanwhile.
    rate_limited = exc.code == "kie_rate_limited"
    attempts = job.attempts if rate_limited else job.attempts + 1
    if not exc.retryable or attempts >= settings.max_attempts:
        fail(session, job.id, stage, exc.code, exc.message, attempts=attempts)
        log.info("job %s failed: %s", job.id, exc, extra=_context(job))
    else:
        now = utcnow()
        delay = _backoff(settings, max(attempts, 1), exc.retry_after)
        if rate_limited:
            pause(session, now + timedelta(seconds=delay))
        transition(
            session,
            job.id,
            stage,
            S.QUEUED,
            now=now,
            reason=f"{exc.code}: {exc.message} — retrying in {delay:.1f} s",
            attempts=attempts,
            next_check_at=now + timedelta(seconds=delay),
            deadline_at=None,
        )
        log.info(
            "job %s: %s; retrying in %.1f s (attempt %d)",
            job.id,
            exc,
            delay,
            attempts,
            extra=_context(job),
        )
    session.commit()
