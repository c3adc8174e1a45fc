"""The submit step: record `submitting` with a lease, take a createTask token, call the
upstream once, store the task id. Never twice for one job: a job found `submitting` past its
lease fails as submit_unknown rather than being paid for again."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from catalogue import get_catalogue
from catalogue.accounts import account_named
from catalogue.fal import FalRoute, fal_routes
from core.config import Settings
from core.metrics import ADMISSION_WAIT
from models.base import utcnow
from models.job import Job, JobStatus
from models.lifecycle import fail, transition
from upstreams.base import Upstream
from upstreams.errors import ExternalError
from upstreams.fal_queue import FAL
from worker import account, policy
from worker.admission import acquire_create, create_due_in, restamp_create
from worker.limiter import Token
from worker.stage import (
    UpstreamClients,
    claim_stage,
    context,
    other_accounts,
    requeue,
    retry_or_fail,
    upstream_call,
)

log = logging.getLogger(__name__)
# A job whose createTask answer was lost, waiting for Kie's callback to name its task.
ANSWER_LOST = "kie_answer_lost"
# A token freeing within this many seconds is waited for by the job admitted for it (a
# message with that countdown); a longer wait sends the job back to admission.
TOKEN_DUE = 1.0


def to_submitting(
    session: Session, job: Job, expected: JobStatus, outbound: UpstreamClients, settings: Settings
) -> None:
    # Claim the stage first and take the createTask token last, so that only a Redis round
    # trip lies between the token's time and the call the upstream counts.
    if expected == JobStatus.QUEUED and job.livemode and outbound.advance_later is not None:
        # Admission gave this job a token freeing about now; the call before it on that
        # token may have been answered late (the token is held from the answer). Then the
        # job runs again at that instant, admitted still — no claim, no write, no history.
        due = create_due_in(session, settings, job.account)
        if 0 < due <= TOKEN_DUE:
            outbound.advance_later(job.id, due)
            return
    now = utcnow()
    lease = now + timedelta(seconds=settings.submit_lease)
    if not claim_stage(session, job, expected, JobStatus.SUBMITTING, lease, now):
        return
    if not job.livemode:
        # The sandbox stands in for Kie: no token from Kie's window, no wait for a pause.
        session.commit()
        submit(session, job, outbound, settings)
        return
    try:
        wait, token, by_window = acquire_create(session, settings, job.id, job.account)
    except Exception:
        session.rollback()
        requeue(session, job, JobStatus.SUBMITTING, 1.0, "the create limit could not be read")
        raise
    session.commit()  # frees the scheduler lock for other workers
    if wait is not None and by_window and wait <= TOKEN_DUE and expected == JobStatus.QUEUED:
        if outbound.advance_later is not None:
            # The token admission gave this job frees a moment later than its message ran
            # (an answer restamped it): keep the job's admission and account — the token stays
            # its own in admission's count — and run it again when the token frees, instead
            # of handing the token back to the queue and to the next dispatcher round.
            transition(
                session,
                job.id,
                JobStatus.SUBMITTING,
                JobStatus.QUEUED,
                reason=f"account {job.account}'s token frees in {wait:.2f} s",
                next_check_at=utcnow() + timedelta(seconds=wait + settings.claim_lease),
                stage_lease_until=None,
            )
            session.commit()  # the row first, then the message
            outbound.advance_later(job.id, wait)
            return
    if wait is not None:
        # The window is full (admissions bunched up in the broker), or the account is paused
        # and this job is not its probe: back to the queue rather than to the upstream — and
        # at once when another account serves its model (admission gives it the one with room).
        named = account_named(settings, job.account).name
        elsewhere = other_accounts(settings, named, job)
        requeue(
            session,
            job,
            JobStatus.SUBMITTING,
            0.0 if elsewhere else wait,
            f"waiting {wait:.2f} s for account {named}'s capacity"
            + (f"; the job may go to {', '.join(elsewhere)}" if elsewhere else ""),
        )
        return
    submit(session, job, outbound, settings, token)


def submit(
    session: Session,
    job: Job,
    outbound: UpstreamClients,
    settings: Settings,
    token: Token = None,
) -> None:
    spec = get_catalogue().spec(job.model)
    params = {name: value for name, value in job.input.items() if name in spec.params}
    prompt = job.input.get("prompt") or ""
    # Every input by role: a file's URL, or an earlier task's id (and which of its results).
    images = [
        (i["role"], i["url"] if i.get("url") else i["task_id"])
        for i in job.images or []
        if i.get("url") or i.get("task_id")
    ]
    if not images and job.image_url:
        images = [("first_frame", job.image_url)]
    fal = fal_route(settings, job)
    if fal is not None:
        # A fal account: fal's endpoint for this job, fal's body (catalogue/fal.toml), fal's
        # webhook, and fal's price in dollars in the job's usage.
        endpoint = fal.endpoint_for(params, (role for role, _ in images))
        body = fal.body(prompt, params, images)
        send_to_fal(session, job, outbound, settings, token, endpoint, body, fal.usd(params))
        return
    upstream = outbound.upstreams[spec.upstream]
    indexes = {i["role"]: int(i.get("index") or 0) for i in job.images or [] if i.get("task_id")}
    body = spec.upstream_input(prompt, params, images, indexes)
    callback = (
        f"{settings.public_url.rstrip('/')}/kie/callback/{job.callback_token}"
        if settings.public_url
        else None
    )
    _send(
        session, job, settings, token, upstream, spec.upstream, spec.upstream_model, body, callback
    )


def fal_route(settings: Settings, job: Job) -> FalRoute | None:
    """The job's route to fal, when the account admission gave it is a fal account."""
    if not job.livemode or account_named(settings, job.account).provider != "fal":
        return None
    return fal_routes()[job.model]  # admission gives fal only the models it has routes for


def send_to_fal(
    session: Session,
    job: Job,
    outbound: UpstreamClients,
    settings: Settings,
    token: Token,
    endpoint: str,
    body: dict[str, Any],
    usd: float | None = None,
) -> None:
    callback = (
        f"{settings.public_url.rstrip('/')}/fal/webhook/{job.callback_token}"
        if settings.public_url
        else None
    )
    upstream = outbound.upstreams[FAL]
    _send(session, job, settings, token, upstream, FAL, endpoint, body, callback, provider_usd=usd)


def _send(
    session: Session,
    job: Job,
    settings: Settings,
    token: Token,
    upstream: Upstream,
    family: str,
    model: str,
    body: dict[str, Any],
    callback: str | None,
    **columns: Any,
) -> None:
    """The create call itself, and what its answer (or its silence) means for the job
    (`columns`: more to store with the task id, such as fal's price)."""
    try:
        task_id = upstream_call(
            session,
            job,
            "createTask",
            family,
            lambda: upstream.create(model, body, callback),
        )
    except ExternalError as exc:
        restamp_create(session, settings, token, job.account)
        if exc.maybe_sent:
            if settings.public_url:
                # Callbacks are on: Kie's callback will name the task if it was made. The job
                # waits in `submitting` (never failed, then revived) until its lease ends;
                # adoption (worker.adopt) happens in that window, submit_unknown after it.
                lease_end = job.stage_lease_until or utcnow()
                transition(
                    session,
                    job.id,
                    JobStatus.SUBMITTING,
                    JobStatus.SUBMITTING,
                    reason=f"Kie's answer to createTask was lost ({exc.message}); waiting for "
                    "its callback to name the task, never resubmitting",
                    waiting_reason=ANSWER_LOST,
                    next_check_at=lease_end,
                )
                # A callback may already have named the task: look at it now.
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.adopt_task_id.is_not(None))
                    .values(next_check_at=utcnow())
                )
                session.commit()
                return
            fail(
                session,
                job.id,
                JobStatus.SUBMITTING,
                "submit_unknown",
                f"Kie gave no definite answer to createTask ({exc.message}); the job was not "
                "resubmitted so that it cannot be paid for twice.",
            )
            session.commit()
            return
        retry_or_fail(session, job, JobStatus.SUBMITTING, exc, settings)
        return
    restamp_create(session, settings, token, job.account)
    now = utcnow()
    wanted = "progress" in (job.webhook_events or ())
    first_check = now + timedelta(
        seconds=policy.check_interval(settings, elapsed=0.0, progress_wanted=wanted)
    )
    recorded = transition(
        session,
        job.id,
        JobStatus.SUBMITTING,
        JobStatus.WAITING,
        now=now,
        reason="fal accepted the request" if family == FAL else "Kie accepted the task",
        kie_task_id=task_id,
        submitted_at=now,
        failures=0,
        progress=0,
        waiting_reason=None,
        adopt_task_id=None,
        deadline_at=now + timedelta(seconds=settings.job_timeout),
        stage_lease_until=None,
        # A callback that beat us here makes the first check immediate.
        next_check_at=case((Job.callback_at.is_not(None), now), else_=first_check),
        **columns,
    )
    if job.livemode:  # the sandbox accepting a test-mode job says nothing of Kie's account
        # An accepted createTask ends any pause of its account.
        account.resume(session, account_named(settings, job.account).name)
        if recorded:
            ADMISSION_WAIT.observe(max(0.0, (now - job.created_at).total_seconds()))
    if not recorded:
        # The job moved on while we were at Kie (e.g. failed as submit_unknown after a long
        # stall). Keep the task id for the record so an operator can find the paid task.
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.kie_task_id.is_(None))
            .values(kie_task_id=task_id)
        )
        log.warning(
            "job %s: Kie task %s created after the job moved on",
            job.id,
            task_id,
            extra=context(job, kie_task_id=task_id),
        )
    session.commit()
    log.info(
        "job %s submitted to %s as %s",
        job.id,
        "fal" if family == FAL else "Kie",
        task_id,
        extra=context(job, kie_task_id=task_id),
    )
