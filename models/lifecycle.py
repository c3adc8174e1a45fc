"""The job state machine. Every change is a compare-and-set on the state the caller last saw.

    queued ─▶ uploading ─▶ submitting ─▶ waiting ⇄ queuing ⇄ generating ─▶ succeeded
       │          │  ▲          │  ▲                                     └─▶ failed
       └──────────┴──┴──────────┴──┴─▶ failed   (transient errors go back to queued)
    any unfinished state ─▶ canceled

A message delivered twice, or a callback racing a scheduled check, finds the state moved on and
its update matches no row: it does nothing. A job that reaches a final state gets its completion
webhook queued in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, literal, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.job import Job, JobStatus
from models.webhook import WebhookDelivery, new_event_id

S = JobStatus
AT_KIE = frozenset({S.WAITING, S.QUEUING, S.GENERATING})
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELED})
ACTIVE = frozenset(JobStatus) - TERMINAL

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.UPLOADING, S.SUBMITTING, S.FAILED, S.CANCELED}),
    S.UPLOADING: frozenset({S.SUBMITTING, S.QUEUED, S.FAILED, S.CANCELED}),
    # Back to queued only when Kie certainly created no task (a refusal with an answer).
    S.SUBMITTING: AT_KIE | {S.QUEUED, S.FAILED, S.CANCELED},
    **{s: AT_KIE | TERMINAL for s in AT_KIE},
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}

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
    if new in TERMINAL:
        values.setdefault("finished_at", now)
        values["next_check_at"] = None
    return values


def cas_update(job_id: str, expected: JobStatus, values: dict[str, Any]) -> Any:
    return (
        update(Job)
        .where(Job.id == job_id, Job.status == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def queue_completion_webhook(job_id: str, status: JobStatus, now: datetime) -> tuple[str, Any]:
    """An INSERT … SELECT that queues the job's webhook event, if the job has a webhook URL."""
    event_id = new_event_id()
    source = select(
        literal(event_id),
        Job.id,
        literal(f"job.{status.value}"),
        Job.webhook_url,
        literal(now, WebhookDelivery.next_attempt_at.type),
        literal(now, WebhookDelivery.created_at.type),
        literal("pending"),
        literal(0),
    ).where(Job.id == job_id, Job.webhook_url.is_not(None))
    columns = [
        "id",
        "job_id",
        "event_type",
        "url",
        "next_attempt_at",
        "created_at",
        "state",
        "attempts",
    ]
    return event_id, insert(WebhookDelivery).from_select(columns, source)


def transition(
    session: Session,
    job_id: str,
    expected: JobStatus,
    new: JobStatus,
    *,
    now: datetime | None = None,
    **values: Any,
) -> bool:
    """Move a job from `expected` to `new` (or update it in place when they are equal).

    Returns False when the job is no longer in `expected`: someone else moved it first.
    The caller commits.
    """
    now = now or utcnow()
    result = session.execute(
        cas_update(job_id, expected, transition_values(expected, new, now, values))
    )
    moved = bool(result.rowcount)  # type: ignore[attr-defined]
    if moved and new in TERMINAL and new != expected:
        event_id, statement = queue_completion_webhook(job_id, new, now)
        if session.execute(statement).rowcount:  # type: ignore[attr-defined]
            session.info.setdefault(NEW_DELIVERIES, []).append(event_id)
    return moved


def fail(
    session: Session, job_id: str, expected: JobStatus, code: str, message: str, **values: Any
) -> bool:
    return transition(
        session, job_id, expected, S.FAILED, error_code=code, error_message=message[:2000], **values
    )
