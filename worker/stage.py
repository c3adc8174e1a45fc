"""What every step of the pipeline shares: claiming a stage, calling an upstream with its
outcome recorded, sending a job back to the queue, retrying or failing it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from catalogue.accounts import account_named, accounts
from core import tracing
from core.config import Settings
from core.metrics import KIE_CALLS, KIE_LATENCY
from models.base import utcnow
from models.job import Job, JobStatus
from models.lifecycle import fail, record_event, transition
from upstreams import RATE_LIMITED, Upstream
from upstreams.errors import ExternalError
from upstreams.imgbb import ImgbbClient
from upstreams.kie_files import KieFileUpload
from upstreams.kie_http import KieHTTP
from worker import account, policy

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class UpstreamClients:
    """The outbound outbound of one worker process: one adapter per upstream family."""

    upstreams: dict[str, Upstream]
    imgbb: ImgbbClient
    kie_files: KieHTTP | None = None  # Kie's file endpoints (a fresh link for an old result)
    kie_upload: KieFileUpload | None = None  # Kie's File Upload API (videos, audio)
    # The sandbox that test-mode jobs use instead (TEST_MODE_KIE_URL); None: not set up.
    test_mode: UpstreamClients | None = None
    # Sends a job to the archive queue's own workers (worker.tasks): downloading a result
    # never holds a thread that submits or watches jobs. None: archive in this task.
    archive_elsewhere: Callable[[str], None] | None = None
    # With several upstream accounts (catalogue.accounts): each one's clients, by name.
    by_account: dict[str, UpstreamClients] = field(default_factory=dict)
    # Runs a job's next step again in this many seconds (a message with a countdown, never
    # a sleep): for a job whose createTask token frees a moment after its message ran.
    advance_later: Callable[[str, float], None] | None = None

    def for_account(self, name: str | None) -> UpstreamClients:
        """Account `name`'s clients; these (the first account's) for any other name."""
        return self.by_account.get(name or "", self)


def context(job: Job, **more: object) -> dict[str, object]:
    """Log context: JSON keys in production logs."""
    return {"job_id": job.id, "client": job.client_id, "kie_task_id": job.kie_task_id, **more}


def claim_stage(
    session: Session,
    job: Job,
    expected: JobStatus,
    new: JobStatus,
    lease: datetime,
    now: datetime,
) -> bool:
    claimed = transition(
        session,
        job.id,
        expected,
        new,
        now=now,
        reason=f"a worker took the job ({new.value})",
        # Still given to the account this worker read (not requeued and handed elsewhere
        # since): the call goes where the row says it went.
        only_if=Job.account.is_not_distinct_from(job.account),
        stage_lease_until=lease,
        next_check_at=lease,
        started_at=job.started_at or now,
    )
    session.commit()
    if claimed:
        job.status, job.stage_lease_until = new, lease
    return claimed


def upstream_call(
    session: Session,
    job: Job,
    endpoint: str,
    upstream: str,
    call: Callable[[], T],
) -> T:
    """Make one upstream call, and record its outcome in the job's history and the metrics
    (by account: a test-mode job's is the sandbox)."""
    job_id, account_name = job.id, job.account or ("sandbox" if not job.livemode else "")
    started = time.monotonic()
    code, message = "200", "success"
    # The HTTP span (httpx's instrumentation) is its child; this one names the call.
    attributes = {"soraq.upstream": upstream, "soraq.account": account_name}
    with tracing.span(f"{upstream} {endpoint}", **attributes) as span:
        try:
            return call()
        except ExternalError as exc:
            code, message = exc.code, exc.message
            tracing.set_attribute(span, "soraq.error_code", exc.code)
            raise
        finally:
            latency = time.monotonic() - started
            KIE_CALLS.labels(endpoint, code, upstream, account_name).inc()
            KIE_LATENCY.labels(endpoint).observe(latency)
            record_event(
                session,
                job_id,
                "kie_call",
                detail={
                    "endpoint": endpoint,
                    "upstream": upstream,
                    **({"account": account_name} if account_name else {}),
                    "code": code,
                    "msg": message[:300],
                    "latency_ms": round(latency * 1000),
                },
            )


def requeue(
    session: Session, job: Job, expected: JobStatus, wait: float, reason: str, **values: Any
) -> None:
    """Nothing was sent upstream: the job goes back to the queue for `wait` seconds, and gives
    up its admission and its account (it holds no createTask slot while it waits, and the
    next admission may give it another account). Commits, with whatever the caller wrote
    before in the same transaction."""
    now = utcnow()
    transition(
        session,
        job.id,
        expected,
        JobStatus.QUEUED,
        now=now,
        reason=reason,
        next_check_at=now + timedelta(seconds=wait),
        admitted_at=None,
        account=None,
        stage_lease_until=None,
        **values,
    )
    session.commit()


def other_accounts(settings: Settings, name: str, job: Job) -> list[str]:
    """The accounts besides `name` that serve the job's model (where it may go instead);
    none for a job pinned to its account (jobs.route)."""
    if job.route is not None:
        return []
    return [
        a.name for a in accounts(settings) if a.name != name and a.takes(job.model, job.fal_refusal)
    ]


def retry_or_fail(
    session: Session, job: Job, stage: JobStatus, exc: ExternalError, settings: Settings
) -> None:
    """A step before the upstream accepted the task failed; it certainly holds no task."""
    now = utcnow()
    if account.is_account_fact(exc) and job.livemode:
        # Bad key, no credits, sub-key limit: facts about the account, not this job. The
        # account's admission pauses; this job goes back to the queue at no attempt's cost —
        # to another account serving its model at once, if there is one.
        named = account_named(settings, job.account).name
        account.pause_for(session, named, exc, now, settings)
        elsewhere = other_accounts(settings, named, job)
        requeue(
            session,
            job,
            stage,
            0.0 if elsewhere else settings.account_probe_interval,
            f"{exc.code}: {exc.message} — admission paused for account {named}"
            + (f"; the job may go to {', '.join(elsewhere)}" if elsewhere else ""),
            waiting_reason=exc.code,
        )
        return
    # Kie's rate limit is also about the account: it never fails a job and costs no attempt,
    # and it holds back every admission (worker.admission) meanwhile.
    # (A test-mode job's answers come from the sandbox: they say nothing about the account.)
    rate_limited = exc.code in RATE_LIMITED and job.livemode
    failures = job.failures if rate_limited else job.failures + 1
    if policy.gives_up(settings, retryable=exc.retryable, failures=failures):
        fail(session, job.id, stage, exc.code, exc.message, failures=failures)
        log.info("job %s failed: %s", job.id, exc, extra=context(job))
        session.commit()
        return
    delay = policy.backoff(settings, failures, exc.retry_after)
    if rate_limited:
        until = now + timedelta(seconds=delay)
        account.pause_rate_limited(session, account_named(settings, job.account).name, until)
    session.commit()
    requeue(
        session,
        job,
        stage,
        delay,
        f"{exc.code}: {exc.message} — retrying in {delay:.1f} s",
        failures=failures,
    )
    log.info(
        "job %s: %s; retrying in %.1f s (failure %d)",
        job.id,
        exc,
        delay,
        failures,
        extra=context(job),
    )
