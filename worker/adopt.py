"""Closing the window the README used to call unclosable: a createTask whose answer was lost.

Between Kie accepting a createTask and soraq storing the task id, a crash or a lost answer
leaves a task soraq cannot name (the job stays `submitting` until its lease ends). But
Kie's callback for that task comes to the job's own callback URL, naming the task. The
callback route keeps that id as a candidate; this step reads the task from the upstream and
adopts it only if the upstream shows it was created with this job's callback URL (which holds
an unguessable per-job token). No second createTask is ever made.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from catalogue import get_catalogue
from catalogue.fal import fal_routes
from core.config import Settings
from models.job import Job, JobStatus
from models.lifecycle import adopt_task, record_event
from upstreams import TaskInfo
from upstreams.errors import ExternalError
from upstreams.fal_queue import FAL, family_of
from worker import policy
from worker.stage import UpstreamClients, context, upstream_call

log = logging.getLogger(__name__)


def is_orphan_with_candidate(job: Job) -> bool:
    """Still submitting, with no task of its own and a task a callback named. (A job that has
    ended never adopts: its end is final.)"""
    return (
        job.adopt_task_id is not None
        and job.kie_task_id is None
        and job.status == JobStatus.SUBMITTING
    )


def carries_callback(info: TaskInfo | None, token: str) -> bool:
    url = (info.callback_url or "") if info is not None else ""
    return url.rstrip("/").endswith(f"/kie/callback/{token}")


def adopt(
    session: Session, job: Job, outbound: UpstreamClients, settings: Settings, now: datetime
) -> None:
    task_id = job.adopt_task_id
    assert task_id is not None
    spec = get_catalogue().spec(job.model)
    family = family_of(task_id, spec.upstream)  # a fal account's task is fal's to read
    upstream = outbound.upstreams[family]
    info: TaskInfo | None = None
    try:
        info = upstream_call(session, job, "recordInfo", family, lambda: upstream.read(task_id))
    except ExternalError as exc:
        if exc.retryable:
            delay = policy.backoff(settings, 1, exc.retry_after)
            session.execute(
                update(Job)
                .where(Job.id == job.id, Job.adopt_task_id == task_id)
                .values(next_check_at=now + timedelta(seconds=delay), claimed_until=None)
            )
            session.commit()
            return
    # fal shows no webhook URL when read; its webhook for this job's URL, verified as fal's
    # (api.fal_webhooks), is the proof that fal made the request for this job.
    confirmed = family == FAL and info is not None and info.state != "pending"
    if (confirmed or carries_callback(info, job.callback_token)) and adopt_task(
        session,
        job.id,
        task_id,
        now=now,
        deadline=now + timedelta(seconds=settings.job_timeout),
    ):
        route = fal_routes().get(job.model) if family == FAL else None
        if route is not None:  # fal bills the request in dollars, as if its answer had come
            params = {name: value for name, value in job.input.items() if name in spec.params}
            session.execute(
                update(Job).where(Job.id == job.id).values(provider_usd=route.usd(params))
            )
        session.commit()
        log.warning(
            "job %s adopted task %s after its createTask answer was lost",
            job.id,
            task_id,
            extra=context(job, kie_task_id=task_id),
        )
        return
    # Not this job's task (or not visible): forget the candidate; the job keeps its lease.
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.adopt_task_id == task_id)
        .values(
            adopt_task_id=None,
            next_check_at=case(
                (Job.stage_lease_until.is_not(None), Job.stage_lease_until),
                else_=Job.next_check_at,
            ),
            claimed_until=None,
        )
    )
    record_event(
        session,
        job.id,
        "callback",
        reason=f"a callback named task {task_id}, which does not carry this job's callback "
        "URL: ignored",
    )
    session.commit()
