"""Celery tasks: thin wrappers that take ids and call the pipeline. (Late acks and no stored
results are the app's defaults, in broker/app.py: no task repeats them.)"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from celery import signals
from sqlalchemy import delete, event
from sqlalchemy.orm import Session

from broker.app import celery_app
from catalogue.accounts import DEFAULT_ACCOUNT, accounts
from core import tracing
from core.config import SANDBOX_IMGBB_KEY, SANDBOX_KIE_KEY, Settings, get_settings
from core.metrics import SWEEP_SECONDS
from core.once import per_process
from models.base import utcnow
from models.db import get_engine, get_session_factory, session_scope
from models.erasure import erase_finished_before
from models.idempotency import IdempotencyKey
from models.job import Job, JobStatus
from models.job_queries import claim_due, claim_due_deliveries, job_traces
from models.lifecycle import NEW_DELIVERIES
from upstreams import KieHTTP, kie_upstreams
from upstreams.errors import ExternalError
from upstreams.fal_queue import FAL, FalQueue, is_fal_task
from upstreams.imgbb import ImgbbClient
from upstreams.kie_catalogue import KieCatalogue
from upstreams.kie_files import KieFileUpload
from worker import catalogue_watch, credits, webhooks
from worker.admission import acquire_check, admit, record_checks
from worker.archive import archive_now
from worker.media_sweep import clear_abandoned_downloads, expire_media
from worker.pipeline import UpstreamClients, advance
from worker.stage import upstream_call
from worker.warmup import warm_up

log = logging.getLogger(__name__)


@per_process
def upstream_clients() -> UpstreamClients:
    """One set of HTTP clients (connection pools) per worker process and upstream account
    (the first account's are the default), with the sandbox's for test-mode jobs when
    TEST_MODE_KIE_URL is set."""
    settings = get_settings()
    imgbb_key = settings.imgbb_api_key.get_secret_value() if settings.imgbb_api_key else ""
    url = settings.test_mode_kie_url
    test_mode = (
        _clients(settings, url, SANDBOX_KIE_KEY, url, SANDBOX_IMGBB_KEY, url) if url else None
    )
    by_account = {
        upstream.name: _clients(
            settings,
            upstream.base_url,
            upstream.key.get_secret_value(),
            settings.imgbb_base_url,
            imgbb_key,
            upstream.file_upload_url,
            test_mode,
            fal=upstream.provider == "fal",
        )
        for upstream in accounts(settings)
    }
    first = next(iter(by_account.values()))
    return replace(first, by_account=by_account) if len(by_account) > 1 else first


def _clients(
    settings: Settings,
    kie_url: str,
    kie_key: str,
    imgbb_url: str,
    imgbb_key: str,
    upload_url: str,
    test_mode: UpstreamClients | None = None,
    fal: bool = False,
) -> UpstreamClients:
    imgbb = ImgbbClient(
        imgbb_url,
        imgbb_key,
        timeout=settings.imgbb_timeout,
        expiration=settings.imgbb_expiration,
    )
    if fal:  # fal.ai's queue API: one adapter for every model it serves (catalogue.fal)
        queue = FalQueue(kie_url, kie_key, timeout=settings.kie_timeout)
        return UpstreamClients(
            upstreams={queue.name: queue},
            imgbb=imgbb,
            test_mode=test_mode,
            archive_elsewhere=_to_archive_queue,
            advance_later=_advance_later,
        )
    kie = KieHTTP(kie_url, kie_key, timeout=settings.kie_timeout)
    # A file of up to 16 MB at a slow link's pace: a longer deadline than a JSON call's.
    upload = KieFileUpload(upload_url, kie_key, timeout=settings.kie_timeout * 4)
    return UpstreamClients(
        upstreams=kie_upstreams(kie_url, kie_key, timeout=0, http=kie),
        kie_files=kie,
        kie_upload=upload,
        imgbb=imgbb,
        test_mode=test_mode,
        archive_elsewhere=_to_archive_queue,
        advance_later=_advance_later,
    )


def _to_archive_queue(job_id: str) -> None:
    archive_job.apply_async((job_id,))


def _advance_later(job_id: str, seconds: float) -> None:
    advance_job.apply_async((job_id,), countdown=seconds)


@signals.worker_init.connect
def _warm_up_worker(**_: object) -> None:
    """Threads and solo pools run tasks in this process: ready it before the first message.
    (A prefork parent must not: its connections would be shared by the forked children.)"""
    settings = get_settings()
    if settings.worker_pool != "prefork":
        upstream_clients()
        warm_up(settings, settings.worker_concurrency)


@signals.worker_process_init.connect
def _warm_up_child(**_: object) -> None:
    upstream_clients()
    warm_up(get_settings(), 1)


@event.listens_for(get_session_factory(), "after_commit")
def _publish_new_deliveries(session: Session) -> None:
    """The fast path for webhooks: send a new event at once. The sweep is the backstop."""
    for event_id in session.info.pop(NEW_DELIVERIES, []):
        try:
            deliver_webhook.apply_async((event_id, 0))
        except Exception as exc:  # the broker is down: the sweep finds the row
            log.warning("could not enqueue webhook %s: %s", event_id, exc)


@celery_app.task(name="soraq.dispatch")
def dispatch() -> int:
    """The sweep: claim every due job and webhook delivery, and hand each to a task.

    Run by beat every SWEEP_INTERVAL and nudged by the API after new work is committed.
    Claiming pushes the row's due time past a lease, so work whose message is lost is simply
    due again.
    """
    settings = get_settings()
    dialect, now = get_engine().dialect.name, utcnow()
    lease = timedelta(seconds=settings.claim_lease)
    with SWEEP_SECONDS.time(), session_scope() as session:
        budget = admit(session, settings, now)  # holds the scheduler lock until the commit
        checks = session.scalars(
            claim_due(dialect, now=now, limit=min(settings.sweep_batch, budget.checks), lease=lease)
        ).all()
        record_checks(settings, budget, len(checks), now)
        deliveries = session.execute(
            claim_due_deliveries(dialect, now=now, limit=settings.sweep_batch, lease=lease)
        ).all()
        session.commit()
    for name in budget.read_balances:
        read_kie_balance.apply_async((name,))
    # The round's instants are offsets from `now`; the round itself took a while (more with
    # every account): each countdown starts from here, so it is shortened by that while.
    spent = (utcnow() - now).total_seconds()
    for wake_in in budget.wakes_in:
        # An account's create window frees a token then: admit at that instant, not at the
        # next tick.
        dispatch.apply_async(countdown=max(0.0, wake_in - spent), expires=wake_in + 30)
    jobs = [*budget.admitted, *checks]
    # An admitted job whose token frees in a moment reaches its worker at that moment.
    starts = [start - spent for start in budget.starts_in] + [0.0] * len(checks)
    traces = _traces(jobs, set(budget.admitted), now)
    if jobs or deliveries:
        with celery_app.producer_or_acquire() as producer:
            for job_id, start in zip(jobs, starts, strict=True):
                # Within the job's span: its message's headers carry the job's trace.
                with traces.get(job_id) or nullcontext():
                    advance_job.apply_async(
                        (job_id,), countdown=start if start > 0 else None, producer=producer
                    )
            for delivery_id, attempt in deliveries:
                deliver_webhook.apply_async((delivery_id, attempt), producer=producer)
    return len(jobs) + len(deliveries)


def _traces(jobs: list[str], admitted: set[str], now: datetime) -> dict[str, Any]:
    """With tracing on: each handed-out job's dispatch span (in its own trace, linked to this
    sweep), and for a job just admitted, the span of its wait for admission."""
    if not jobs or not tracing.enabled():
        return {}
    with session_scope() as session:
        rows = session.execute(job_traces(jobs)).all()
    spans = {}
    for row in rows:
        if row.id in admitted:
            with tracing.job_span("soraq.job.admission_wait", row, start=row.created_at):
                pass  # from creation until now, when admission let it go
        spans[row.id] = tracing.job_span("soraq.job.dispatch", row)
    return spans


@celery_app.task(name="soraq.check_now")
def check_now(job_id: str) -> None:
    """A callback's check, sent by the API straight here (the job is claimed for it): take a
    recordInfo token, then take the job's step — no sweep in between."""
    settings = get_settings()
    with session_scope() as session:
        if acquire_check(session, settings, job_id):
            advance(session, job_id, upstream_clients(), settings)


@celery_app.task(name="soraq.cancel_upstream")
def cancel_upstream(job_id: str) -> None:
    """A job canceled while its request waited at fal: cancel it there too, so that fal does
    not run (and bill) it. Best effort, once: fal cancels only what has not started, and the
    job is canceled for its client either way."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        task_id = job.kie_task_id if job is not None else None
        if job is None or job.status != JobStatus.CANCELED or not is_fal_task(task_id or ""):
            return
        upstream = upstream_clients().for_account(job.account).upstreams.get(FAL)
        if not isinstance(upstream, FalQueue) or task_id is None:
            return
        try:
            upstream_call(session, job, "cancel", FAL, lambda: upstream.cancel(task_id))
        except ExternalError as exc:
            log.warning("job %s: fal did not take its cancel (%s)", job_id, exc.code)
        session.commit()


@celery_app.task(name="soraq.kie_balance")
def read_kie_balance(name: str = DEFAULT_ACCOUNT) -> float | None:
    """Read an account's balance (claimed by one dispatcher per interval and account)."""
    with session_scope() as session:
        kie = upstream_clients().for_account(name).kie_files
        return credits.read_balance(session, kie, get_settings(), name) if kie else None


def kie_catalogue() -> KieCatalogue | None:
    kie = upstream_clients().kie_files
    return KieCatalogue(kie) if kie is not None else None


@celery_app.task(name="soraq.catalogue_check")
def catalogue_check() -> str | None:
    """Compare the catalogue with Kie's live one and apply what it says (daily)."""
    kie = kie_catalogue()
    if kie is None:
        return None
    with session_scope() as session:
        drift = catalogue_watch.check(session, kie, get_settings())
    return drift.summary() if drift is not None else None


@celery_app.task(name="soraq.kie_prices")
def kie_prices() -> int:
    """Read Kie's prices and success rates (at start, then every KIE_PRICES_INTERVAL)."""
    kie = kie_catalogue()
    if kie is None:
        return 0
    with session_scope() as session:
        return catalogue_watch.read_prices(session, kie)


@signals.beat_init.connect
def _read_catalogue_at_start(**_: object) -> None:
    """Prices (and the catalogue's state) are read when the service starts, not a day later."""
    try:
        kie_prices.apply_async()
        catalogue_check.apply_async(countdown=5)
    except Exception as exc:  # the broker is not up yet: the schedule does it
        log.warning("could not ask for the first catalogue read: %s", exc)


@celery_app.task(name="soraq.cleanup")
def cleanup() -> int:
    """Forget Idempotency-Keys past their 24 hours."""
    with session_scope() as session:
        removed = session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow())
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
    return int(removed or 0)


@celery_app.task(name="soraq.expire_media")
def expire_media_task() -> int:
    """Delete archived files past their retention, downloads a killed worker left, and (with
    JOB_RETENTION_DAYS) erase finished jobs past that age."""
    settings = get_settings()
    clear_abandoned_downloads(settings, older_than=settings.archive_timeout * 2 + 60)
    with session_scope() as session:
        now = utcnow()
        expired = expire_media(session, now)
        if settings.job_retention_days is not None:
            cutoff = now - timedelta(days=settings.job_retention_days)
            erase_finished_before(session, cutoff, now, by="JOB_RETENTION_DAYS")
        return expired


# No time limits: every outbound call in a step has its own timeout.
@celery_app.task(name="soraq.advance")
def advance_job(job_id: str) -> None:
    with session_scope() as session:
        advance(session, job_id, upstream_clients(), get_settings())


@celery_app.task(name="soraq.archive")
def archive_job(job_id: str) -> None:
    """Download, check and store a job's result (the archive queue: its own workers)."""
    with session_scope() as session:
        archive_now(session, job_id, get_settings(), upstream_clients())


@celery_app.task(name="soraq.deliver")
def deliver_webhook(delivery_id: str, attempt: int) -> None:
    with session_scope() as session:
        handed = webhooks.deliver(session, delivery_id, attempt, get_settings())
    if handed is not None:
        deliver_webhook.apply_async(handed)  # the slot this delivery freed goes to the next
