"""Batches: many jobs made by one request, and the one event that says they have all ended."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Select, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.job import Job


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


class Batch(Base):
    """`jobs_open` counts the batch's jobs that have not ended: the transition that ends a job
    takes one off in the same transaction, and the one that reaches zero (the row lock makes
    it exactly one) queues `batch.completed`."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_batch_id)
    client_id: Mapped[str] = mapped_column(String(32), ForeignKey("clients.id", ondelete="CASCADE"))
    webhook_url: Mapped[str | None] = mapped_column(Text, default=None)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    job_count: Mapped[int] = mapped_column(Integer)
    jobs_open: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (Index("ix_batches_client_created", "client_id", "created_at"),)


def close_one_job(session: Session, job_id: str, now: datetime) -> str | None:
    """The job has just ended: count it off its batch. Returns the batch's id when this was the
    batch's last open job (once per batch), else None."""
    batch_id = select(Job.batch_id).where(Job.id == job_id).scalar_subquery()
    row = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.jobs_open > 0)
        .values(jobs_open=Batch.jobs_open - 1)
        .returning(Batch.id, Batch.jobs_open)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None or row.jobs_open != 0:
        return None
    session.execute(
        update(Batch)
        .where(Batch.id == row.id)
        .values(completed_at=now)
        .execution_options(synchronize_session=False)
    )
    return str(row.id)


def batch_counts(batch_id: str) -> Select[str, int]:
    """(status, how many) of the batch's jobs."""
    return select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)


def batch_by_id(batch_id: str, client_id: str | None) -> Select[Any]:
    query = select(Batch).where(Batch.id == batch_id)
    if client_id is not None:
        query = query.where(Batch.client_id == client_id)
    return query


def cancelable_jobs(batch_id: str) -> Select[str, str]:
    """The batch's jobs Kie has not been asked about yet (a createTask in flight may have
    made a task: those finish as they would), write-locked in id order: admission and a
    paused model's hold lock queued jobs in the same order (models.job.in_lock_order), so a
    cancel racing them waits rather than deadlocks."""
    return (
        select(Job.id, Job.status)
        .where(Job.batch_id == batch_id, Job.status.in_(("queued", "uploading")))
        .order_by(Job.id)
        .with_for_update(key_share=True)
    )
