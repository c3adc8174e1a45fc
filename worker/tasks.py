"""Celery tasks: thin wrappers that take ids and call the pipeline."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache

from models.base import utcnow
from models.db import get_engine, session_scope
from models.job_queries import claim_due
from soraq.config import get_settings
from worker.app import celery_app
from worker.imgbb import ImgbbClient
from worker.kie import KieClient
from worker.pipeline import Clients, advance

log = logging.getLogger(__name__)


@lru_cache
def clients() -> Clients:
    """One pair of HTTP clients (connection pools) per worker process."""
    settings = get_settings()
    kie_key = settings.kie_api_key.get_secret_value() if settings.kie_api_key else ""
    imgbb_key = settings.imgbb_api_key.get_secret_value() if settings.imgbb_api_key else ""
    return Clients(
        kie=KieClient(settings.kie_base_url, kie_key, timeout=settings.kie_timeout),
        imgbb=ImgbbClient(
            settings.imgbb_base_url,
            imgbb_key,
            timeout=settings.imgbb_timeout,
            expiration=settings.imgbb_expiration,
        ),
    )


@celery_app.task(name="soraq.dispatch", acks_late=True, ignore_result=True)
def dispatch() -> int:
    """The sweep: claim every due job and hand each to an `advance` task.

    Run by beat every SWEEP_INTERVAL and nudged by the API after each new job. Claiming pushes
    a job's next_check_at past a lease, so a job whose message is lost is simply due again.
    """
    settings = get_settings()
    with session_scope() as session:
        claimed = session.scalars(
            claim_due(
                get_engine().dialect.name,
                now=utcnow(),
                limit=settings.sweep_batch,
                lease=timedelta(seconds=settings.claim_lease),
            )
        ).all()
        session.commit()
    if claimed:
        with celery_app.producer_or_acquire() as producer:
            for job_id in claimed:
                advance_job.apply_async((job_id,), producer=producer)
        log.debug("dispatched %d due jobs", len(claimed))
    return len(claimed)


# No time limit: every outbound call in a step has its own timeout.
@celery_app.task(name="soraq.advance", acks_late=True, ignore_result=True)
def advance_job(job_id: str) -> None:
    with session_scope() as session:
        advance(session, job_id, clients(), get_settings())
