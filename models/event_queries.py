"""Reading a job's history as its client sees it: status changes and progress, in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, literal_column, or_, select

from models.event import JobEvent
from models.job import Job

# History kinds a client is shown; Kie calls, webhook attempts and operator notes stay inside.
PUBLIC_KINDS = ("transition", "progress")


def public_events(
    *,
    after: int,
    job_id: str | None = None,
    client_id: str | None = None,
    limit: int = 500,
    upto: int | None = None,
) -> Select[JobEvent, str | None]:
    """Events after `after` (an event id) of one job, or of every job of one client; with
    `upto`, none past that id (api.event_horizon)."""
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
    if upto is not None:
        statement = statement.where(JobEvent.id <= upto)
    if job_id is not None:
        statement = statement.where(JobEvent.job_id == job_id)
    if client_id is not None:
        statement = statement.where(Job.client_id == client_id)
    return statement


def newest_event_id() -> Select[int | None]:
    return select(func.max(JobEvent.id))


def events_after_with_snapshot(after: int, limit: int) -> Select[int, Any, Any]:
    """The ids of every event after `after` (PostgreSQL: an index-only scan of the primary
    key), each with the statement's snapshot bounds — the oldest transaction still running
    (`xmin`) and the first not yet started (`xmax`) — as integers."""
    snapshot = "pg_current_snapshot()"
    return (
        select(
            JobEvent.id,
            literal_column(f"pg_snapshot_xmin({snapshot})::text::bigint").label("xmin"),
            literal_column(f"pg_snapshot_xmax({snapshot})::text::bigint").label("xmax"),
        )
        .where(JobEvent.id > after)
        .order_by(JobEvent.id)
        .limit(limit)
    )
