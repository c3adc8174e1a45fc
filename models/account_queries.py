"""Queries about the upstream accounts: each one's balance, pauses and work in flight (on its
scheduler row and its jobs), and what each job was charged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, Update, func, select, update

from catalogue.accounts import DEFAULT_ACCOUNT
from models.job import IN_FLIGHT, Job
from models.scheduler import SchedulerState

STATE = DEFAULT_ACCOUNT  # the KIE_* account's row (catalogue.accounts)


def record_balance(credits: float, now: datetime, name: str = STATE) -> Update:
    """Account `name`'s balance as read at `now`; an older reading arriving late does not
    overwrite it."""
    return (
        update(SchedulerState)
        .where(SchedulerState.name == name)
        .where((SchedulerState.kie_credits_at.is_(None)) | (SchedulerState.kie_credits_at <= now))
        .values(kie_credits=credits, kie_credits_at=now)
    )


def record_charge(job_id: str, task_id: str, credits: float, source: str) -> Any:
    """Kie reported what the job's task cost: it is the job's charge, and what holds against
    its client's budget from now on. Only for the job's own task (or, before it knows its
    task, the one it is about to adopt)."""
    return (
        update(Job)
        .where(Job.id == job_id)
        .where(
            (Job.kie_task_id == task_id)
            | (Job.kie_task_id.is_(None) & (Job.adopt_task_id == task_id))
        )
        .values(credits_reported=credits, credits_reported_from=source, credits_reserved=credits)
        .execution_options(synchronize_session=False)
    )


def account_health() -> Select[Any]:
    """Each account's refusal (bad key, no credits, …) and 429 pause, by name."""
    columns = (SchedulerState.name, SchedulerState.account_reason, SchedulerState.paused_until)
    return select(*columns)  # type: ignore[return-value]


def account_rows() -> Select[Any]:
    """Every account's scheduler row: refusal, 429 pause, balance, last sweep."""
    return select(  # type: ignore[return-value]
        SchedulerState.name,
        SchedulerState.account_reason,
        SchedulerState.account_paused_at,
        SchedulerState.paused_until,
        SchedulerState.kie_credits,
        SchedulerState.kie_credits_at,
        SchedulerState.low_credits_since,
        SchedulerState.touched_at,
    )


def in_flight_by_account() -> Select[Any]:
    """Live jobs in flight, by the account they were given."""
    counts = select(Job.account, func.count())
    return counts.where(  # type: ignore[return-value]
        Job.status.in_(IN_FLIGHT), Job.livemode.is_(True), Job.account.is_not(None)
    ).group_by(Job.account)
