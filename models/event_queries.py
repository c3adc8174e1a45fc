"""Reading a job's history as its client sees it: status changes and progress, in order."""

from __future__ import annotations

from sqlalchemy import Select, or_, select

from models.event import JobEvent
from models.job import Job

# History kinds a client is shown; Kie calls, webhook attempts and operator notes stay inside.
PUBLIC_KINDS = ("transition", "progress")


def public_events(
    *, after: int, job_id: str | None = None, client_id: str | None = None, limit: int = 500
) -> Select[JobEvent, str | None]:
    """Events after `after` (an event id) of one job, or of every job of one client."""
    statement = (
        select(JobEvent, Job.client_id)
        .join(Job, Job.id == JobEvent.job_id)
        .where(
            JobEvent.id > after,
            JobEvent.kind.in_(PUBLIC_KINDS),
            # A transition without a status change is a checkpoint, not news.
            or_(JobEvent.kind != "transition", JobEvent.to_status.is_not(None)),
        )
        .order_by(JobEvent.id)
        .limit(limit)
    )
    if job_id is not None:
        statement = statement.where(JobEvent.job_id == job_id)
    if client_id is not None:
        statement = statement.where(Job.client_id == client_id)
    return statement
