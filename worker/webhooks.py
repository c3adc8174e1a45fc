"""Sending completion webhooks, signed per the Standard Webhooks specification.

One delivery row per event; each attempt is claimed with a compare-and-set on its attempt
count, sent to the address the SSRF guard vetted, and its outcome recorded with the time of the
next attempt. Retries are rows with a time on them, like everything else here.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from core import tracing
from core.config import Settings
from core.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_LATENCY
from core.netguard import UnsafeURL, resolve
from models.base import utcnow
from models.batch import Batch, batch_counts
from models.client import Client
from models.job import Job
from models.lifecycle import record_event
from models.webhook import DeliveryState, WebhookDelivery
from models.webhook_queries import hand_over, next_waiting, release_host_slot, take_host_slot
from views.batches import BatchOut
from views.jobs import JobOut
from worker.webhook_send import post_event

log = logging.getLogger(__name__)

SLOT_WAIT = 1.0  # seconds before a delivery that found its host's slots full looks again


def event_body(session: Session, delivery: WebhookDelivery, job: Job, now: datetime) -> str:
    data: dict[str, Any]
    batch = session.get(Batch, job.batch_id) if job.batch_id is not None else None
    if delivery.event_type == "batch.completed" and batch is not None:
        counts = {str(s): int(n) for s, n in session.execute(batch_counts(batch.id)).all()}
        data = BatchOut.of(batch, counts).model_dump(mode="json")
    else:
        data = JobOut.of(job).model_dump(mode="json", exclude={"webhook"})
    if delivery.progress is not None:  # a job.progress event: the figure it announces
        data["progress"] = delivery.progress
    return json.dumps(
        {"type": delivery.event_type, "timestamp": now.isoformat(), "data": data},
        separators=(",", ":"),
    )


def deliver(
    session: Session,
    delivery_id: str,
    attempt: int,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[str, int] | None:
    """Make attempt number `attempt` of one delivery, if it is still due and a slot for its
    host is free; a duplicate message finds the attempt count moved on and does nothing.
    Returns the (delivery, attempt) its freed slot was handed to, for the caller to send."""
    delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.state != DeliveryState.PENDING or delivery.attempts != attempt:
        return None  # already sent, or a stale duplicate of an earlier attempt's message
    host = (urlsplit(delivery.url).hostname or "").lower()
    slot = _take_slot(session, host, delivery.id, settings)
    if slot is None:
        _wait_for_a_slot(session, delivery.id, attempt, host)
        # A slot freed after the look above but before the wait was on record was handed to
        # no one: look once more. Taken: withdraw the wait (a compare-and-set: if a hand-over
        # got there first, its message makes this attempt, and this slot goes back).
        slot = _take_slot(session, host, delivery.id, settings)
        if slot is None:
            return None
        lease = utcnow() + timedelta(seconds=settings.claim_lease)
        withdrawn = session.execute(hand_over(delivery.id, attempt, host, lease)).rowcount  # type: ignore[attr-defined]
        session.commit()
        if not withdrawn:
            release_host_slot(session, host, slot, delivery.id)
            return _hand_over_slot(session, host, settings)
    try:
        _attempt(session, delivery, attempt, settings, transport)
    finally:
        session.rollback()
        release_host_slot(session, host, slot, delivery.id)
    return _hand_over_slot(session, host, settings)


def _take_slot(session: Session, host: str, holder: str, settings: Settings) -> int | None:
    # The slot is held past the deadline by a margin: a killed worker frees it by time alone.
    now = utcnow()
    return take_host_slot(
        session,
        host,
        holder,
        now=now,
        until=now + timedelta(seconds=settings.webhook_timeout + 30),
        capacity=settings.webhook_max_in_flight_per_host,
    )


def _hand_over_slot(session: Session, host: str, settings: Settings) -> tuple[str, int] | None:
    """A slot just freed: the delivery that has waited longest for this host goes now, not
    at its next look (SLOT_WAIT) and the sweep's tick after it."""
    waiting = session.execute(next_waiting(host)).first()
    if waiting is None:
        return None
    lease = utcnow() + timedelta(seconds=settings.claim_lease)
    claimed = session.execute(hand_over(waiting.id, waiting.attempts, host, lease)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return (waiting.id, waiting.attempts) if claimed else None


def _wait_for_a_slot(session: Session, delivery_id: str, attempt: int, host: str) -> None:
    """Every slot for this host is taken: wait for the next one to be handed over, or look
    again shortly, without spending an attempt."""
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == attempt,
            WebhookDelivery.state == DeliveryState.PENDING,
        )
        .values(next_attempt_at=utcnow() + timedelta(seconds=SLOT_WAIT), waiting_host=host)
    )
    session.commit()


def _attempt(
    session: Session,
    delivery: WebhookDelivery,
    attempt: int,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    job = session.get(Job, delivery.job_id)
    client = session.get(Client, job.client_id) if job and job.client_id else None
    now = utcnow()
    body = delivery.body or (event_body(session, delivery, job, now) if job else None)
    lease = now + timedelta(seconds=settings.webhook_timeout + 30)
    claimed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.attempts == attempt,
            WebhookDelivery.state == DeliveryState.PENDING,
        )
        .values(attempts=attempt + 1, body=body, next_attempt_at=lease, waiting_host=None)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if not claimed:
        return
    delivery.attempts = attempt + 1
    if body is None or client is None:
        _record(
            session, delivery, state=DeliveryState.FAILED, error="the job or its client is gone"
        )
        return
    try:
        checked = resolve(
            delivery.url, allow_http=settings.webhook_allow_http, allowed=settings.client_networks
        )
    except UnsafeURL as exc:
        _record(session, delivery, state=DeliveryState.FAILED, error=f"refused: URL {exc}")
        return

    timestamp = utcnow()
    # A span in the job's trace; the POST under it carries its W3C traceparent (httpx's
    # instrumentation adds the header), so the receiver can join the same trace.
    with tracing.job_span(
        "soraq.webhook.deliver",
        job,
        extra={
            "soraq.delivery_id": delivery.id,
            "soraq.event": delivery.event_type,
            "soraq.attempt": attempt + 1,
        },
    ) as span:
        answer = post_event(
            checked,
            delivery.id,
            int(timestamp.timestamp()),
            body,
            _signatures(client, delivery.id, timestamp, body),
            deadline=settings.webhook_timeout,
            transport=transport,
        )
        tracing.set_attribute(span, "http.response.status_code", answer.status)
    status, error, retry_after = answer.status, answer.error, answer.retry_after

    if status is not None and 200 <= status < 300:
        _record(session, delivery, state=DeliveryState.DELIVERED, status=status, delivered=True)
        log.info("webhook %s for job %s delivered (%s)", delivery.id, delivery.job_id, status)
    elif status == 410:
        _record(
            session,
            delivery,
            state=DeliveryState.DISABLED,
            status=status,
            error="the receiver answered 410 Gone: no more attempts",
        )
    else:
        schedule = settings.webhook_schedule
        error = error or f"HTTP {status}"
        if attempt + 1 >= len(schedule):
            _record(session, delivery, state=DeliveryState.FAILED, status=status, error=error)
        else:
            delay = max(schedule[attempt + 1], retry_after or 0.0)
            _record(
                session,
                delivery,
                state=DeliveryState.PENDING,
                status=status,
                error=error,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
            )
        log.info("webhook %s attempt %d failed: %s", delivery.id, attempt + 1, error)


def _signatures(client: Client, event_id: str, timestamp: datetime, body: str) -> str:
    """`v1,<sig>`, plus the previous secret's signature during a rotation's grace period
    (Standard Webhooks: several signatures, space-separated; a receiver accepts any)."""
    secrets = [client.webhook_secret]
    until = client.previous_secret_until
    if client.previous_webhook_secret and until is not None and until > utcnow():
        secrets.append(client.previous_webhook_secret)
    return " ".join(Webhook(secret).sign(event_id, timestamp, body) for secret in secrets)


def _record(
    session: Session,
    delivery: WebhookDelivery,
    *,
    state: DeliveryState,
    status: int | None = None,
    error: str | None = None,
    delivered: bool = False,
    next_attempt_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {
        "state": state,
        "last_status_code": status,
        "last_error": error,
        "next_attempt_at": next_attempt_at,
    }
    if delivered:
        values["delivered_at"] = utcnow()
        WEBHOOK_LATENCY.observe(
            max(0.0, (values["delivered_at"] - delivery.created_at).total_seconds())
        )
    session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values)
    )
    record_event(
        session,
        delivery.job_id,
        "webhook",
        reason=error,
        detail={
            "delivery_id": delivery.id,
            "event": delivery.event_type,
            "attempt": delivery.attempts,
            "status_code": status,
            "state": state.value,
        },
    )
    outcome = "retry" if state == DeliveryState.PENDING else state.value
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    session.commit()
