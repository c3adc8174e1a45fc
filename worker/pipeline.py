"""What the worker does with one job: `advance` reads the row and takes the one step its state
calls for (worker.upload, worker.submit, worker.watch). Plain functions taking a session; the
Celery tasks are thin wrappers.

Each call re-reads the row, does at most a short step or two (an upload, a createTask, a read),
records the outcome with a compare-and-set and sets `next_check_at` for the next step. Nothing
here sleeps: waiting is a row with a time on it, picked up by the sweep.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import tracing
from core.config import Settings
from models.base import utcnow
from models.job import Job, JobImage, JobStatus
from models.lifecycle import AT_KIE, TERMINAL, fail
from worker.adopt import adopt, is_orphan_with_candidate
from worker.archive import start as start_archive
from worker.stage import UpstreamClients, claim_stage, context
from worker.submit import to_submitting
from worker.upload import needs_upload, upload
from worker.watch import check

__all__ = ["UpstreamClients", "advance"]

log = logging.getLogger(__name__)


def advance(session: Session, job_id: str, outbound: UpstreamClients, settings: Settings) -> None:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        return
    now = utcnow()
    if not job.livemode:  # a test-mode job: the sandbox stands in for Kie and imgbb
        if outbound.test_mode is None:
            if job.status not in TERMINAL:
                fail(
                    session,
                    job.id,
                    JobStatus(job.status),
                    "test_mode_unavailable",
                    "This server has no sandbox for test-mode keys (TEST_MODE_KIE_URL).",
                )
                session.commit()
            return
        outbound = outbound.test_mode
    else:
        outbound = outbound.for_account(job.account)  # the account admission gave it
    if job.status in TERMINAL and not is_orphan_with_candidate(job):
        return
    name = _STEP_NAMES.get(JobStatus(job.status), "soraq.job.step")
    with tracing.job_span(name, job) as span:
        _advance(session, job, outbound, settings, now)
        tracing.set_attribute(span, "kie.task_id", job.kie_task_id)  # createTask's, if new
        tracing.set_attribute(span, "soraq.status", job.status)


# A step's span in the job's trace, by the state the job was in when the step began.
_STEP_NAMES = {
    JobStatus.QUEUED: "soraq.job.submit",
    JobStatus.UPLOADING: "soraq.job.lease_check",
    JobStatus.SUBMITTING: "soraq.job.lease_check",
    JobStatus.WAITING: "soraq.job.check",
    JobStatus.QUEUING: "soraq.job.check",
    JobStatus.GENERATING: "soraq.job.check",
    JobStatus.ARCHIVING: "soraq.job.archive_start",
}


def _advance(
    session: Session, job: Job, outbound: UpstreamClients, settings: Settings, now: datetime
) -> None:
    if is_orphan_with_candidate(job):
        adopt(session, job, outbound, settings, now)
        return
    status = JobStatus(job.status)
    if status == JobStatus.QUEUED:
        _start(session, job, outbound, settings, now)
    elif status in (JobStatus.UPLOADING, JobStatus.SUBMITTING):
        _stage_lease_check(session, job, outbound, settings, now)
    elif status in AT_KIE:
        check(session, job, outbound, settings, now)
    elif status == JobStatus.ARCHIVING:
        if job.stage_lease_until is not None and now < job.stage_lease_until:
            return  # another worker is archiving it
        start_archive(session, job, settings, outbound)


def _upload_lease(settings: Settings, now: datetime) -> datetime:
    return now + timedelta(seconds=settings.imgbb_timeout * 2 + 10)


def _start(
    session: Session, job: Job, outbound: UpstreamClients, settings: Settings, now: datetime
) -> None:
    if job.admitted_at is None:
        # A stray or duplicate message for a job admission has not handed out (or took back):
        # admission alone chooses who goes next and to which account.
        return
    has_upload = needs_upload(job) or session.scalar(
        select(JobImage.job_id).where(JobImage.job_id == job.id).limit(1)
    )
    if has_upload:
        if claim_stage(
            session, job, JobStatus.QUEUED, JobStatus.UPLOADING, _upload_lease(settings, now), now
        ):
            _upload_then_submit(session, job, outbound, settings)
    else:
        to_submitting(session, job, JobStatus.QUEUED, outbound, settings)


def _upload_then_submit(
    session: Session, job: Job, outbound: UpstreamClients, settings: Settings
) -> None:
    if upload(session, job, outbound, settings):
        to_submitting(session, job, JobStatus.UPLOADING, outbound, settings)


def _stage_lease_check(
    session: Session, job: Job, outbound: UpstreamClients, settings: Settings, now: datetime
) -> None:
    if job.stage_lease_until is not None and now < job.stage_lease_until:
        return  # another worker holds this stage; a duplicate delivery does nothing
    if job.status == JobStatus.UPLOADING:
        # Uploads cost nothing and are safe to repeat.
        if claim_stage(
            session,
            job,
            JobStatus.UPLOADING,
            JobStatus.UPLOADING,
            _upload_lease(settings, now),
            now,
        ):
            _upload_then_submit(session, job, outbound, settings)
        return
    # Submitting past its lease: a worker died during createTask. Kie may have created a task
    # we cannot name; we never resubmit blindly, because every task is paid for.
    lost = job.waiting_reason == "kie_answer_lost"
    fail(
        session,
        job.id,
        JobStatus.SUBMITTING,
        "submit_unknown",
        (
            "Kie's answer to createTask was lost and no callback named the task within SUBMIT_LEASE"
            if lost
            else "The worker stopped while submitting to Kie"
        )
        + "; the job was not resubmitted so that it cannot be paid for twice. Submit it again "
        "if no video arrives.",
    )
    session.commit()
    log.warning("job %s failed: submit outcome unknown", job.id, extra=context(job))
