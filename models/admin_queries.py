"""The operator's queries: every client's jobs, with filters that stay on indexes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, tuple_

from models.client import Client
from models.event import JobEvent
from models.job import Job
from models.webhook import WebhookDelivery


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def admin_jobs_page(
    *,
    statuses: list[str],
    model: str | None,
    client_id: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    q: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> Select:
    """Newest first with keyset pagination: a page boundary is a (created_at, id) pair, so new
    jobs arriving at the top never shift the pages below."""
    query = (
        select(Job, Client.name)
        .outerjoin(Client, Client.id == Job.client_id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if model:
        query = query.where(Job.model == model)
    if client_id:
        query = query.where(Job.client_id == client_id)
    if created_after:
        query = query.where(Job.created_at >= created_after)
    if created_before:
        query = query.where(Job.created_at < created_before)
    if q:
        prompt = Job.input["prompt"].as_string()
        query = query.where(
            or_(
                Job.id == q,
                Job.kie_task_id == q,
                prompt.ilike(f"%{_like_escaped(q)}%", escape="\\"),
            )
        )
    if after is not None:
        created_at, job_id = after
        # A row-value comparison, which the (created_at, id) index serves as one range scan.
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, job_id))
    return query


def job_history(job_id: str) -> Select[JobEvent]:
    return select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)


def job_deliveries(job_id: str) -> Select[WebhookDelivery]:
    return (
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at)
    )


def counts_by_status_and_model(since: datetime) -> Select:
    return (
        select(Job.status, Job.model, func.count())
        .where(Job.created_at >= since)
        .group_by(Job.status, Job.model)
    )


def generation_times(since: datetime, limit: int = 100_000) -> Select:
    """Submission to finish of recent successes (newest first, bounded)."""
    return (
        select(Job.submitted_at, Job.finished_at)
        .where(Job.created_at >= since, Job.status == "succeeded", Job.submitted_at.is_not(None))
        .order_by(Job.created_at.desc())
        .limit(limit)
    )


def kie_errors(since: datetime) -> Select:
    code = JobEvent.detail["code"].as_string()
    return (
        select(code, func.count())
        .where(JobEvent.kind == "kie_call", JobEvent.at >= since, code != "200")
        .group_by(code)
    )


def queue_depth() -> Select:
    return (
        select(Job.status, func.count()).where(Job.next_check_at.is_not(None)).group_by(Job.status)
    )


def oldest_due(now: datetime) -> Select:
    return select(func.min(Job.next_check_at)).where(
        Job.next_check_at.is_not(None), Job.next_check_at <= now
    )


def jobs_past_lease(now: datetime) -> Select:
    """Unfinished jobs whose step's lease (uploading, submitting, archiving) has ended."""
    return select(func.count()).where(
        Job.stage_lease_until.is_not(None),
        Job.stage_lease_until < now,
        Job.status.in_(("uploading", "submitting", "archiving")),
    )


def storage_by_client() -> Select[Any, Any]:
    """Bytes of archived files each client's jobs hold now (expired ones hold none)."""
    return (
        select(func.coalesce(Client.name, "(none)"), func.sum(Job.media_bytes))
        .select_from(Job)
        .outerjoin(Client, Client.id == Job.client_id)
        .where(Job.media_bytes > 0)
        .group_by(Client.name)
    )
