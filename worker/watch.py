"""The watch step: read the task from its upstream (callbacks only make a job due: the read is
the truth), mirror its state, and end the job on success or failure. A state the upstream
reports that we do not know counts as still working; a task that paid for is never dropped."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from catalogue import get_catalogue
from core.config import Settings
from core.metrics import KIE_RESULTS
from models.job import Job, JobStatus
from models.lifecycle import fail, record_progress, record_reported_charge, transition
from upstreams import TaskInfo
from upstreams.errors import ExternalError
from upstreams.fal_queue import family_of
from views import estimates
from worker import policy
from worker.archive import start as start_archive
from worker.stage import UpstreamClients, context, upstream_call

log = logging.getLogger(__name__)


def check(
    session: Session, job: Job, outbound: UpstreamClients, settings: Settings, now: datetime
) -> None:
    status = JobStatus(job.status)
    assert job.kie_task_id is not None
    task_id = job.kie_task_id
    spec = get_catalogue().spec(job.model)
    family = family_of(task_id, spec.upstream)  # a fal account's task is fal's to read
    upstream = outbound.upstreams[family]
    info: TaskInfo | None = None
    error: ExternalError | None = None
    try:
        info = upstream_call(session, job, "recordInfo", family, lambda: upstream.read(task_id))
    except ExternalError as exc:
        if not exc.retryable:
            fail(session, job.id, status, exc.code, exc.message)
            session.commit()
            return
        error = exc
    finished = info is not None and info.state in ("success", "fail")
    # Ask the upstream before giving up: a check that runs late must not discard a video.
    if not finished and job.deadline_at is not None and now >= job.deadline_at:
        fail(
            session,
            job.id,
            status,
            "timeout",
            f"Kie did not finish the task within {settings.job_timeout:.0f} s.",
        )
    elif info is None:
        reschedule(session, job, status, settings, now, retry=error)
    else:
        apply(session, job, status, info, settings, now, outbound)
    session.commit()


def apply(
    session: Session,
    job: Job,
    status: JobStatus,
    info: TaskInfo,
    settings: Settings,
    now: datetime,
    outbound: UpstreamClients,
) -> None:
    if info.state in ("success", "fail"):
        # How soraq learnt of the end: a callback came for the job first, or polling found it.
        KIE_RESULTS.labels("callback" if job.callback_at else "poll", info.state).inc()
    if info.state == "success":
        if not info.video_urls:
            fail(
                session,
                job.id,
                status,
                "upstream_bad_output",
                "Kie reported success without an http(s) video URL.",
            )
            return
        if info.charge is not None and job.livemode and job.credits_reported is None:
            # A callback may never come: recordInfo's figure settles the charge then.
            record_reported_charge(session, job.id, job.kie_task_id or "", info.charge)
        # The video exists and is paid for. Copy it into storage before anyone is told: the
        # archive step (worker.archive) starts at once, after this commit — on the archive
        # queue's workers (or in this task without them). Due again after a claim's lease if
        # the hand-off is lost.
        due = now + timedelta(seconds=settings.claim_lease)
        moved = transition(
            session,
            job.id,
            status,
            JobStatus.ARCHIVING,
            now=now,
            reason="Kie finished the video; archiving it",
            progress=100,
            failures=0,
            result={
                "source_urls": info.video_urls,
                "watermarked_source_urls": info.watermarked_video_urls,
            },
            stage_lease_until=None,
            next_check_at=due,
        )
        if moved:
            session.commit()
            start_archive(session, job, settings, outbound)
    elif info.state == "fail":
        fail(
            session,
            job.id,
            status,
            "kie_task_failed",
            info.fail_msg or "Kie reported the generation failed.",
            kie_fail_code=info.fail_code or None,
        )
        log.info(
            "job %s failed at Kie: %s %s", job.id, info.fail_code, info.fail_msg, extra=context(job)
        )
    elif info.state == "pending":
        since = (now - (job.submitted_at or now)).total_seconds()
        if policy.still_pending_allowed(settings, since):
            reschedule(session, job, status, settings, now)
        else:
            fail(
                session,
                job.id,
                status,
                "kie_task_not_found",
                f"Kie still does not know task {job.kie_task_id}.",
            )
    else:
        new = JobStatus(info.state)
        moved = reschedule(
            session,
            job,
            status,
            settings,
            now,
            new=new,
            reason=f"Kie: {info.upstream_state or new.value}",
            progress=info.progress if info.progress is not None else job.progress,
        )
        if moved:
            estimates.refresh_sync(session, job.model)
            record_progress(session, job, estimates.shown_progress(job, info.progress, now), now)


def reschedule(
    session: Session,
    job: Job,
    status: JobStatus,
    settings: Settings,
    now: datetime,
    *,
    new: JobStatus | None = None,
    retry: ExternalError | None = None,
    **values: Any,
) -> bool:
    elapsed = (now - (job.submitted_at or now)).total_seconds()
    since_callback = (now - job.callback_at).total_seconds() if job.callback_at else None
    progress_wanted = "progress" in (job.webhook_events or ())
    delay = policy.check_interval(
        settings, elapsed, since_callback, progress_wanted=progress_wanted
    )
    failures = 0
    if retry is not None:
        failures = job.failures + 1
        delay = max(delay, policy.backoff(settings, failures, retry.retry_after))
    return transition(
        session,
        job.id,
        status,
        new or status,
        now=now,
        failures=failures,
        next_check_at=now + timedelta(seconds=delay),
        **values,
    )
