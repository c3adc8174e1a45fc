"""The job state machine. Every change is a compare-and-set on the state the caller last saw.

    queued ─▶ uploading ─▶ submitting ─▶ waiting ⇄ queuing ⇄ generating ─▶ succeeded
       │          │  ▲          │  ▲                                     └─▶ failed
       └──────────┴──┴──────────┴──┴─▶ failed   (transient errors go back to queued)

A message delivered twice, or a callback racing a scheduled check, finds the state moved on and
its update matches no row: it does nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.job import Job, JobStatus

S = JobStatus
AT_KIE = frozenset({S.WAITING, S.QUEUING, S.GENERATING})
TERMINAL = frozenset({S.SUCCEEDED, S.FAILED})
ACTIVE = frozenset(JobStatus) - TERMINAL

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.UPLOADING, S.SUBMITTING, S.FAILED}),
    S.UPLOADING: frozenset({S.SUBMITTING, S.QUEUED, S.FAILED}),
    # Back to queued only when Kie certainly created no task (a refusal with an answer).
    S.SUBMITTING: AT_KIE | {S.QUEUED, S.FAILED},
    **{s: AT_KIE | TERMINAL for s in AT_KIE},
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


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
    if new != expected and new not in ALLOWED[expected]:
        raise IllegalTransition(f"{expected} -> {new}")
    now = now or utcnow()
    values = {"status": new, "updated_at": now, **values}
    if new in TERMINAL:
        values.setdefault("finished_at", now)
        values["next_check_at"] = None
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail(
    session: Session, job_id: str, expected: JobStatus, code: str, message: str, **values: Any
) -> bool:
    return transition(
        session, job_id, expected, S.FAILED, error_code=code, error_message=message[:2000], **values
    )
