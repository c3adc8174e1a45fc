"""The Kie account's credits: read the balance, alert operators when it runs low, and hold
admission back before Kie would answer 402.

- The balance is read every KIE_BALANCE_INTERVAL by one process (the dispatcher that claims
  the read under the scheduler lock), more often while low, and refreshed by every callback's
  remainedCredits (api.routes.kie).
- Below KIE_LOW_CREDITS an episode starts: one ERROR line and one signed `account.low_credits`
  event to OPERATOR_WEBHOOK_URL (retried with the next reads, at most ALERT_ATTEMPTS times).
  It ends when the balance is back above the threshold.
- Admission spends from the balance as last read, minus what jobs admitted since have taken
  or are about to take. Below KIE_MIN_CREDITS or below the next job's estimate, admission
  pauses with the account-level pause (worker.account) under reason `kie_low_credits`: no
  probe reaches Kie; a balance read that shows enough ends it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from core.config import Settings
from models.account_queries import STATE, record_balance
from models.base import utcnow
from models.job import Job, JobStatus
from models.job_queries import admitted_not_submitted
from models.scheduler import SchedulerState
from upstreams.errors import ExternalError
from upstreams.kie_http import KieHTTP
from worker.operator_events import send_operator_event

log = logging.getLogger(__name__)

LOW_CREDITS = "kie_low_credits"
ALERT_ATTEMPTS = 5


def claim_balance_read(state: SchedulerState, now: datetime, settings: Settings) -> bool:
    """Under the scheduler lock: is a balance read due? Claiming it sets the next one, so one
    dispatcher reads however many run. While low or paused, reads come every probe interval:
    a top-up is noticed within it."""
    low = state.account_reason == LOW_CREDITS or state.low_credits_alert == "pending"
    fell_low = (
        state.kie_credits is not None
        and state.kie_credits < settings.kie_low_credits
        and state.low_credits_since is None
    )
    if not fell_low and state.balance_check_at is not None and now < state.balance_check_at:
        return False
    interval = settings.account_probe_interval if low else settings.kie_balance_interval
    state.balance_check_at = now + timedelta(seconds=interval)
    return True


def committed_credits(session: Session, state: SchedulerState, now: datetime) -> float:
    """What unfinished jobs have taken from the balance since it was read, or are about to:
    submitted after the reading, between admission and Kie's answer, or admitted and on
    their way. Unfinished jobs only (the sweep's partial index): a finished one's charge is
    in the next reading."""
    since = state.kie_credits_at or now
    taking = and_(
        Job.account == state.name,
        or_(
            Job.submitted_at >= since,
            Job.status.in_([JobStatus.UPLOADING, JobStatus.SUBMITTING]),
            admitted_not_submitted(now),
        ),
    )
    total = session.scalar(
        select(func.coalesce(func.sum(Job.credits_estimated), 0.0)).where(
            Job.next_check_at.is_not(None), taking
        )
    )
    return float(total or 0.0)


def affordable(
    session: Session,
    state: SchedulerState,
    candidates: list[str],
    now: datetime,
    settings: Settings,
) -> list[str]:
    """The leading candidates the balance covers (all of them while the balance is unknown)."""
    if state.kie_credits is None or not candidates:
        return candidates
    available = state.kie_credits - committed_credits(session, state, now)
    estimates = dict(
        session.execute(select(Job.id, Job.credits_estimated).where(Job.id.in_(candidates))).all()
    )
    covered: list[str] = []
    for job_id in candidates:
        cost = float(estimates.get(job_id) or 0.0)
        if available < settings.kie_min_credits or available < cost:
            break
        covered.append(job_id)
        available -= cost
    return covered


def pause_low(session: Session, state: SchedulerState, now: datetime, settings: Settings) -> None:
    """The balance cannot cover the next job: pause admission (once per episode, logged)."""
    if state.account_reason is not None:
        return
    state.account_reason = LOW_CREDITS
    state.account_paused_at = now
    state.account_probe_at = None
    state.account_probe_job = None
    state.balance_check_at = now + timedelta(seconds=settings.account_probe_interval)
    log.error(
        "Kie's balance (%.2f credits) is below KIE_MIN_CREDITS (%.2f) or the next job's "
        "estimate: admission is paused until the account is topped up",
        state.kie_credits or 0.0,
        settings.kie_min_credits,
    )


def resume_low(session: Session, state: SchedulerState) -> None:
    """The balance covers the next job again: the low-credits pause ends."""
    state.account_reason = None
    state.account_paused_at = None
    state.account_probe_at = None
    state.account_probe_job = None
    session.execute(
        update(Job)
        .where(Job.status == JobStatus.QUEUED, Job.waiting_reason == LOW_CREDITS)
        .values(waiting_reason=None)
        .execution_options(synchronize_session=False)
    )
    log.warning(
        "Kie's balance covers the next job again (%.2f credits): admission resumed",
        state.kie_credits or 0.0,
    )


def read_balance(
    session: Session, kie: KieHTTP, settings: Settings, name: str = STATE
) -> float | None:
    """One balance read of account `name`, recorded; then the low-credits episode's
    bookkeeping and alert."""
    try:
        credits = kie.credit_balance()
    except ExternalError as exc:
        log.warning("could not read account %s's balance: %s", name, exc)
        return None
    now = utcnow()
    session.execute(record_balance(credits, now, name))
    session.commit()
    note_episode(session, credits, now, settings, name)
    return credits


def note_episode(
    session: Session, credits: float, now: datetime, settings: Settings, name: str = STATE
) -> None:
    if credits >= settings.kie_low_credits:
        session.execute(
            update(SchedulerState)
            .where(SchedulerState.name == name, SchedulerState.low_credits_since.is_not(None))
            .values(low_credits_since=None, low_credits_alert=None, low_credits_alert_attempts=0)
        )
        session.commit()
        return
    started = session.execute(
        update(SchedulerState)
        .where(SchedulerState.name == name, SchedulerState.low_credits_since.is_(None))
        .values(
            low_credits_since=now,
            low_credits_alert="pending" if settings.operator_webhook_url else "logged",
            low_credits_alert_attempts=0,
        )
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if started:
        log.error(
            "account %s's balance is low: %.2f credits, below KIE_LOW_CREDITS (%.2f); top up "
            "the account before its admission has to pause",
            name,
            credits,
            settings.kie_low_credits,
        )
    state = session.get(SchedulerState, name, populate_existing=True)
    if state is not None and state.low_credits_alert == "pending":
        _send_alert(session, state, credits, now, settings)


def alert_body(
    event_id: str, credits: float, since: datetime, settings: Settings, name: str = STATE
) -> str:
    data: dict[str, Any] = {
        "account": name,
        "credits_remaining": credits,
        "low_credits_threshold": settings.kie_low_credits,
        "min_credits": settings.kie_min_credits,
        "usd_remaining": round(credits * settings.credit_usd_rate, 2),
        "since": since.isoformat(),
    }
    return json.dumps(
        {"type": "account.low_credits", "timestamp": utcnow().isoformat(), "data": data},
        separators=(",", ":"),
    )


def _send_alert(
    session: Session,
    state: SchedulerState,
    credits: float,
    now: datetime,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """One attempt at the episode's alert; the attempt is claimed first (compare-and-set on
    the count), so two readers never send it twice."""
    attempts = state.low_credits_alert_attempts
    # The attempt holds the alert for its whole exchange: a reader that comes while it is on
    # its way (two dispatchers can each claim a read) finds it held and sends nothing.
    claimed = session.execute(
        update(SchedulerState)
        .where(
            SchedulerState.name == state.name,
            SchedulerState.low_credits_alert == "pending",
            SchedulerState.low_credits_alert_attempts == attempts,
            or_(
                SchedulerState.low_credits_alert_until.is_(None),
                SchedulerState.low_credits_alert_until <= now,
            ),
        )
        .values(
            low_credits_alert_attempts=attempts + 1,
            low_credits_alert_until=now + timedelta(seconds=settings.webhook_timeout + 30),
        )
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if not claimed or not settings.operator_webhook_url:
        return
    since = state.low_credits_since or now
    # One id per episode (and account: the KIE_* one's ids are as before accounts).
    named = "" if state.name == STATE else f"{state.name}_"
    event_id = f"msg_lowcredits_{named}{int(since.timestamp())}"
    body = alert_body(event_id, credits, since, settings, state.name)
    sent = send_operator_event(settings, event_id, body, "low-credits alert", transport)
    outcome = "sent" if sent else "failed"
    final = outcome == "sent" or attempts + 1 >= ALERT_ATTEMPTS or sent is None
    # The attempt is over: its hold goes (a failed one may be retried by the next reader).
    session.execute(
        update(SchedulerState)
        .where(SchedulerState.name == state.name, SchedulerState.low_credits_alert == "pending")
        .values(low_credits_alert_until=None, **({"low_credits_alert": outcome} if final else {}))
    )
    session.commit()
