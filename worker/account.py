"""Facts about the Kie account pause admission for everyone; they never fail jobs one by one.

A 401 (key), 402 (credits) or 433 (sub-key limit) says nothing about the job that met it: the
next job would meet it too. So the first one pauses admission (logged at ERROR once per
episode), the job goes back to the queue, and admission then lets exactly one job probe with a
createTask every ACCOUNT_PROBE_INTERVAL. The first probe Kie accepts ends the episode. A job
that waits this way fails only at its own JOB_TIMEOUT, with the account's code.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.config import Settings
from models.job import Job, JobStatus
from models.lifecycle import fail_held_past_timeout
from models.model_state import PAUSED
from models.scheduler import SchedulerState
from upstreams import ACCOUNT_CODES
from upstreams.errors import ExternalError

log = logging.getLogger(__name__)


def is_account_fact(exc: ExternalError) -> bool:
    return exc.code in ACCOUNT_CODES


def pause_for(
    session: Session, name: str, exc: ExternalError, now: datetime, settings: Settings
) -> None:
    """Record (or prolong) account `name`'s pause; the caller commits."""
    probe_at = now + timedelta(seconds=settings.account_probe_interval)
    started = session.execute(
        update(SchedulerState)
        .where(SchedulerState.name == name, SchedulerState.account_reason.is_(None))
        .values(
            account_reason=exc.code,
            account_paused_at=now,
            account_probe_at=probe_at,
            account_probe_job=None,
        )
    ).rowcount  # type: ignore[attr-defined]
    if started:
        log.error(
            "Kie refused account %s (%s: %s): its admission is paused; probing with one "
            "createTask every %.0f s",
            name,
            exc.code,
            exc.message,
            settings.account_probe_interval,
        )
        return
    session.execute(
        update(SchedulerState)
        .where(SchedulerState.name == name)
        .values(account_reason=exc.code, account_probe_at=probe_at, account_probe_job=None)
    )


def resume(session: Session, name: str) -> None:
    """Account `name` accepted a createTask: it works again. The caller commits."""
    ended = session.execute(
        update(SchedulerState)
        .where(SchedulerState.name == name, SchedulerState.account_reason.is_not(None))
        .values(
            account_reason=None,
            account_paused_at=None,
            account_probe_at=None,
            account_probe_job=None,
        )
    ).rowcount  # type: ignore[attr-defined]
    if ended:
        session.execute(
            update(Job)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.waiting_reason.is_not(None),
                Job.waiting_reason != PAUSED,  # a paused model's jobs wait for the model
            )
            .values(waiting_reason=None)
            .execution_options(synchronize_session=False)
        )
        log.warning("account %s accepted a createTask again: its admission resumed", name)


def pause_rate_limited(session: Session, name: str, until: datetime) -> None:
    """Kie said 429 anyway: no admissions to account `name` until `until` (the later of any
    two pauses)."""
    session.execute(
        update(SchedulerState)
        .where(SchedulerState.name == name)
        .where((SchedulerState.paused_until.is_(None)) | (SchedulerState.paused_until < until))
        .values(paused_until=until)
    )


def probe_wait(state: SchedulerState, job_id: str, now: datetime) -> float | None:
    """While paused, only the probe job may call createTask: others wait (seconds)."""
    if state.account_reason is None or state.account_probe_job == job_id:
        return None
    if state.account_probe_at is None:
        return 1.0
    return max(1.0, (state.account_probe_at - now).total_seconds())


def take_probe(state: SchedulerState, now: datetime, settings: Settings) -> bool:
    """Under the scheduler lock: may one job probe now? Taking it moves the next probe time."""
    if state.account_probe_at is not None and now < state.account_probe_at:
        return False
    state.account_probe_at = now + timedelta(seconds=settings.account_probe_interval)
    return True


def expire_waiting(
    session: Session, state: SchedulerState, now: datetime, settings: Settings
) -> int:
    """Jobs held back by the pause past their own JOB_TIMEOUT fail with the account's code."""
    if state.account_reason is None:
        return 0
    why = (
        "Kie's balance could not cover this job"
        if state.account_reason == "kie_low_credits"
        else f"Kie refused the account ({state.account_reason})"
    )
    return fail_held_past_timeout(
        session,
        Job.livemode.is_(True),
        now - timedelta(seconds=settings.job_timeout),
        state.account_reason,
        f"{why} for longer than this job's {settings.job_timeout:.0f} s; it was never "
        "submitted, so nothing was charged.",
    )
