"""The job state machine. Every change is a compare-and-set on the state the caller last saw.

    queued ─▶ uploading ─▶ submitting ─▶ waiting ⇄ queuing ⇄ generating ─▶ archiving ─▶ succeeded
       │          │  ▲          │  ▲                                     └──────┴─▶ failed
       └──────────┴──┴──────────┴──┴─▶ failed   (transient errors go back to queued)
    any unfinished state ─▶ canceled

A message delivered twice, or a callback racing a scheduled check, finds the state moved on and
its update matches no row: it does nothing. A job that reaches a final state gets its completion
webhook queued in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy.orm import Session

from models.account_queries import record_charge
from models.base import utcnow
from models.batch import Batch, cancelable_jobs, close_one_job
from models.event import JobEvent
from models.job import Job, JobStatus, new_callback_token
from models.spend import sync_spend
from models.webhook import WebhookDelivery, new_event_id

AT_KIE = frozenset({JobStatus.WAITING, JobStatus.QUEUING, JobStatus.GENERATING})
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.UPLOADING, JobStatus.SUBMITTING, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.UPLOADING: frozenset(
        {JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    # Back to queued only when Kie certainly created no task (a refusal with an answer).
    JobStatus.SUBMITTING: AT_KIE | {JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELED},
    **{s: AT_KIE | TERMINAL | {JobStatus.ARCHIVING} for s in AT_KIE},
    # The video exists and is paid for: it is copied into storage, then the job succeeds.
    JobStatus.ARCHIVING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}

# Values worth showing in a transition's history entry.
_SHOWN = ("kie_task_id", "error_code", "kie_fail_code", "failures", "image_url")

# Event ids queued in a session, for whoever publishes them after the commit.
NEW_DELIVERIES = "soraq.new_deliveries"


class IllegalTransition(ValueError):
    pass


def transition_values(
    expected: JobStatus, new: JobStatus, now: datetime, values: dict[str, Any]
) -> dict[str, Any]:
    if new != expected and new not in ALLOWED[expected]:
        raise IllegalTransition(f"{expected} -> {new}")
    values = {"status": new, "updated_at": now, **values}
    values.update(_settle_credits(expected, new, values))
    if "next_check_at" in values:
        values["claimed_until"] = None  # a step that sets the next time ends the sweep's claim
    if new in TERMINAL:
        values.setdefault("finished_at", now)
        values["next_check_at"] = None
    return values


# States a job leaves without Kie having accepted a task: nothing was spent.
_BEFORE_KIE = frozenset({JobStatus.QUEUED, JobStatus.UPLOADING})


def _settle_credits(expected: JobStatus, new: JobStatus, values: dict[str, Any]) -> dict[str, Any]:
    """A job's budget reservation at its end: the charge on success (Kie's reported figure,
    else the estimate); nothing when it ended before Kie accepted a task (a refusal with an
    answer, or before the createTask). A submit whose outcome is unknown, or a cancel while
    the createTask is in flight, keeps its reservation: the task may exist and be paid for."""
    if new == JobStatus.SUCCEEDED:
        return {"credits_reserved": func.coalesce(Job.credits_reported, Job.credits_estimated, 0.0)}
    if new in (JobStatus.FAILED, JobStatus.CANCELED) and (
        expected in _BEFORE_KIE
        or (
            expected == JobStatus.SUBMITTING
            and new == JobStatus.FAILED
            and values.get("error_code") != "submit_unknown"
            and "kie_task_id" not in values
        )
    ):
        return {"credits_reserved": 0.0}
    return {}


def _sync_spend(session: Session, job_id: str) -> None:
    """The job's reservation changed: move the difference into its client's spend counter
    (the job's row is write-locked by the update just made)."""
    for statement in sync_spend(session.get_bind().dialect.name, job_id):
        session.execute(statement)


def record_reported_charge(
    session: Session, job_id: str, task_id: str, charge: tuple[float, str]
) -> None:
    """Kie's own figure for what the job's task cost (from recordInfo; a callback's goes
    through the API): the job's charge and its reservation, and its client's spend with it."""
    session.execute(record_charge(job_id, task_id, *charge))
    _sync_spend(session, job_id)


def cas_update(job_id: str, expected: JobStatus, values: dict[str, Any]) -> Any:
    return (
        update(Job)
        .where(Job.id == job_id, Job.status == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


WEBHOOK_EVENTS = ("started", "progress", "completed")
DEFAULT_WEBHOOK_EVENTS = ["completed"]


def queue_delivery(
    session: Session,
    job_id: str,
    event_type: str,
    url: str,
    now: datetime,
    progress: int | None = None,
) -> None:
    """Queue one webhook event; the worker sends it after the commit (the sweep is the
    backstop)."""
    event_id = new_event_id()
    session.execute(
        insert(WebhookDelivery).values(
            id=event_id,
            job_id=job_id,
            event_type=event_type,
            url=url,
            next_attempt_at=now,
            created_at=now,
            state="pending",
            attempts=0,
            progress=progress,
        )
    )
    session.info.setdefault(NEW_DELIVERIES, []).append(event_id)


def _wants(webhook_events: list[str] | None, event: str) -> bool:
    return event in (webhook_events or DEFAULT_WEBHOOK_EVENTS)


def _queue_webhooks(
    session: Session, job_id: str, expected: JobStatus, new: JobStatus, row: Any, now: datetime
) -> None:
    """The events this move raises: the job's own (as its client chose) and its batch's end."""
    if row.webhook_url:
        if new in TERMINAL and _wants(row.webhook_events, "completed"):
            queue_delivery(session, job_id, f"job.{new.value}", row.webhook_url, now)
        started = expected == JobStatus.SUBMITTING and new in AT_KIE
        if started and _wants(row.webhook_events, "started"):
            queue_delivery(session, job_id, "job.started", row.webhook_url, now)
    if new in TERMINAL and row.batch_id is not None:
        batch_id = close_one_job(session, job_id, now)
        if batch_id is not None:
            url = session.scalar(select(Batch.webhook_url).where(Batch.id == batch_id))
            if url:
                queue_delivery(session, job_id, "batch.completed", url, now)


def record_progress(session: Session, job: Job, progress: int | None, now: datetime) -> None:
    """The progress the job's client sees is `progress`: an event each time it reaches a new
    tenth (a compare-and-set on the last one announced, so a duplicate check adds nothing),
    and a `job.progress` webhook then if its client asked for them."""
    if progress is None or not 10 <= progress < 100:
        return
    tenth = progress // 10 * 10
    if job.progress_announced is not None and job.progress_announced >= tenth:
        return  # the common case on every check: no statement at all
    announced = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            or_(Job.progress_announced.is_(None), Job.progress_announced < tenth),
        )
        .values(progress_announced=tenth)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not announced:
        return
    record_event(session, job.id, "progress", now=now, detail={"progress": progress})
    if job.webhook_url and _wants(job.webhook_events, "progress"):
        queue_delivery(session, job.id, "job.progress", job.webhook_url, now, progress)


def record_event(
    session: Session,
    job_id: str,
    kind: str,
    *,
    now: datetime | None = None,
    reason: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append to the job's history; it commits (or not) with the caller's transaction."""
    session.execute(
        insert(JobEvent).values(
            job_id=job_id,
            at=now or utcnow(),
            kind=kind,
            reason=reason,
            from_status=from_status,
            to_status=to_status,
            detail=detail,
        )
    )


def transition(
    session: Session,
    job_id: str,
    expected: JobStatus,
    new: JobStatus,
    *,
    now: datetime | None = None,
    reason: str | None = None,
    only_if: ColumnElement[bool] | None = None,
    **values: Any,
) -> bool:
    """Move a job from `expected` to `new` (or update it in place when they are equal);
    `only_if`: a further condition the row must meet.

    Returns False when the job is no longer in `expected`: someone else moved it first.
    A real move is recorded in the job's history. The caller commits.
    """
    now = now or utcnow()
    changes = transition_values(expected, new, now, values)
    statement = cas_update(job_id, expected, changes)
    if only_if is not None:
        statement = statement.where(only_if)
    statement = statement.returning(Job.webhook_url, Job.webhook_events, Job.batch_id)
    row = session.execute(statement).first()
    moved = row is not None
    if moved and "credits_reserved" in changes:
        _sync_spend(session, job_id)
    if moved and new != expected:
        shown = {k: v for k, v in values.items() if k in _SHOWN and isinstance(v, str | int)}
        record_event(
            session,
            job_id,
            "transition",
            now=now,
            from_status=expected,
            to_status=new,
            reason=reason or values.get("error_message"),
            detail=shown or None,
        )
    if moved and new != expected:
        _queue_webhooks(session, job_id, expected, new, row, now)
    return moved


def cancel_open_jobs(session: Session, batch_id: str, *, reason: str) -> int:
    """Cancel the batch's jobs not yet at Kie; how many. The caller commits.

    Every such job is locked before the first is moved: a move takes the client's spend row
    and the batch's, and a worker ending one of these jobs meanwhile holds the job and wants
    those rows — waiting for its job while holding them would be a deadlock."""
    rows = session.execute(cancelable_jobs(batch_id)).all()
    return sum(
        transition(session, row.id, JobStatus(row.status), JobStatus.CANCELED, reason=reason)
        for row in rows
    )


def fail(
    session: Session, job_id: str, expected: JobStatus, code: str, message: str, **values: Any
) -> bool:
    return transition(
        session,
        job_id,
        expected,
        JobStatus.FAILED,
        error_code=code,
        error_message=message[:2000],
        **values,
    )


def fail_held_past_timeout(
    session: Session,
    held: ColumnElement[bool],
    cutoff: datetime,
    code: str,
    message: str,
    limit: int = 100,
) -> int:
    """Queued jobs matching `held` (an account's pause, a paused model) made before `cutoff`
    fail with `code`: they were never sent upstream, so nothing was charged. Locked in id
    order, as every many-job writer (models.job.in_lock_order). Returns how many."""
    expired = session.scalars(
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED, held, Job.created_at < cutoff)
        .order_by(Job.id)
        .limit(limit)
        .with_for_update(key_share=True)
    ).all()
    for job_id in expired:
        fail(session, job_id, JobStatus.QUEUED, code, message)
    return len(expired)


def retry(session: Session, job_id: str, *, now: datetime | None = None, reason: str) -> bool:
    """An operator gives a failed job a fresh attempt: a new Kie task, a new callback token.
    The earlier attempt stays in the history; nothing but this path leaves `failed`."""
    now = now or utcnow()
    result = session.execute(
        cas_update(
            job_id,
            JobStatus.FAILED,
            {
                "status": JobStatus.QUEUED,
                "updated_at": now,
                "next_check_at": now,
                "claimed_until": None,
                "failures": 0,
                "kie_task_id": None,
                "callback_token": new_callback_token(),
                "callback_at": None,
                "progress": None,
                "result": None,
                "error_code": None,
                "error_message": None,
                "kie_fail_code": None,
                # A fresh attempt is a new task, paid for anew: it reserves its estimate again.
                "credits_reported": None,
                "credits_reported_from": None,
                "credits_reserved": func.coalesce(Job.credits_estimated, 0.0),
                "deadline_at": None,
                "stage_lease_until": None,
                "submitted_at": None,
                "started_at": None,
                "finished_at": None,
            },
        ).where(Job.deleted_at.is_(None))  # an erased job is a tombstone
    )
    moved = bool(result.rowcount)  # type: ignore[attr-defined]
    if moved:
        _sync_spend(session, job_id)
        record_event(
            session,
            job_id,
            "transition",
            now=now,
            from_status=JobStatus.FAILED,
            to_status=JobStatus.QUEUED,
            reason=reason,
        )
    return moved


def adopt_task(
    session: Session, job_id: str, task_id: str, *, now: datetime, deadline: datetime
) -> bool:
    """A job whose createTask answer was lost (still `submitting`, within its lease) takes
    the task a callback named, once the upstream showed that task carries this job's own
    callback URL: the task exists and is paid for, so the job follows it."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.kie_task_id.is_(None),
            Job.adopt_task_id == task_id,
            Job.status == JobStatus.SUBMITTING,  # an ended job never comes back
        )
        .values(
            status=JobStatus.WAITING,
            kie_task_id=task_id,
            adopt_task_id=None,
            waiting_reason=None,
            submitted_at=now,
            deadline_at=deadline,
            stage_lease_until=None,
            failures=0,
            progress=0,
            updated_at=now,
            next_check_at=now,
            claimed_until=None,
        )
        .returning(Job.status)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return False
    record_event(
        session,
        job_id,
        "transition",
        now=now,
        to_status=JobStatus.WAITING,
        reason=f"adopted Kie task {task_id}: its createTask answer was lost, but the task "
        "carries this job's callback URL (no second createTask)",
        detail={"kie_task_id": task_id},
    )
    return True
