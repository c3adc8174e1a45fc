"""Erasing a finished job's data: its prompt, inputs, metadata, uploaded files, archived videos
and posters, webhook bodies and history texts go; the row stays as a tombstone (id, client,
model, status, times, usage, Kie's task id) so usage, budgets and Kie's bill still add up.

Only a job that has ended is erased (an unfinished one is canceled first: the caller says
so). Media objects are deleted before the row is marked, so a storage outage leaves the job
whole and the erasure is simply asked for again; once marked, the content routes answer 410.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from media import store
from models.event import JobEvent
from models.job import Job, JobImage
from models.lifecycle import TERMINAL, record_event
from models.webhook import DeliveryState, WebhookDelivery

log = logging.getLogger(__name__)


class Erased(StrEnum):
    ERASED = "erased"
    ALREADY = "already"  # erased before: the same answer again
    NOT_FINISHED = "not_finished"  # cancel it first
    MISSING = "missing"


@dataclass(frozen=True)
class Erasure:
    outcome: Erased
    job: Job | None = None


def media_keys(job: Job) -> list[str]:
    """The objects the job's archived results occupy (videos and posters)."""
    videos: list[dict[str, Any]] = list((job.result or {}).get("videos") or [])
    return [
        key
        for video in videos
        if video.get("archived") and not video.get("expired")
        for key in (video.get("key"), video.get("poster_key"))
        if key
    ]


def erase(
    session: Session, job_id: str, now: datetime, *, by: str, delete_objects: bool = True
) -> Erasure:
    """Erase one job's data (see the module); `by` says who asked, for its history. The
    caller commits. Storage errors propagate before anything is written. `delete_objects`
    False: the caller deleted media_keys(job) already (the API does, off its event loop)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        return Erasure(Erased.MISSING)
    if job.deleted_at is not None:
        return Erasure(Erased.ALREADY, job)
    if job.status not in TERMINAL:
        return Erasure(Erased.NOT_FINISHED, job)
    for key in media_keys(job) if delete_objects else []:
        store.delete(key)  # first: an outage leaves the job whole, to be erased again
    marked = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.deleted_at.is_(None), Job.status.in_(TERMINAL))
        .values(
            input={},
            meta=None,
            images=None,
            image_url=None,
            webhook_url=None,
            result=None,
            error_message=None,  # an upstream's message may quote the prompt
            adopt_task_id=None,
            media_expires_at=None,
            media_bytes=0,
            deleted_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not marked:
        return Erasure(Erased.ALREADY, job)
    session.execute(delete(JobImage).where(JobImage.job_id == job.id))
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.job_id == job.id, WebhookDelivery.state == DeliveryState.PENDING)
        .values(state=DeliveryState.FAILED, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.job_id == job.id)
        .values(body=None, url="", last_error="the job's data was erased")
        .execution_options(synchronize_session=False)
    )
    # The history keeps what happened and when; its free texts (reasons, upstream messages,
    # parameters in details) go.
    session.execute(
        update(JobEvent)
        .where(JobEvent.job_id == job.id)
        .values(reason=None, detail=None)
        .execution_options(synchronize_session=False)
    )
    record_event(session, job.id, "admin", now=now, reason=f"data erased ({by})")
    session.flush()
    return Erasure(Erased.ERASED, session.get(Job, job.id, populate_existing=True))


def finished_before(cutoff: datetime, client_id: str | None, limit: int) -> Any:
    """Finished jobs not yet erased that ended before `cutoff` (one client's, or all)."""
    query = (
        select(Job.id)
        .where(
            Job.status.in_(TERMINAL),
            Job.deleted_at.is_(None),
            Job.finished_at.is_not(None),
            Job.finished_at < cutoff,
        )
        .order_by(Job.finished_at)
        .limit(limit)
    )
    if client_id is not None:
        query = query.where(Job.client_id == client_id)
    return query


def erase_finished_before(
    session: Session,
    cutoff: datetime,
    now: datetime,
    *,
    by: str,
    client_id: str | None = None,
    limit: int = 200,
) -> int:
    """Erase up to `limit` jobs that ended before `cutoff`, committing each; how many."""
    erased = 0
    for job_id in session.scalars(finished_before(cutoff, client_id, limit)).all():
        if erase(session, job_id, now, by=by).outcome == Erased.ERASED:
            erased += 1
        session.commit()
    if erased:
        log.info("erased the data of %d finished job(s) (%s)", erased, by)
    return erased
