"""Queries about jobs, beside the model. They build statements; sync and async callers run them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, Update, and_, any_, case, func, or_, select, update

from models.job import Job
from models.lifecycle import AT_KIE


def job_by_id(job_id: str) -> Select[Job]:
    return select(Job).where(Job.id == job_id)


def jobs_page(*, status: str | None, limit: int, after: tuple[datetime, str] | None) -> Select[Job]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        created_at, job_id = after
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    return query


def claim_due(dialect: str, *, now: datetime, limit: int, lease: timedelta) -> Update:
    """Claim up to `limit` due jobs by pushing their next_check_at past a lease; RETURNING ids.

    A claimed job whose message is lost is due again when the lease ends. On Postgres, parallel
    sweeps skip each other's rows (SKIP LOCKED); SQLite has a single writer, so the statement is
    atomic there as it stands.
    """
    due = (
        select(Job.id)
        .where(Job.next_check_at.is_not(None), Job.next_check_at <= now)
        .order_by(Job.next_check_at)
        .limit(limit)
    )
    if dialect == "postgresql":
        # `id = ANY(ARRAY(...))` lets the planner use the partial index (see stack measurements).
        target = Job.id == any_(func.array(due.with_for_update(skip_locked=True).scalar_subquery()))
    else:
        target = Job.id.in_(due.scalar_subquery())
    return (
        update(Job)
        .where(target)
        .values(next_check_at=now + lease)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )


def check_now_by_callback_token(token: str, *, now: datetime) -> Update:
    """A Kie callback arrived: make the job due at once (the check itself re-reads Kie)."""
    return (
        update(Job)
        .where(Job.callback_token == token, Job.next_check_at.is_not(None))
        .values(
            callback_at=now,
            # A job still submitting keeps its lease; recording callback_at makes the
            # transition to "at Kie" schedule its first check at once.
            next_check_at=case((Job.status.in_(list(AT_KIE)), now), else_=Job.next_check_at),
        )
        .returning(Job.id, Job.status)
        .execution_options(synchronize_session=False)
    )
